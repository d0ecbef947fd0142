import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectContext, openConnection } from '../connection/open.ts';
import { checkVars, runTask, varWarnings } from '../engine/runner.ts';
import type { Task } from '../engine/task.ts';
import type { Inventory, InventoryHost, Vars } from '../inventory/inventory.ts';
import { loadInventoryFile } from '../inventory/load.ts';
import { selectHosts } from '../inventory/select.ts';
import { parseCliArgs, usage, type CliOptions } from './args.ts';
import { exitCodeOf, toJsonReport, type JsonReport } from './report.ts';
import { formatChanges, formatRecap, liveView, painter, type CliStreams } from './ui.ts';

/** What the CLI needs from the process; task files pass `process` parts in explicitly. */
export interface CliIo extends CliStreams {
  argv: readonly string[];
  cwd: string;
  /** Called with the report after the run, e.g. by a script that alerts on failures. */
  onReport?: (report: JsonReport) => Promise<void>;
  /** Where Ctrl-C and SIGTERM arrive (usually `process`). */
  signals?: { on(event: StopSignal, listener: () => void): unknown; removeListener(event: StopSignal, listener: () => void): unknown };
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
 * Runs a task as a command-line program and returns the exit code:
 * 0 every host ok or changed, 2 any host failed or unreachable, 1 usage,
 * inventory or task errors found before any host was contacted, 130 after Ctrl-C, 143 after SIGTERM.
 *
 * @example
 * if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, cliIo(process));
 */
export async function runCli<V extends Vars>(task: Task<V>, io: CliIo): Promise<number> {
  const paint = painter(io);
  let opts: CliOptions;
  try {
    opts = parseCliArgs(io.argv, task.flags);
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${usage(task.flags, task.vars)}`);
    return 1;
  }
  if (opts.help) {
    io.stdout.write(usage(task.flags, task.vars));
    return 0;
  }
  let inventory: Inventory;
  let hosts: InventoryHost[];
  try {
    inventory = await loadInventoryFile(opts.inventory, { cwd: io.cwd });
    // Vars from the command line override the inventory, as Ansible's extra vars do.
    hosts = selectHosts(inventory, opts.limit).map((h) => ({ ...h, vars: { ...h.vars, ...opts.vars } }));
    // Before the check: a misspelt var that left a required one missing explains the error below.
    for (const w of varWarnings(task, hosts, new Set(Object.keys(opts.vars)))) io.stderr.write(`${paint(33, 'warning:')} ${w}\n`);
    checkVars(task, hosts);
  } catch (err) {
    io.stderr.write(`${paint(31, 'error:')} ${(err as Error).message}\n`);
    return 1;
  }

  const signals = watchSignals(io);
  try {
    return await run(task, io, opts, inventory, hosts, signals);
  } finally {
    signals.dispose();
  }
}

/** The run itself, under watched signals: live view, recap, report, exit code. */
async function run<V extends Vars>(task: Task<V>, io: CliIo, opts: CliOptions, inv: Inventory, hosts: InventoryHost[], signals: ReturnType<typeof watchSignals>): Promise<number> {
  const paint = painter(io);
  const ctx = connectContext(io.env, { acceptNewHostKeys: opts.acceptNewHostKeys });
  const view = liveView(
    hosts.map((h) => h.name),
    io,
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

  if (opts.dryRun || opts.diff || opts.verbose) io.stdout.write(formatChanges(result, opts, paint));
  io.stdout.write(formatRecap(result, paint));
  const report = toJsonReport(result);
  if (opts.json) {
    const file = resolve(io.cwd, opts.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  }
  await io.onReport?.(report);
  return exitCodeOf(result, signals.received());
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string, argv: readonly string[]): boolean {
  const script = argv[1];
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl;
}
