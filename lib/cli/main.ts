import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectContext, openConnection } from '../connection/open.ts';
import { checkVars, runTask, varWarnings, type RunWarning } from '../engine/runner.ts';
import { EXIT, exitCodeOf, toJsonReport, type JsonReport } from '../engine/report.ts';
import type { Task } from '../engine/task.ts';
import type { Inventory, InventoryHost, Vars } from '../inventory/inventory.ts';
import { loadInventoryFile } from '../inventory/load.ts';
import { selectHosts } from '../inventory/select.ts';
import { parseCliArgs, usage, type CliOptions, type OutputFlag } from './args.ts';
import { formatChanges, formatRecap, liveView, painter, type CliStreams, type Paint } from './ui.ts';

/** What the CLI needs from the process: {@link runIfMain} passes this process's parts, tests their own. */
export interface CliIo extends CliStreams {
  argv: readonly string[];
  cwd: string;
  /** Where Ctrl-C and SIGTERM arrive (usually `process`). */
  signals?: { on(event: StopSignal, listener: () => void): unknown; removeListener(event: StopSignal, listener: () => void): unknown };
}

/**
 * What a program adds to the end of a run: flags of its own that are not vars (`--prometheus
 * FILE`), the text people read in place of the recap (a report's table), and further outputs with
 * the exit code (a metrics file, a webhook). The report, the JSON and the exit-code table stay the
 * one CLI's.
 *
 * @example
 * await runIfMain(import.meta, healthTask, { render: (report) => table(report), finish: async (report, end) => end.code || severityCode(report) });
 */
export interface CliOutput {
  flags?: Readonly<Record<string, OutputFlag>>;
  /** Written after the run in place of the recap (to stderr with `--json -`); `recap` is the text it replaces. */
  render?(report: JsonReport, paint: Paint, recap: string): string;
  /** After the report was written: further outputs, and the exit code, given the run's own (`end.code`). */
  finish?(report: JsonReport, end: OutputEnd): Promise<number>;
}

/** What {@link CliOutput.finish} gets besides the report. */
export interface OutputEnd {
  /** The run's exit code (see EXIT). */
  code: number;
  /** The values of {@link CliOutput.flags}, by name. */
  flags: Readonly<Record<string, string | boolean | undefined>>;
  cwd: string;
  stderr: NodeJS.WritableStream;
}

/** The signals that interrupt a run: Ctrl-C, and SIGTERM (systemd stop, `timeout`, `kill`). */
export type StopSignal = 'SIGINT' | 'SIGTERM';

/**
 * The first Ctrl-C starts no new step and lets the steps under way finish. A second Ctrl-C, or
 * SIGTERM, also kills the commands under way (a file being written is then not installed). Either
 * way the run still ends with its recap and report; further signals are ignored until then.
 */
function watchSignals(io: CliIo) {
  const finish = new AbortController();
  const stop = new AbortController();
  let received: StopSignal | undefined;
  const listener = (sig: StopSignal) => () => {
    if (stop.signal.aborted) return;
    // The exit code names SIGTERM once it came, as a process killed by it would.
    if (received === undefined || sig === 'SIGTERM') received = sig;
    if (sig === 'SIGINT' && !finish.signal.aborted) {
      io.stderr.write('\nInterrupted: finishing the steps under way, starting no new ones (Ctrl-C again stops them now)…\n');
      finish.abort();
      return;
    }
    io.stderr.write(`\n${sig === 'SIGTERM' ? 'Terminated' : 'Interrupted again'}: stopping the steps under way now; a file being written is not installed…\n`);
    finish.abort();
    stop.abort();
  };
  const listeners = { SIGINT: listener('SIGINT'), SIGTERM: listener('SIGTERM') };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) io.signals?.on(sig, listeners[sig]);
  return {
    finish: finish.signal,
    stop: stop.signal,
    received: () => received,
    dispose: () => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) io.signals?.removeListener(sig, listeners[sig]);
    },
  };
}

/**
 * Runs a task as a command-line program and returns the exit code (EXIT): 0 every host ok or
 * changed, 2 any host failed or unreachable, 1 usage, inventory or task errors found before any
 * host was contacted, 130 after Ctrl-C, 143 after SIGTERM; `output` may add its own (a report's 3).
 *
 * @example
 * process.exitCode = await runCli(task, { argv: ['--dry-run'], cwd: '/srv/infra', env: {}, stdout, stderr });
 */
export async function runCli<V extends Vars>(task: Task<V>, io: CliIo, output: CliOutput = {}): Promise<number> {
  const paint = painter(io);
  let opts: CliOptions;
  const help = () => usage(task.flags, task.vars, output.flags);
  try {
    opts = parseCliArgs(io.argv, task.flags, output.flags);
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${help()}`);
    return EXIT.usage;
  }
  if (opts.help) {
    io.stdout.write(help());
    return EXIT.ok;
  }
  let inventory: Inventory;
  let hosts: InventoryHost[];
  let warnings: RunWarning[];
  try {
    inventory = await loadInventoryFile(opts.inventory, { cwd: io.cwd });
    // Vars from the command line override the inventory, as Ansible's extra vars do.
    hosts = selectHosts(inventory, opts.limit).map((h) => ({ ...h, vars: { ...h.vars, ...opts.vars } }));
    // A var given on this command line was meant for this run, shared with other tasks or not. (An
    // inventory built by another, older copy of tackle has no sharedVars.)
    warnings = varWarnings(task, hosts, new Set([...(inventory.sharedVars ?? [])].filter((name) => !Object.hasOwn(opts.vars, name))));
    // Before the check: a misspelt var that left a required one missing explains the error below.
    for (const w of warnings) io.stderr.write(`${paint(33, 'warning:')} ${w.message}\n`);
    checkVars(task, hosts);
  } catch (err) {
    io.stderr.write(`${paint(31, 'error:')} ${(err as Error).message}\n`);
    return EXIT.usage;
  }

  const signals = watchSignals(io);
  try {
    return await run(task, io, opts, output, inventory, hosts, warnings, signals);
  } finally {
    signals.dispose();
  }
}

/** The run itself, under watched signals: live view, recap, report, exit code. */
async function run<V extends Vars>(task: Task<V>, io: CliIo, opts: CliOptions, output: CliOutput, inv: Inventory, hosts: InventoryHost[], warnings: readonly RunWarning[], signals: ReturnType<typeof watchSignals>): Promise<number> {
  // With `--json -` stdout carries the report alone; what people read goes to stderr.
  const human: CliStreams = opts.json === '-' ? { ...io, stdout: io.stderr } : io;
  const paint = painter(human);
  const ctx = connectContext(io.env, { acceptNewHostKeys: opts.acceptNewHostKeys });
  const view = liveView(
    hosts.map((h) => h.name),
    human,
    { dryRun: opts.dryRun },
  );
  const result = await runTask(task, hosts, {
    dryRun: opts.dryRun,
    concurrency: opts.concurrency,
    signal: signals.finish,
    stop: signals.stop,
    connect: (h) => openConnection(h, inv, ctx),
    onEvent: view.onEvent,
    lockTimeoutSeconds: opts.lockTimeout,
    ...(opts.serial !== undefined ? { serial: opts.serial } : {}),
    ...(opts.maxFail !== undefined ? { maxFailPercent: opts.maxFail } : {}),
  });
  await view.closed;

  if (opts.dryRun || opts.diff || opts.verbose) human.stdout.write(formatChanges(result, opts, paint));
  const report = toJsonReport(result, warnings);
  const recap = formatRecap(result, paint);
  human.stdout.write(output.render ? output.render(report, paint, recap) : recap);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (opts.json === '-') io.stdout.write(json);
  else if (opts.json) {
    const file = resolve(io.cwd, opts.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, json);
  }
  const code = exitCodeOf(result, signals.received());
  return output.finish ? output.finish(report, { code, flags: opts.outputs, cwd: io.cwd, stderr: io.stderr }) : code;
}

/**
 * The last line of every task file and script: when the module is the program node was started
 * with, runs it on this process (its arguments, working directory, environment, streams and
 * signals) and sets the exit code. `program` is a task (run by {@link runCli} with `output`), or a
 * script's own main that calls runCli itself and returns the exit code.
 *
 * @example await runIfMain(import.meta, provision);
 */
export async function runIfMain<V extends Vars>(meta: { url: string }, program: Task<V> | ((io: CliIo) => Promise<number>), output?: CliOutput): Promise<void> {
  if (!isMain(meta.url, process.argv)) return;
  const io: CliIo = { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, signals: process };
  process.exitCode = typeof program === 'function' ? await program(io) : await runCli(program, io, output);
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string, argv: readonly string[]): boolean {
  const script = argv[1];
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl;
}
