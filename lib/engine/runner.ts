import type { Connection } from '../connection/connection.ts';
import { Semaphore } from '../concurrency.ts';
import { TackleError } from '../errors.ts';
import type { InventoryHost, Vars } from '../inventory/inventory.ts';
import { VarError, checkShape } from '../inventory/vars.ts';
import { HostRun, Interrupted, StepFailed, asTackleError, type StepResult } from './host-run.ts';
import type { Task } from './task.ts';

export type HostStatus = 'ok' | 'changed' | 'failed' | 'unreachable' | 'skipped';

export interface HostResult {
  name: string;
  status: HostStatus;
  durationMs: number;
  steps: StepResult[];
  error?: TackleError;
}

export interface RunResult {
  task: string;
  dryRun: boolean;
  startedAt: Date;
  durationMs: number;
  interrupted: boolean;
  hosts: HostResult[];
}

export type RunEvent =
  | { type: 'host:queued'; host: string }
  | { type: 'host:start'; host: string }
  | { type: 'step:start'; host: string; step: string }
  | { type: 'step:end'; host: string; step: StepResult }
  | { type: 'host:end'; host: string; result: HostResult };

export interface RunOptions {
  dryRun?: boolean;
  /** Hosts worked on at once (default 10). */
  concurrency?: number;
  /** Aborting stops starting new steps; steps under way finish, so no file is half-written. */
  signal?: AbortSignal;
  connect(host: InventoryHost): Promise<Connection>;
  onEvent?(event: RunEvent): void;
  /** Rolling batches: this many hosts (or this percentage of them) finish before the next batch starts. */
  serial?: number | `${number}%`;
  /** No further batch starts once more than this percentage of the hosts run so far failed or were unreachable. */
  maxFailPercent?: number;
}

/** Checks every host's vars against the task before anything connects; throws one error listing all. */
export function checkVars<V extends Vars>(task: Task<V>, hosts: readonly InventoryHost[]): Map<string, V> {
  const checked = new Map<string, V>();
  const problems: string[] = [];
  for (const host of hosts) {
    try {
      checked.set(host.name, checkShape(task.vars, host.vars) as unknown as V);
    } catch (err) {
      if (!(err instanceof VarError)) throw err;
      problems.push(`host ${host.name}: var ${err.message}`);
    }
  }
  if (problems.length > 0) throw new TackleError({ phase: 'inventory', step: `task ${task.name}`, reason: `vars do not fit task ${task.name}:\n  - ${problems.join('\n  - ')}` });
  return checked;
}

/**
 * Runs a task on hosts in parallel. One host failing or unreachable never
 * stops the others. Resolves with every host's result; throws only for
 * problems found before any host is contacted (vars that do not fit).
 *
 * @example
 * const result = await runTask(task, selectHosts(inv, '--limit web'), { connect: (h) => openConnection(h, inv, ctx) });
 */
export async function runTask<V extends Vars>(task: Task<V>, hosts: readonly InventoryHost[], options: RunOptions): Promise<RunResult> {
  const vars = checkVars(task, hosts);
  const startedAt = new Date();
  const t0 = performance.now();
  const emit = options.onEvent ?? (() => {});
  const slots = new Semaphore(options.concurrency ?? 10);
  hosts.forEach((h) => emit({ type: 'host:queued', host: h.name }));
  const results: HostResult[] = [];
  let stopped = false;
  for (const batch of batches(hosts, options.serial)) {
    if (stopped) {
      for (const host of batch) {
        const result: HostResult = { name: host.name, status: 'skipped', durationMs: 0, steps: [] };
        emit({ type: 'host:end', host: host.name, result });
        results.push(result);
      }
      continue;
    }
    results.push(
      ...(await Promise.all(
        batch.map((host) =>
          slots.use(async () => {
            // Whatever escapes one host (a bug below the runner included) fails that host, never the run.
            const result = await runHost(task, host, vars.get(host.name) as V, options, emit).catch(
              (err: unknown): HostResult => ({ name: host.name, status: 'failed', durationMs: 0, steps: [], error: asTackleError(err, host.name) }),
            );
            emit({ type: 'host:end', host: host.name, result });
            return result;
          }),
        ),
      )),
    );
    const failed = results.filter((r) => r.status === 'failed' || r.status === 'unreachable').length;
    if (options.maxFailPercent !== undefined && (failed / results.length) * 100 > options.maxFailPercent) stopped = true;
  }
  return {
    task: task.name,
    dryRun: options.dryRun ?? false,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
    interrupted: options.signal?.aborted ?? false,
    hosts: results,
  };
}

/** Splits hosts into rolling batches; without `serial`, one batch of all. */
export function batches<T>(hosts: readonly T[], serial?: number | `${number}%`): T[][] {
  if (serial === undefined || hosts.length === 0) return [[...hosts]];
  const size = typeof serial === 'number' ? serial : Math.max(1, Math.ceil((hosts.length * Number(serial.slice(0, -1))) / 100));
  const out: T[][] = [];
  for (let i = 0; i < hosts.length; i += size) out.push(hosts.slice(i, i + size));
  return out;
}

async function runHost<V extends Vars>(task: Task<V>, host: InventoryHost, vars: V, options: RunOptions, emit: (e: RunEvent) => void): Promise<HostResult> {
  const t0 = performance.now();
  const done = (status: HostStatus, steps: StepResult[], error?: TackleError): HostResult => ({
    name: host.name,
    status,
    durationMs: Math.round(performance.now() - t0),
    steps,
    ...(error ? { error } : {}),
  });
  if (options.signal?.aborted) return done('skipped', []);
  emit({ type: 'host:start', host: host.name });
  let conn: Connection;
  try {
    conn = await options.connect(host);
  } catch (err) {
    return done('unreachable', [], asTackleError(err, host.name, 'connect'));
  }
  const run = new HostRun(
    host.name,
    host.groups,
    vars,
    conn,
    options.dryRun ?? false,
    options.signal,
    (e) => emit(e.type === 'step:start' ? { type: 'step:start', host: host.name, step: e.step } : { type: 'step:end', host: host.name, step: e.step }),
    () => options.connect(host),
  );
  let error: TackleError | undefined;
  try {
    await task.run(run);
    // Handlers run in the order the task defines them, once, and only after the body succeeded.
    for (const [name, handler] of Object.entries(task.handlers)) {
      if (run.notified.has(name)) await run.withPrefix(`${name} › `, () => handler(run));
    }
  } catch (err) {
    if (!(err instanceof Interrupted)) error = asTackleError(err, host.name);
    if (!(err instanceof StepFailed) && error) run.steps.push({ name: 'task', status: 'failed', durationMs: 0, error });
  } finally {
    try {
      await conn.close();
    } catch {
      // The host's outcome is known; a connection that fails to close changes nothing of it.
    }
  }
  if (error) return done(error.phase === 'connect' ? 'unreachable' : 'failed', run.steps, error);
  return done(run.steps.some((s) => s.status === 'changed') ? 'changed' : 'ok', run.steps);
}
