// The dry-run tells the truth about tasks/provision.ts on a fresh host: every step's planned status
// and summary equal what the real run then does (not only which steps change), a converged host
// plans and runs all ok, and it costs one round trip for all the facts of the task.
import { readFile } from 'node:fs/promises';
import t, { type Test } from 'tap';
import type { Connection } from '../../lib/connection/connection.ts';
import { openConnection } from '../../lib/connection/open.ts';
import { runTask } from '../../lib/engine/runner.ts';
import { loadInventoryFile } from '../../lib/inventory/load.ts';
import { selectHosts } from '../../lib/inventory/select.ts';
import { provision } from '../../tasks/provision.ts';
import { withAcme } from '../../lab/acme.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory, plannedSteps, runTaskCli } from './support/cli.ts';
import { execSpy } from '../support/exec-spy.ts';

const lab = await withLab(t, 1);
const acme = await withAcme(t, lab);
const pubKey = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
const domain = (name: string) => `${name}.truth.test`;
for (const h of lab.hosts) await acme.addHost(domain(h.name), h.address);

const inventory = await labInventory(
  lab,
  Object.fromEntries(
    lab.hosts.map((h) => [
      h.name,
      {
        vars: {
          deployKeys: [pubKey],
          trusted: [lab.bridgeAddress],
          sites: [{ name: 'app', serverNames: [domain(h.name)], upstreams: ['127.0.0.1:8000'] }],
          acme: { email: 'ops@truth.test', server: acme.directoryUrl, caCertPem: acme.caCertPem },
        },
      },
    ]),
  ),
);

/** Runs `file` as a dry-run, then for real: each step's status and summary must be what the dry-run planned. */
async function dryThenReal(t: Test, file: string): Promise<Record<string, string[]>> {
  const dry = await runTaskCli(file, ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  const real = await runTaskCli(file, ['--inventory', inventory]);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-5000), stderr: real.stderr });
  t.same(plannedSteps(dry.report), plannedSteps(real.report), 'the dry-run planned exactly what the real run did');
  return plannedSteps(real.report);
}

t.test('dry-run on a fresh host: each step has the status and summary the real run then has', async (t) => {
  const real = await dryThenReal(t, 'tasks/provision.ts');
  for (const h of lab.hosts) t.ok((real[h.name] ?? []).some((s) => s.startsWith('changed ')), `${h.name}: the first run changed something`);
});

t.test('tasks/baseline.ts on the same host (a unit file, a service, handlers): the dry-run says what the real run does', async (t) => {
  await dryThenReal(t, 'tasks/baseline.ts');
  for (const h of lab.hosts) t.equal((await lab.ssh(h.name, 'systemctl is-active demo')).stdout, 'active\n', `${h.name}: the demo service runs`);
});

t.test('converged: dry-run and real run are all ok', async (t) => {
  for (const args of [['--dry-run'], []]) {
    const run = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, ...args]);
    t.equal(run.code, 0, args.join(' ') || 'real run', { stdout: run.stdout.slice(-3000), stderr: run.stderr });
    for (const [host, steps] of Object.entries(plannedSteps(run.report))) t.same(steps.filter((s) => !s.startsWith('ok ')), [], `${host} ${args.join(' ')}: every step ok`);
  }
});

t.test('a converged host reads all the facts of the task in one round trip', async (t) => {
  const inv = await loadInventoryFile(inventory);
  const batches = new Map<string, number>();
  // The fact batch is the exec whose output is split by tackle's random marker.
  const counting = (conn: Connection): Connection =>
    execSpy(conn, (command) => {
      if (command.toString().includes('__TACKLE_')) batches.set(conn.host, (batches.get(conn.host) ?? 0) + 1);
    });
  for (const dryRun of [true, false]) {
    batches.clear();
    const result = await runTask(provision, selectHosts(inv), { dryRun, connect: async (h) => counting(await openConnection(h, inv, { home: '/root', localUser: 'root' })) });
    for (const h of result.hosts) {
      t.equal(h.status, 'ok', `${h.name}: converged`, { steps: h.steps.filter((s) => s.status !== 'ok') });
      t.equal(batches.get(h.name), 1, `${h.name}${dryRun ? ' (dry-run)' : ''}: one round trip for the facts`);
    }
  }
});
