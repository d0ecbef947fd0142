// Runs a task file as a person would (`npx tsx tasks/NAME.ts …`) and reads its JSON report.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Test } from 'tap';
import type { JsonReport } from '../../../lib/engine/report.ts';
import type { HostSpec } from '../../../lib/inventory/inventory.ts';
import { run } from '../../../lab/exec.ts';
import { writeInventory, type Lab } from '../../../lab/lab.ts';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  report: JsonReport | undefined;
}

/** Runs `tasks/<file>` (or any task path) with flags; the JSON report is read back when written. */
export async function runTaskCli(taskFile: string, args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const { argv, readReport } = await cliArgv(taskFile, args);
  const result = await run('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], { timeoutMs: 600_000 });
  return { ...result, report: await readReport() };
}

/** A controller started by {@link startTaskCli}: its pid, to signal it, and how its run ended. */
export interface StartedCli {
  pid: number;
  /** Settles when the controller has exited; `code` is 128 + the signal's number when a signal ended it. */
  done: Promise<CliRun>;
}

/**
 * Starts `tasks/<file>` (or any task path) like {@link runTaskCli} without waiting for it, so that
 * a test can signal the controller mid-run.
 *
 * @example const cli = await startTaskCli(task, ['--inventory', inv]); process.kill(cli.pid, 'SIGKILL'); await cli.done;
 */
export async function startTaskCli(taskFile: string, args: readonly string[], env: Record<string, string> = {}): Promise<StartedCli> {
  const { argv, readReport } = await cliArgv(taskFile, args);
  const [file = process.execPath, ...rest] = argv;
  const child = spawn(file, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, timeout: 600_000, killSignal: 'SIGKILL' });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0))));
  return { pid: child.pid as number, done: exited.then(async (code) => ({ code, stdout, stderr, report: await readReport() })) };
}

/** The controller's command line for a task file, with `--json` into a fresh temporary directory, and how to read that report back. */
async function cliArgv(taskFile: string, args: readonly string[]): Promise<{ argv: string[]; readReport: () => Promise<JsonReport | undefined> }> {
  const json = join(tempDir('cli'), 'report.json');
  return {
    argv: [process.execPath, '--import', 'tsx', resolve(ROOT, taskFile), ...args, '--json', json],
    readReport: () => readFile(json, 'utf8').then((t) => JSON.parse(t) as JsonReport, () => undefined),
  };
}

/** Writes an inventory module for lab hosts in a temporary directory; `overrides` may change any field of each host. */
export async function labInventory(lab: Lab, overrides: Record<string, Partial<HostSpec>> = {}, extra = ''): Promise<string> {
  const file = join(tempDir('inv'), 'inventory.ts');
  await writeInventory(lab, file, { overrides, extra });
  return file;
}

/** Names of the steps a report shows as changed, per host. */
export function changedSteps(report: JsonReport | undefined): Record<string, string[]> {
  return Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h.steps.filter((s) => s.status === 'changed').map((s) => s.name)]));
}

/**
 * Per host, every step as the run saw it: `status name — summary`, with the run's own timestamps
 * (dump names, ISO times) masked. A dry-run must equal the real run in all of it, not only in
 * which steps changed.
 */
export function plannedSteps(report: JsonReport | undefined): Record<string, string[]> {
  return Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h.steps.map(stepLine)]));
}

type ReportStep = JsonReport['hosts'][number]['steps'][number];

/** One step as {@link plannedSteps} shows it. */
function stepLine(s: ReportStep): string {
  const line = `${s.status} ${s.name}${s.summary ? ` — ${s.summary}` : ''}`;
  return line.replace(/\d{8}T\d{6}Z/g, 'STAMP').replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, 'TIME');
}

/**
 * The dry-run's steps as the real run after it must show them. A step the dry-run reports
 * `unknown` (what it does hangs on facts only the earlier steps' real effects decide: a guard
 * after a change, a remote listed by a tool the run installs) stands for whatever the real run
 * did, but only the steps named in `unknown` (per host, by step name) may be unknown, and each of
 * them must be: `t.same(plannedSteps(real.report), predicted(dry.report, real.report, {…}))`.
 */
export function predicted(dry: JsonReport | undefined, real: JsonReport | undefined, unknown: Record<string, readonly string[]> = {}): Record<string, string[]> {
  const realSteps = plannedSteps(real);
  return Object.fromEntries(
    (dry?.hosts ?? []).map((h) => {
      const allowed = unknown[h.name] ?? [];
      const lines = h.steps.map((s, i) => {
        const line = stepLine(s);
        if (s.status !== 'unknown') return allowed.includes(s.name) ? `expected unknown: ${line}` : line;
        return allowed.includes(s.name) ? (realSteps[h.name]?.[i] ?? line) : `unexpected unknown: ${line}`;
      });
      return [h.name, lines];
    }),
  );
}

/**
 * What a converging task must show: a dry-run, the real run it predicts (`unknown` as in
 * {@link predicted}), and a second run that changes nothing. Resolves with the real run, whose
 * outcomes the caller then reads on the hosts.
 *
 * @example const real = await runTwice(t, (...args) => runTaskCli('tasks/provision.ts', ['--inventory', inv, ...args]));
 */
export async function runTwice(t: Test, exec: (...args: string[]) => Promise<CliRun>, unknown: Record<string, readonly string[]> = {}): Promise<CliRun> {
  const dry = await exec('--dry-run');
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  const real = await exec();
  t.equal(real.code, 0, 'first run', { stdout: real.stdout.slice(-5000), stderr: real.stderr });
  t.same(plannedSteps(real.report), predicted(dry.report, real.report, unknown), 'the dry-run predicted the first run');
  const again = await exec();
  t.equal(again.code, 0, 'second run', { stdout: again.stdout.slice(-3000), stderr: again.stderr });
  t.same(changedSteps(again.report), Object.fromEntries(Object.keys(changedSteps(real.report)).map((n) => [n, []])), 'second run: nothing changed');
  return real;
}
