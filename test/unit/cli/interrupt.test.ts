import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

interface Interrupted {
  code: number | null;
  out: string;
  /** Milliseconds from the last signal to the exit. */
  afterSignal: number;
  dir: string;
  report: { interrupted: boolean; hosts: Array<{ status: string; steps: Array<{ name: string; status: string; error?: { reason: string } }> }> };
}

/** Runs the slow fixture, sends `signals` (200 ms apart) once its slow step runs, and reads what it left. */
async function interrupt(signals: readonly NodeJS.Signals[], seconds: number): Promise<Interrupted> {
  const dir = tempDir('int');
  const inv = join(dir, 'inventory.mts');
  writeFileSync(inv, `import { defineInventory } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};\nexport default defineInventory({ hosts: { here: { connection: 'local', vars: { dir: ${JSON.stringify(dir)} } } } });\n`);
  const report = join(dir, 'report.json');
  const args = [join(ROOT, 'test/unit/cli/fixtures/slow.ts'), '--inventory', inv, '--json', report, '--var', `seconds=${seconds}`];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<number | null>((r) => child.on('close', r));
  // Interrupt once the slow step is running on the host.
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(dir, 'started')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  for (const [i, sig] of signals.entries()) {
    if (i > 0) await new Promise((r) => setTimeout(r, 200));
    child.kill(sig);
  }
  const sent = performance.now();
  const code = await closed;
  return { code, out, afterSignal: performance.now() - sent, dir, report: JSON.parse(readFileSync(report, 'utf8')) as Interrupted['report'] };
}

t.test('Ctrl-C: the step under way finishes, no new step starts, recap and report still come', async (t) => {
  const r = await interrupt(['SIGINT'], 2);
  t.equal(r.code, 130, 'exit code 130 after Ctrl-C');
  t.match(r.out, /Interrupted: finishing the steps under way/);
  t.match(r.out, /RECAP slow \(interrupted\)/);
  t.notOk(existsSync(join(r.dir, 'second')), 'no new step started');
  t.equal(r.report.interrupted, true);
  t.same(r.report.hosts[0]?.steps.map((s) => [s.name, s.status]), [['shell slow step', 'changed']], 'the step under way finished');
});

t.test('a second Ctrl-C stops the step under way at once; recap, report and exit code 130 still come', async (t) => {
  const r = await interrupt(['SIGINT', 'SIGINT'], 60);
  t.equal(r.code, 130);
  t.ok(r.afterSignal < 15_000, `ended ${Math.round(r.afterSignal)} ms after the second Ctrl-C, not after the 60 s step`);
  t.match(r.out, /Interrupted again: stopping the steps under way now/);
  t.match(r.out, /RECAP slow \(interrupted\)/);
  t.notOk(existsSync(join(r.dir, 'second')), 'no new step started');
  t.equal(r.report.interrupted, true);
  t.match(r.report.hosts[0]?.steps, [{ name: 'shell slow step', status: 'failed', error: { reason: /the run was stopped while this command ran/ } }]);
});

t.test('SIGTERM stops the step under way at once; recap, report and exit code 143', async (t) => {
  const r = await interrupt(['SIGTERM'], 60);
  t.equal(r.code, 143);
  t.ok(r.afterSignal < 15_000, `ended ${Math.round(r.afterSignal)} ms after SIGTERM`);
  t.match(r.out, /Terminated: stopping the steps under way now/);
  t.match(r.out, /RECAP slow \(interrupted\)/);
  t.equal(r.report.interrupted, true);
  t.match(r.report.hosts[0]?.steps, [{ name: 'shell slow step', status: 'failed' }]);
});
