// Issue 8 item 5: two runs on one host do not lose work. Each run holds a per-host lock on the
// host for its whole duration; a second run waits for it, or fails that host naming the holder
// once --lock-timeout has passed; a killed controller's lock goes with its connection.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import t from 'tap';
import { poll } from '../../lab/exec.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { OPS_PASSWORD, withLab } from '../../lab/lab.ts';
import { labInventory } from './support/cli.ts';
import { writeTaskFile } from './support/task-file.ts';

const lab = await withLab(t, 1);
const inventory = await labInventory(lab);
// The same host reached as ops through sudo with a password: the lock is taken where the run
// works (through the host's connection as-is), so both inventories meet at one lock.
const sudoInventory = await labInventory(lab, { lab1: { user: 'ops' } }, `const env = loadEnv({ SUDO_PASSWORD: { secret: true } }, { env: process.env });`);
await writeFile(sudoInventory, (await readFile(sudoInventory, 'utf8')).replace(/("user": "ops",)/, '$1 "become": { "password": env.SUDO_PASSWORD },'));
const FILE = '/root/race.txt';
// 20 files.line steps, each planned from the file as its facts read it: without a lock, two runs
// interleave reads and writes and each rename drops the other's lines.
const task = await writeTaskFile(
  'race',
  ['files', 'shell', 'sh', 'v'],
  `{
  name: 'race',
  vars: { tag: v.string(), hold: v.integer().default(0) },
  async run(host) {
    if (host.vars.hold > 0) await host.run(shell({ command: sh\`sleep \${host.vars.hold}\` }));
    for (let i = 1; i <= 20; i++) await host.run(files.line({ path: ${JSON.stringify(FILE)}, line: \`\${host.vars.tag}-\${i}\`, create: true }));
  },
}`,
);

interface Cli {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; ms: number }>;
}

/** Starts the task's CLI as a person would; `pid` is the controller process named in lock records. */
function startCli(args: readonly string[], inv = inventory): Cli {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', task, '--inventory', inv, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1', SUDO_PASSWORD: OPS_PASSWORD } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<Awaited<Cli['done']>>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out, ms: performance.now() - started })));
  return { pid: child.pid as number, done };
}

const lines = async (): Promise<string[]> => (await lab.ssh('lab1', `cat ${FILE} 2>/dev/null || true`)).stdout.split('\n').filter(Boolean);
const expected = (tag: string) => Array.from({ length: 20 }, (_, i) => `${tag}-${i + 1}`);

/** Waits until the host's lock record names this controller process. */
async function holding(cli: Cli): Promise<string> {
  return poll(
    async () => {
      const record = (await lab.ssh('lab1', 'cat /run/lock/tackle/holder 2>/dev/null || true')).stdout;
      return record.includes(`(pid ${cli.pid})`) ? record : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, onTimeout: () => new Error(`no lock record on lab1 names pid ${cli.pid}`) },
  );
}

t.test('two concurrent runs of 20 files.line steps on one host lose no line', async (t) => {
  await lab.ssh('lab1', `rm -f ${FILE}`);
  const [a, b] = await Promise.all([startCli(['--var', 'tag=a']).done, startCli(['--var', 'tag=b']).done]);
  t.equal(a.code, 0, 'first run exit code', { out: a.out.slice(-2000) });
  t.equal(b.code, 0, 'second run exit code', { out: b.out.slice(-2000) });
  const got = await lines();
  t.equal(got.length, 40, '40 lines on the host');
  t.same([...got].sort(), [...expected('a'), ...expected('b')].sort(), 'every line of both runs is there, once');
});

t.test('with a short --lock-timeout the second run fails that host naming the holder; a killed holder releases the lock', async (t) => {
  await lab.ssh('lab1', `rm -f ${FILE}`);
  const before = Date.now();
  // The holder works through sudo with a password on stdin; the others log in as root.
  const holder = startCli(['--var', 'tag=h', '--var', 'hold=90'], sudoInventory);
  await holding(holder);

  const busy = await startCli(['--var', 'tag=w', '--lock-timeout', '2']).done;
  t.equal(busy.code, 2, 'the waiting run fails', { out: busy.out.slice(-2000) });
  const m = new RegExp(`busy: task race from ${hostname().replace(/[.]/g, '\\.')} \\(pid ${holder.pid}\\) since (\\S+)`).exec(busy.out);
  t.ok(m, 'the message names the holder: task, controller host name and pid', { out: busy.out.slice(-2000) });
  const since = Date.parse(m?.[1] ?? '');
  t.ok(since >= Math.floor(before / 1000) * 1000 && since <= Date.now(), `the time the lock was taken (${m?.[1]})`);
  t.same(await lines(), [], 'the waiting run changed nothing');

  // SIGKILL: no cleanup runs on the controller; the host must notice the connection is gone.
  process.kill(holder.pid, 'SIGKILL');
  const killed = await holder.done;
  t.equal(killed.signal, 'SIGKILL');
  const next = await startCli(['--var', 'tag=n', '--lock-timeout', '60']).done;
  t.equal(next.code, 0, 'the next run gets the lock', { out: next.out.slice(-2000) });
  t.ok(next.ms < 45_000, `it did not wait for the killed run's 90 s step (${Math.round(next.ms)} ms)`);
  t.same(await lines(), expected('n'));
});
