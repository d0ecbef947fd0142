import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectContext, openConnection } from '../connection/open.ts';
import { checkVars, runTask } from '../engine/runner.ts';
import type { Task } from '../engine/task.ts';
import type { Inventory, Vars } from '../inventory/inventory.ts';
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
  /** Where Ctrl-C arrives (usually `process`). */
  signals?: { once(event: 'SIGINT', listener: () => void): unknown; removeListener(event: 'SIGINT', listener: () => void): unknown };
}

/**
 * Runs a task as a command-line program and returns the exit code:
 * 0 every host ok or changed, 2 any host failed or unreachable, 1 usage,
 * inventory or task errors found before any host was contacted, 130 after Ctrl-C.
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
    io.stderr.write(`${(err as Error).message}\n\n${usage(task.flags)}`);
    return 1;
  }
  if (opts.help) {
    io.stdout.write(usage(task.flags));
    return 0;
  }
  let inventory: Inventory;
  let hosts;
  try {
    inventory = await loadInventoryFile(opts.inventory, { cwd: io.cwd });
    // Vars from the command line override the inventory, as Ansible's extra vars do.
    hosts = selectHosts(inventory, opts.limit).map((h) => ({ ...h, vars: { ...h.vars, ...opts.vars } }));
    checkVars(task, hosts);
  } catch (err) {
    io.stderr.write(`${paint(31, 'error:')} ${(err as Error).message}\n`);
    return 1;
  }

  const abort = new AbortController();
  const onSigint = () => {
    io.stderr.write('\nInterrupted: finishing the steps under way, starting no new ones…\n');
    abort.abort();
  };
  io.signals?.once('SIGINT', onSigint);
  const ctx = connectContext(io.env, { acceptNewHostKeys: opts.acceptNewHostKeys });
  const view = liveView(
    hosts.map((h) => h.name),
    io,
  );
  const inv = inventory;
  const result = await runTask(task, hosts, {
    dryRun: opts.dryRun,
    concurrency: opts.concurrency,
    signal: abort.signal,
    connect: (h) => openConnection(h, inv, ctx),
    onEvent: view.onEvent,
    ...(opts.serial !== undefined ? { serial: opts.serial } : {}),
    ...(opts.maxFail !== undefined ? { maxFailPercent: opts.maxFail } : {}),
  });
  await view.closed;
  io.signals?.removeListener('SIGINT', onSigint);

  if (opts.dryRun || opts.diff || opts.verbose) io.stdout.write(formatChanges(result, opts, paint));
  io.stdout.write(formatRecap(result, paint));
  const report = toJsonReport(result);
  if (opts.json) {
    const file = resolve(io.cwd, opts.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  }
  await io.onReport?.(report);
  return exitCodeOf(result);
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string, argv: readonly string[]): boolean {
  const script = argv[1];
  return script !== undefined && pathToFileURL(resolve(script)).href === moduleUrl;
}
