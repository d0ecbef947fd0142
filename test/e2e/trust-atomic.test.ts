// A file is installed whole or not at all, whatever happens to the controller (issue 8, item 2).
// A task writes a large file with files.file over an existing one; mid-transfer (seen as the
// temporary file growing on the host) the controller is killed with SIGTERM, two SIGINTs or
// SIGKILL, or the writer is killed on the host. Every check reads the host: the old file's
// sha256, the directory's temporary files, the new file's bytes after a complete run.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t, { type Test } from 'tap';
import type { JsonReport } from '../../lib/engine/report.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory } from './support/cli.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const DIR = '/srv/atomic';
const TARGET = `${DIR}/big.bin`;

const lab = await withLab(t, 1);
const inventory = await labInventory(lab);
const work = await mkdtemp(join(tmpdir(), 'tackle-atomic-'));
const task = join(work, 'big.mts');
// The content is a pattern the test can rebuild to know its sha256; a NUL keeps it binary.
await writeFile(
  task,
  `import { Buffer } from 'node:buffer';
import { defineTask, files, isMain, runCli, v } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
const task = defineTask({ name: 'big', vars: { bytes: v.number() }, async run(host) {
  await host.run(files.file({ path: ${JSON.stringify(TARGET)}, content: Buffer.alloc(host.vars.bytes, 'tackle atomic\\0') }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, signals: process });
`,
);
const contentSha = (bytes: number) => createHash('sha256').update(Buffer.alloc(bytes, 'tackle atomic\0')).digest('hex');

interface Controller {
  pid: number;
  output: () => string;
  exited: Promise<number>;
}

function startRun(bytes: number, report: string): Controller {
  const child = spawn(process.execPath, ['--import', 'tsx', task, '--inventory', inventory, '--var', `bytes=${bytes}`, '--json', report], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((r) => child.on('close', (code, signal) => r(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 2))));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  void exited.then(() => clearTimeout(timer));
  return { pid: child.pid as number, output: () => out, exited };
}

const sha = async (path: string) => (await lab.ssh('lab1', `sha256sum < ${path} | cut -c1-64`)).stdout.trim();
const temps = async () => (await lab.ssh('lab1', `ls -A ${DIR} | grep tackle || true`)).stdout.trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until a temporary file in DIR holds at least `min` bytes: the transfer is under way. */
async function midTransfer(min: number, run: Controller): Promise<number> {
  const deadline = Date.now() + 60_000;
  let done = false;
  void run.exited.then(() => (done = true));
  while (Date.now() < deadline && !done) {
    const sizes = (await lab.ssh('lab1', `for f in ${DIR}/.tackle-*; do [ -f "$f" ] && stat -c %s -- "$f"; done; true`)).stdout.split('\n').filter(Boolean).map(Number);
    const size = Math.max(0, ...sizes);
    if (size >= min) return size;
    await sleep(50);
  }
  throw new Error(`no temporary file in ${DIR} reached ${min} bytes (controller ${done ? 'already exited' : 'still running'}):\n${run.output().slice(-2000)}`);
}

/** After the controller is gone the host may still be checking or cleaning up: wait until no writer holds a file in DIR. */
async function writerGone(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const busy = await lab.ssh('lab1', `for p in /proc/[0-9]*; do ls -l $p/fd 2>/dev/null | grep -q ' ${DIR}/' && echo $p; done; true`);
    if (busy.stdout.trim() === '') return;
    await sleep(100);
  }
}

async function oldFile(): Promise<string> {
  await lab.ssh('lab1', `mkdir -p ${DIR} && rm -f ${DIR}/.tackle-* && head -c 1048576 /dev/urandom > ${TARGET}`);
  return sha(TARGET);
}

// Large enough to still be under way when the signals arrive, small enough for well under a
// minute per case: about ten seconds of transfer at the speed this machine gives right now,
// measured as the step time of a first, complete write.
const probeBytes = 64 * 2 ** 20;
await lab.ssh('lab1', `mkdir -p ${DIR}`);
const probeReport = join(work, 'probe.json');
const probe = await startRun(probeBytes, probeReport).exited;
const probeMs = (JSON.parse(await readFile(probeReport, 'utf8')) as JsonReport).hosts[0]?.steps[0]?.durationMs ?? 1000;
const perSecond = probeBytes / (probeMs / 1000);
const bytes = Math.round(Math.min(300 * 2 ** 20, Math.max(96 * 2 ** 20, perSecond * 10)));
t.comment(`probe exit ${probe}; about ${Math.round(perSecond / 2 ** 20)} MB/s; the large file is ${Math.round(bytes / 2 ** 20)} MB`);
const newSha = contentSha(bytes);

async function completeRunInstallsExactly(t: Test): Promise<void> {
  const report = join(work, `complete-${Date.now()}.json`);
  const run = startRun(bytes, report);
  t.equal(await run.exited, 0, 'the next run completes', { output: run.output().slice(-2000) });
  t.equal(await sha(TARGET), newSha, 'the file is exactly the new bytes');
  t.equal(await temps(), '', 'no temporary file remains in the directory');
}

async function interruptedReport(t: Test, file: string): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as JsonReport;
  t.equal(json.interrupted, true, 'the JSON report says interrupted');
  t.equal(json.hosts[0]?.steps[0]?.name, `files.file ${TARGET}`);
  t.not(json.hosts[0]?.steps[0]?.status, 'changed', 'the write is not reported as done');
}

t.test('kill -TERM of the controller mid-transfer: old file intact, exit 143, recap and report', async (t) => {
  const before = await oldFile();
  const report = join(work, 'term.json');
  const run = startRun(bytes, report);
  t.comment(`temp at ${await midTransfer(bytes / 10, run)} bytes when SIGTERM is sent`);
  process.kill(run.pid, 'SIGTERM');
  t.equal(await run.exited, 143, 'exit code 143', { output: run.output().slice(-2000) });
  await writerGone();
  t.equal(await sha(TARGET), before, 'the old file is unchanged');
  t.match(run.output(), /RECAP big \(interrupted\)/, 'a recap was printed');
  await interruptedReport(t, report);
  await completeRunInstallsExactly(t);
});

t.test('two Ctrl-C mid-transfer: the run ends at once, old file intact, exit 130, recap and report', async (t) => {
  const before = await oldFile();
  const report = join(work, 'int.json');
  const run = startRun(bytes, report);
  await midTransfer(bytes / 10, run);
  process.kill(run.pid, 'SIGINT');
  await sleep(200);
  process.kill(run.pid, 'SIGINT');
  const stopped = performance.now();
  t.equal(await run.exited, 130, 'exit code 130', { output: run.output().slice(-2000) });
  t.ok(performance.now() - stopped < 10_000, 'the second Ctrl-C ends the run at once, not after the transfer');
  await writerGone();
  t.equal(await sha(TARGET), before, 'the old file is unchanged');
  t.match(run.output(), /RECAP big \(interrupted\)/, 'a recap was printed');
  await interruptedReport(t, report);
  await completeRunInstallsExactly(t);
});

t.test('kill -KILL of the controller mid-transfer: old file intact, the next run leaves no temporary file', async (t) => {
  const before = await oldFile();
  const run = startRun(bytes, join(work, 'kill.json'));
  await midTransfer(bytes / 10, run);
  process.kill(run.pid, 'SIGKILL');
  t.equal(await run.exited, 137);
  await writerGone();
  t.equal(await sha(TARGET), before, 'the old file is unchanged');
  await completeRunInstallsExactly(t);
});

t.test('a writer killed on the host leaves its temporary file; the next run that writes the path removes it', async (t) => {
  const before = await oldFile();
  const run = startRun(bytes, join(work, 'host-kill.json'));
  await midTransfer(bytes / 10, run);
  // The controller is paused while the host's writer is found and killed, so the transfer cannot
  // finish first however fast this machine is at the moment; it resumes to see its channel end.
  process.kill(run.pid, 'SIGSTOP');
  // The process that has the temporary file open is `cat`; its parent is the writer's shell.
  // Both die by SIGKILL, so no trap runs: what a power cut or the OOM killer leaves behind.
  await lab.ssh(
    'lab1',
    `for p in /proc/[0-9]*; do if ls -l $p/fd 2>/dev/null | grep -q ' ${DIR}/.tackle-'; then pid=\${p#/proc/}; kill -KILL $(cut -d' ' -f4 $p/stat) $pid; fi; done`,
  );
  process.kill(run.pid, 'SIGCONT');
  t.equal(await run.exited, 2, 'the step fails on that host', { output: run.output().slice(-2000) });
  await writerGone();
  t.equal(await sha(TARGET), before, 'the old file is unchanged');
  t.match(await temps(), /^\.tackle-/, 'the killed writer left its temporary file');
  await completeRunInstallsExactly(t);
});
