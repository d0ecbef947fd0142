// The live view tells the truth: runs of two fake hosts (directories on this machine, through
// LocalConnection) rendered into a fake terminal (listr2's default renderer on a PassThrough
// with isTTY) and into plain output (CI), read back as text with the ANSI codes stripped.
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { runCli } from '../../../lib/cli/main.ts';
import { formatRecap, liveView, painter } from '../../../lib/cli/ui.ts';
import { defineOperation } from '../../../lib/ops/operation.ts';
import { runTask, type RunEvent, type RunResult } from '../../../lib/engine/runner.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { secret } from '../../../lib/command/command.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory, type InventoryHost } from '../../../lib/inventory/inventory.ts';
import { v } from '../../../lib/inventory/vars.ts';
import { tempDir } from '../../support/temp-dir.ts';

// listr2 wraps lines at the width of the global process.stdout (80 columns when it is a pipe), not
// at the stream's: both are wide, so that no line holding a temporary path (as long as TMPDIR makes
// it) is wrapped.
const COLUMNS = 300;
process.stdout.columns = COLUMNS;

/** A stream the view writes to: a terminal (isTTY, wide) or a pipe; `text()` is what was written. */
function screen(tty: boolean) {
  const stream = Object.assign(new PassThrough(), { isTTY: tty, columns: COLUMNS, rows: 40 });
  let written = '';
  stream.on('data', (d: Buffer) => (written += d.toString()));
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => written };
}

/** The frames the default renderer drew (each redraw starts at column 1), without ANSI codes. */
const frames = (text: string) => text.split('\u001b[G').map((f) => stripVTControlCharacters(f));
const lines = (text: string) => stripVTControlCharacters(text).split('\n');

const touch = (path: string, seconds = 0) =>
  defineOperation({
    name: `touch ${path}`,
    facts: { exists: defineFact(`exists:${path}`, sh`test -e ${path}`, (o) => o.exitCode === 0, { reads: [path] }) },
    // Its effects let a dry-run plan the steps after it (they read other paths).
    plan: ({ exists }) => (exists ? undefined : { summary: `create ${path}`, actions: [{ command: sh`sleep ${seconds} && touch ${path}` }], effects: { writes: [path] } }),
  });

// A slow first step (apt in the field, 38 s), then two quick ones.
const task = defineTask({
  name: 'view',
  vars: { dir: v.string() },
  async run(host) {
    await host.run(defineOperation({ name: 'slow first step', facts: {}, plan: () => ({ summary: 'wait', actions: [{ command: sh`sleep 1.2` }], effects: {} }) }));
    await host.run(touch(join(host.vars.dir, 'one')));
    await host.run(touch(join(host.vars.dir, 'two')));
  },
});

function fleet() {
  const dir = tempDir('view');
  const inv = defineInventory({ hosts: { web1: { connection: 'local', vars: { dir: join(dir, 'web1') } }, web2: { connection: 'local', vars: { dir: join(dir, 'web2') } } } });
  const hosts = [...inv.hosts.values()];
  for (const h of hosts) new LocalConnection('x').exec(sh`mkdir -p ${join(dir, h.name)}`);
  return { dir, hosts };
}

/** Runs the task on both hosts into a view on `out`; `during` is what was on screen when each host's slow step ended. */
async function render(out: ReturnType<typeof screen>, dryRun: boolean, env: Record<string, string> = {}): Promise<{ result: RunResult; during: Map<string, string>; dir: string }> {
  const { dir, hosts } = fleet();
  const view = liveView(['web1', 'web2'], { stdout: out.stream, stderr: out.stream, env }, { dryRun });
  const during = new Map<string, string>();
  const onEvent = (e: RunEvent) => {
    if (e.type === 'step:end' && e.step.name === 'slow first step') during.set(e.host, out.text());
    view.onEvent(e);
  };
  const result = await runTask(task, hosts, {
    dryRun,
    onEvent,
    connect: async (h: InventoryHost) => new LocalConnection(h.name),
    hostPaths: (h) => ({ lock: join(dir, 'lock', h.name), state: join(dir, 'state', h.name) }),
  });
  await view.closed;
  return { result, during, dir };
}

t.test('terminal: while the first step runs, each host row shows that step, not "waiting"', async (t) => {
  const out = screen(true);
  const { during } = await render(out, false);
  for (const host of ['web1', 'web2']) {
    const row = (frames(during.get(host) ?? '').at(-1) ?? '').split('\n').find((l) => l.includes(`${host}:`));
    t.match(row, new RegExp(`^. ${host}: slow first step$`), `${host}'s row names its step: ${JSON.stringify(row)}`);
  }
});

t.test('terminal: events that come before listr2 starts the rows are not lost', async (t) => {
  const out = screen(true);
  const view = liveView(['web1'], { stdout: out.stream, stderr: out.stream, env: {} });
  view.onEvent({ type: 'host:start', host: 'web1' });
  view.onEvent({ type: 'step:start', host: 'web1', step: 'apt.packages nginx' });
  await new Promise((r) => setTimeout(r, 300));
  t.match(frames(out.text()).at(-1), /web1: apt\.packages nginx/, 'the row shows the step under way');
  view.onEvent({ type: 'host:end', host: 'web1', result: { name: 'web1', status: 'ok', durationMs: 1, steps: [] } });
  await view.closed;
});

t.test('terminal, dry-run: rows and step lines say "would change" and name their host', async (t) => {
  const out = screen(true);
  const { dir } = await render(out, true);
  const last = frames(out.text()).at(-1) ?? '';
  for (const host of ['web1', 'web2']) {
    t.match(last, new RegExp(`${host}: would change \\(0 ok, 3 would change, 0 failed\\)`), `${host}'s row`);
  }
  const stepLines = frames(out.text()).flatMap((f) => f.split('\n')).filter((l) => l.includes('touch'));
  t.ok(stepLines.length > 0);
  t.ok(stepLines.some((l) => l.trimStart().startsWith('›')), 'step lines under the rows');
  for (const l of stepLines) {
    // Under a row, what a step did; in the row, the step under way.
    const host = l.trimStart().startsWith('›') ? /^ +› (web\d): would change: touch (\S+)$/.exec(l) : /^. (web\d): touch (\S+)$/.exec(l);
    t.ok(host, `a line with host and verb: ${l}`);
    t.ok(host?.[2]?.startsWith(join(dir, host[1] ?? '')), `its step belongs to its host: ${l}`);
  }
  t.notMatch(stripVTControlCharacters(out.text()), /(?<!would )changed/, 'never "changed" in a dry-run');
});

t.test('plain output (CI): every step line names its host; a dry-run says "would change", a real run "changed"', async (t) => {
  for (const dryRun of [true, false]) {
    const out = screen(false);
    const { dir } = await render(out, dryRun, { CI: 'true' });
    const verb = dryRun ? 'would change' : 'changed';
    const text = lines(out.text());
    const steps = text.filter((l) => l.startsWith('›'));
    t.equal(steps.length, 6, `${verb}: three steps on each of two hosts`);
    for (const l of steps) {
      const m = /^› (web\d): (would change|changed): (.*)$/.exec(l);
      t.equal(m?.[2], verb, l);
      if (m?.[3] !== 'slow first step') t.ok(m?.[3]?.startsWith(`touch ${join(dir, m?.[1] ?? '')}`), `the step is ${m?.[1]}'s own: ${l}`);
    }
    for (const host of ['web1', 'web2']) t.ok(text.some((l) => l.startsWith(`✔ ${host}: ${verb} (0 ok, 3 ${verb}, 0 failed)`)), `${host}'s end line`);
    if (dryRun) t.notMatch(text.join('\n'), /(?<!would )changed/);
  }
});

t.test('recap: dry-run wording, and each host\'s changed steps by name under the table', async (t) => {
  const paint = painter({ stdout: screen(false).stream, stderr: screen(false).stream, env: {} });
  const dry = await render(screen(false), true);
  const recap = formatRecap(dry.result, paint);
  t.match(recap, /RECAP view \(dry-run: nothing was changed\)\nHOST +STATUS +OK +WOULD CHANGE +FAILED/);
  t.match(recap, /\nweb1 +would change +0 +3 +0 +0 /);
  t.notMatch(recap.replace('(dry-run: nothing was changed)', ''), /(?<!would )changed|CHANGED/);
  t.match(recap, `\nSteps that would change:\n  web1: slow first step\n  web1: touch ${join(dry.dir, 'web1/one')}\n  web1: touch ${join(dry.dir, 'web1/two')}\n  web2: slow first step\n`);
  const real = await render(screen(false), false);
  const after = formatRecap(real.result, paint);
  t.match(after, /HOST +STATUS +OK +CHANGED +FAILED/);
  t.match(after, `\nChanged steps:\n  web1: slow first step\n  web1: touch ${join(real.dir, 'web1/one')}\n`);
  const again = formatRecap((await runTask(task, real.result.hosts.map((h) => ({ name: h.name, groups: [], vars: { dir: join(real.dir, h.name) } }) as unknown as InventoryHost), { connect: async (h) => new LocalConnection(h.name), hostPaths: (h) => ({ lock: join(real.dir, 'lock', h.name), state: join(real.dir, 'state', h.name) }) })), paint);
  t.match(again, /Changed steps:\n {2}web1: slow first step\n {2}web2: slow first step\n\n/, 'a converged run lists only the step that always acts');
});

t.test('--help lists the vars with what fits and their defaults, and the exit codes, without loading the inventory', async (t) => {
  const helpful = defineTask({
    name: 'helpful',
    vars: {
      domain: v.domain(),
      port: v.port().default(8080),
      token: v.secret().default(secret('hunter2')),
      note: v.string().optional(),
      site: v.object({ name: v.fileName(), upstreams: v.array(v.hostPort()).default([]) }),
    },
    run: async () => {},
  });
  const out = screen(false);
  const started = performance.now();
  const code = await runCli(helpful, { argv: ['--help', '--inventory', '/nonexistent/inventory.ts'], cwd: '/', env: {}, stdout: out.stream, stderr: out.stream });
  t.equal(code, 0);
  t.ok(performance.now() - started < 2000, 'fast: nothing loads or connects');
  const help = out.text();
  t.match(help, /\n {2}domain +a domain name such as "app\.example\.com"; required\n/);
  t.match(help, /\n {2}port +a port number \(1-65535\); default 8080\n/);
  t.match(help, /\n {2}token +a secret \(secret\(\.\.\.\)\); default \*\*\*\n/);
  t.notMatch(help, /hunter2/);
  t.match(help, /\n {2}note +a string \(optional\)\n/);
  t.match(help, /\n {2}site\.upstreams +an array of host:port[^\n]*; default \[\]\n/);
  t.match(help, /Exit codes:\n {2}0 +every host ok or changed[^\n]*\n {2}1 +usage, inventory[^\n]*\n {2}2 +any host failed or was unreachable[^\n]*\n {2}3 +a report found a warning[^\n]*\n {2}130 +interrupted with Ctrl-C[^\n]*\n {2}143 +stopped by SIGTERM\n/);
});
