// Issue 8, item 8: the lab is safe to share a machine with. `npm run lab -- down` (run here as a
// user runs it) removes only the lab it is told, or what this checkout left behind, and a new lab
// takes a subnet no interface on the machine uses. Other people's labs run beside these tests, so
// every lab this file touches is one it started itself.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import { poll, run, type RunResult } from '../../lab/exec.ts';
import { downLab, listLabs, startLab, STATE_ROOT, withLab, type Lab } from '../../lab/lab.ts';
import { findProcesses } from '../../lab/system.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/** `npm run lab -- ARGS` in the checkout `dir`, as a user types it. */
const npmLab = (dir: string, args: string[]): Promise<RunResult> => run('env', ['-C', dir, 'npm', 'run', '--silent', 'lab', '--', ...args], { timeoutMs: 300_000 });

/** The lab recorded at `index`, or undefined when there is none. */
async function labAt(index: number): Promise<Lab | undefined> {
  return (await listLabs()).find((lab) => lab.index === index);
}

/**
 * Labs started here by other processes (the script, a crashed child): each is taken down in the
 * teardown by its id, so a slot that someone else has claimed since is never touched.
 */
const startedElsewhere: Array<{ index: number; id: string | undefined }> = [];
t.teardown(async () => {
  for (const { index, id } of startedElsewhere) await downLab(index, { id });
});

async function remember(index: number): Promise<Lab> {
  const state = JSON.parse(await readFile(join(STATE_ROOT, String(index), 'state.json'), 'utf8')) as { id?: string };
  startedElsewhere.push({ index, id: state.id });
  const lab = await labAt(index);
  if (!lab) throw new Error(`lab ${index} is not recorded`);
  return lab;
}

/** `up` through the script in checkout `dir`; resolves with the lab it started. */
async function upFrom(dir: string): Promise<Lab> {
  const up = await npmLab(dir, ['up', '1']);
  const index = /^lab (\d+): 1 host\(s\) answering ssh/m.exec(up.stdout)?.[1];
  if (up.code !== 0 || index === undefined) throw new Error(`npm run lab -- up 1 in ${dir} exited ${up.code}:\n${up.stdout}\n${up.stderr}`);
  return remember(Number(index));
}

/**
 * A second checkout: a copy of the lab's own files in a temp dir, with the same node_modules.
 * Labs it starts are someone else's as far as this checkout is concerned.
 */
async function otherCheckout(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-checkout-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'scripts'));
  await mkdir(join(dir, 'lab'), { recursive: true });
  const files = ['package.json', 'scripts/lab.ts', ...(await readdir(join(ROOT, 'lab'))).map((f) => `lab/${f}`)];
  for (const file of files) await copyFile(join(ROOT, file), join(dir, file));
  await symlink(await realpath(join(ROOT, 'node_modules')), join(dir, 'node_modules'));
  return dir;
}

/**
 * A test run of this checkout that starts a lab and is then killed with `sig`: SIGKILL leaves the
 * lab behind (no teardown, no exit handler); resolves with that lab.
 */
async function killedRun(sig: NodeJS.Signals): Promise<Lab> {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const script = join(dir, 'crash.mts');
  await writeFile(
    script,
    `import { startLab } from ${JSON.stringify(join(ROOT, 'lab/lab.ts'))};\n` +
      `const lab = await startLab({ hosts: 1, name: 'killed' });\nconsole.log('index', lab.index);\nsetInterval(() => {}, 60_000);\n`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const index = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /^index (\d+)$/m.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`the crashing run exited (${code}) before its lab was up: ${out}`)));
  });
  const lab = await remember(index);
  child.kill(sig);
  await new Promise((resolve) => child.once('exit', resolve));
  return lab;
}

/** Asserts that nothing of lab `lab` is left on the machine (without probing 10.200.x.x, which would then leave the machine). */
async function assertGone(t: Test, lab: Lab, what: string): Promise<void> {
  t.equal(existsSync(join(STATE_ROOT, String(lab.index))), false, `${what}: its state dir is gone`);
  t.equal(existsSync(`/sys/class/net/tkl-${lab.index}-br`), false, `${what}: its bridge is gone`);
  t.equal(existsSync(dirname(lab.privateKeyPath)), false, `${what}: its temp dir is gone`);
  for (const host of lab.hosts) t.equal(existsSync(`/run/netns/tkl-${lab.index}-${host.name}`), false, `${what}: ${host.name}'s namespace is gone`);
  const machines = await findProcesses((argv) => argv.some((arg) => arg.startsWith(`--machine=tkl-${lab.index}-`)));
  t.same(machines, [], `${what}: no container of it runs`);
  t.same(await rootedIn(lab), [], `${what}: no process runs on its hosts' disks`);
}

/** Processes whose mounts name the lab's own tmp dir: its hosts' containers, with or without their nspawn. */
async function rootedIn(lab: Lab): Promise<number[]> {
  const dir = dirname(lab.privateKeyPath);
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  const mounts = await Promise.all(pids.map((p) => readFile(`/proc/${p}/mountinfo`, 'utf8').catch(() => '')));
  return pids.filter((_, i) => mounts[i]?.includes(`upperdir=${dir}/`)).map(Number);
}

async function assertAnswers(t: Test, lab: Lab, what: string): Promise<void> {
  for (const host of lab.hosts) {
    const result = await lab.ssh(host.name, 'hostname');
    t.same([result.code, result.stdout], [0, `${host.name}\n`], `${what}: ${host.name} still answers ssh`, { stderr: result.stderr });
  }
}

// Two labs of this test process; the second stays up for the whole file and must survive every `down`.
const [told, bystander] = await Promise.all([withLab(t, 1, { name: 'told' }), withLab(t, 1, { name: 'bystander' })]);

t.test('down INDEX removes that lab and no other', async (t) => {
  const down = await npmLab(ROOT, ['down', String(told.index)]);
  t.equal(down.code, 0, `npm run lab -- down ${told.index}`, { stdout: down.stdout, stderr: down.stderr });
  await assertGone(t, told, `lab ${told.index}`);
  await assertAnswers(t, bystander, `the other lab ${bystander.index}`);
});

t.test('down without an index removes what this checkout left behind, and nothing of anyone else', async (t) => {
  const inventory = join(ROOT, 'lab-inventory.ts');
  const ours = await upFrom(ROOT);
  // Should `down` fail to remove it, the lab goes in the file's teardown; its inventory goes here.
  t.teardown(() => rm(inventory, { force: true }));
  t.equal(existsSync(inventory), true, '`up` wrote lab-inventory.ts');
  const otherDir = await otherCheckout();
  const theirs = await upFrom(otherDir);
  const crashed = await killedRun('SIGKILL');

  const down = await npmLab(ROOT, ['down']);
  t.equal(down.code, 0, 'npm run lab -- down', { stdout: down.stdout, stderr: down.stderr });
  await assertGone(t, ours, `this checkout's \`up\` lab ${ours.index}`);
  t.equal(existsSync(inventory), false, "this checkout's lab-inventory.ts is gone with it");
  await assertGone(t, crashed, `lab ${crashed.index} of a test run of this checkout that was killed`);
  await assertAnswers(t, theirs, `lab ${theirs.index}, started from another checkout`);
  t.equal(existsSync(join(otherDir, 'lab-inventory.ts')), true, "the other checkout's lab-inventory.ts stays");
  await assertAnswers(t, bystander, `lab ${bystander.index} of a test run still going`);

  const status = await npmLab(ROOT, ['status']);
  t.match(status.stdout, `lab ${theirs.index}`, 'status lists the lab of the other checkout');
  t.match(status.stdout, otherDir, 'and names its checkout');
});

t.test('a host whose nspawn was killed keeps running without it: down kills it and removes the lab', async (t) => {
  // Seen in CI: an nspawn killed while its host booted left the container running, and every later
  // down of that lab failed (its cgroups stayed busy).
  const lab = await withLab(t, 1, { name: 'orphan' });
  const [nspawn] = await findProcesses((argv) => argv.includes(`--machine=tkl-${lab.index}-orphan1`));
  if (!nspawn) throw new Error(`no nspawn for lab ${lab.index}`);
  process.kill(nspawn.pid, 'SIGKILL');
  await poll(async () => ((await findProcesses((argv) => argv.includes(`--machine=tkl-${lab.index}-orphan1`))).length === 0 ? true : undefined), { timeoutMs: 10_000, onTimeout: () => new Error('nspawn outlived SIGKILL') });
  t.not((await rootedIn(lab)).length, 0, 'its container runs on without nspawn');
  const down = await npmLab(ROOT, ['down', String(lab.index)]);
  t.equal(down.code, 0, `npm run lab -- down ${lab.index}`, { stdout: down.stdout, stderr: down.stderr });
  await assertGone(t, lab, `lab ${lab.index}`);
  await assertAnswers(t, bystander, `the other lab ${bystander.index}`);
});

t.test('two teardowns of one lab at once: one does it, the other waits, and a lab that takes the index next is left alone', async (t) => {
  const first = await startLab({ hosts: 1, name: 'twice' });
  // Both read the lab's state now, as a test's teardown and its exit reaper (or two `down`s) can.
  const one = downLab(first.index);
  const other = downLab(first.index);
  await one;
  // The index is free again: a new lab may take it while the other teardown still holds the old state.
  const next = await withLab(t, 1, { name: 'twice' });
  await other;
  // Only what is the first lab's own: the index's names may be the next lab's by now.
  t.equal(existsSync(dirname(first.privateKeyPath)), false, 'the first lab: its temp dir is gone');
  t.same(await rootedIn(first), [], 'the first lab: no process runs on its disks');
  await assertAnswers(t, next, `lab ${next.index}, which took the index ${first.index === next.index ? 'again' : 'next'}`);
});

t.test('a test run stopped by SIGTERM has its lab, and only that one, removed by its reaper', async (t) => {
  const killed = await killedRun('SIGTERM');
  await poll(async () => (existsSync(join(STATE_ROOT, String(killed.index))) ? undefined : true), {
    timeoutMs: 60_000,
    intervalMs: 200,
    onTimeout: () => new Error(`lab ${killed.index} was still recorded 60 s after its process got SIGTERM`),
  });
  await assertGone(t, killed, `lab ${killed.index} of the stopped run`);
  await assertAnswers(t, bystander, `lab ${bystander.index} of a test run still going`);
});

t.test('a new lab takes no subnet that an interface on the machine already uses', async (t) => {
  // The index the next lab would take: the lowest one that is neither claimed nor in use.
  const addresses = (await run('ip', ['-o', '-4', 'address', 'show'])).stdout;
  const claimed = new Set(await readdir(STATE_ROOT).catch(() => []));
  let next = 0;
  while (claimed.has(String(next)) || addresses.includes(` 10.200.${next}.`)) next++;

  // Someone else's interface there: a bridge of our own, left down so that it adds no route.
  const link = `tkl-t-s${process.pid % 100_000}`;
  t.teardown(() => run('ip', ['link', 'delete', link]));
  await run('ip', ['link', 'add', link, 'type', 'bridge']);
  const add = await run('ip', ['address', 'add', `10.200.${next}.77/24`, 'dev', link]);
  t.equal(add.code, 0, `${link} holds 10.200.${next}.77/24`, { stderr: add.stderr });

  const lab = await withLab(t, 1, { name: 'subnet' });
  t.not(lab.index, next, `the lab skips 10.200.${next}.0/24`);
  const holders = (await run('ip', ['-o', '-4', 'address', 'show'])).stdout.split('\n').filter((line) => line.includes(` 10.200.${lab.index}.`));
  t.same(
    holders.map((line) => line.split(/\s+/)[1]),
    [`tkl-${lab.index}-br`],
    `only the lab's own bridge has an address in 10.200.${lab.index}.0/24`,
  );
  await assertAnswers(t, lab, `lab ${lab.index}`);
});
