// Issue 9 item 1: a host's run goes through one session, one channel running one shell that holds
// the run lock: a converged baseline costs exactly one channel, and the host sees one tackle
// process tree while a run is under way. A declarative task's facts ride with the lock: two round
// trips in all.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { raw, sh } from '../../lib/command/command.ts';
import type { Connection, ConnectionStats } from '../../lib/connection/connection.ts';
import { openConnection } from '../../lib/connection/open.ts';
import { runTask, type RunResult } from '../../lib/engine/runner.ts';
import { defineTask, type Task } from '../../lib/engine/task.ts';
import { defineFact } from '../../lib/facts/fact.ts';
import { isInventory, type Vars } from '../../lib/inventory/inventory.ts';
import { selectHosts } from '../../lib/inventory/select.ts';
import { baseline } from '../../tasks/baseline.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory } from './support/cli.ts';

const lab = await withLab(t, 1);
const key = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
const mod = (await import(await labInventory(lab, { lab1: { vars: { deployKeys: [key] } } }))) as { default: unknown };
if (!isInventory(mod.default)) throw new Error('not an inventory');
const inventory = mod.default;
const hosts = selectHosts(inventory);
const ctx = { home: process.env.HOME ?? '/root', localUser: 'root' };

/** Runs a task on lab1 as scripts/bench.ts does, keeping the connection to read its stats. */
async function run<V extends Vars>(task: Task<V>, dryRun = false): Promise<{ result: RunResult; stats: ConnectionStats[] }> {
  const conns: Connection[] = [];
  const result = await runTask(task, hosts, {
    dryRun,
    connect: async (h) => {
      const c = await openConnection(h, inventory, ctx);
      conns.push(c);
      return c;
    },
  });
  return { result, stats: conns.map((c) => c.stats()) };
}

t.test('a converged baseline costs one channel and two round trips', async (t) => {
  const first = await run(baseline);
  t.not(first.result.hosts[0]?.status, 'failed', 'the first run converges the host', { error: first.result.hosts[0]?.error?.message });
  const again = await run(baseline);
  t.equal(again.result.hosts[0]?.status, 'ok', 'the second run changes nothing', { error: again.result.hosts[0]?.error?.message });
  t.equal(again.stats.length, 1, 'one connection');
  t.equal(again.stats[0]?.channels, 1, 'one channel: the session');
  t.equal(again.stats[0]?.roundTrips, 2, 'open the session; then take the lock, read the handler records and every fact of every step at once');
  const dry = await run(baseline, true);
  t.equal(dry.result.hosts[0]?.status, 'ok', 'the dry-run plans nothing', { error: dry.result.hosts[0]?.error?.message });
  t.same(dry.stats.map((s) => [s.channels, s.roundTrips]), [[1, 2]], 'a dry-run too: one channel, two round trips');
  t.comment(`converged baseline on lab1: ${again.stats[0]?.roundTrips} round trips, ${again.stats[0]?.commands} commands, ${again.stats[0]?.channels} channel`);
});

// The roots of tackle's process trees on the host: processes started by tackle's constant line
// whose parent was not. Each also says what its descriptor 9 is (the session shell's run lock).
const ROOTS = `for d in /proc/[0-9]*; do
  c=$(tr '\\000' ' ' < "$d/cmdline" 2>/dev/null) || continue
  case $c in *'tackle_script=$(dd'*) ;; *) continue ;; esac
  pp=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)
  case $(tr '\\000' ' ' < "/proc/$pp/cmdline" 2>/dev/null) in *'tackle_script=$(dd'*) continue ;; esac
  echo "root fd9=$(readlink "$d/fd/9" 2>/dev/null)"
done`;

t.test('during a run the host holds one tackle process tree, and its shell holds the run lock', async (t) => {
  let seen = '';
  const look = defineTask({
    name: 'look',
    async run(host) {
      seen = await host.fact(defineFact('tackle.roots', sh`${raw(ROOTS)}`, (o) => o.stdout));
    },
  });
  const { result, stats } = await run(look);
  t.equal(result.hosts[0]?.status, 'ok', 'the run succeeds', { error: result.hosts[0]?.error?.message });
  t.equal(seen, 'root fd9=/run/lock/tackle\n', 'one root: the session shell, with the lock directory open', { seen });
  t.same(stats, [{ channels: 1, roundTrips: 3, commands: 2 }], 'a run(host) body asks for its fact when it runs: open the session, take the lock (with the handler records), read the fact');
});
