import { hostname } from 'node:os';
import type { Connection } from '../connection/connection.ts';
import { Semaphore } from '../concurrency.ts';
import { TackleError } from '../errors.ts';
import type { InventoryHost, Vars } from '../inventory/inventory.ts';
import type { Fact } from '../facts/fact.ts';
import { factBatch, type FactBatch } from '../facts/gather.ts';
import type { Operation } from '../ops/operation.ts';
import { VarError, checkShape, undeclaredVars, undeclaredWarning, type UndeclaredVar } from '../inventory/vars.ts';
import { takeHostLock } from './host-lock.ts';
import { HostRun, Interrupted, StepFailed, asTackleError, type StepResult } from './host-run.ts';
import { PendingHandlers, readHostState, readStateScript, type HandlerReport, type HostStart } from './pending-handlers.ts';
import type { HostContext, Task } from './task.ts';

export type HostStatus = 'ok' | 'changed' | 'failed' | 'unreachable' | 'skipped';

export interface HostResult {
  name: string;
  status: HostStatus;
  durationMs: number;
  steps: StepResult[];
  error?: TackleError;
  /** Handler notifications found pending, run, or left pending on the host; absent when there were none. */
  handlers?: HandlerReport;
  /** What the task body resolved with (a report's findings); absent when it resolved with nothing. */
  data?: unknown;
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
  /** Aborting stops starting new steps; steps under way finish. */
  signal?: AbortSignal;
  /**
   * Aborting also kills the commands under way (their channels close); abort `signal` with it.
   * A file being written is then not installed: the host checks it received every byte first.
   */
  stop?: AbortSignal;
  connect(host: InventoryHost): Promise<Connection>;
  onEvent?(event: RunEvent): void;
  /** Rolling batches: this many hosts (or this percentage of them) finish before the next batch starts. */
  serial?: number | `${number}%`;
  /** No further batch starts once more than this percentage of the hosts run so far failed or were unreachable. */
  maxFailPercent?: number;
  /** Seconds a host waits for another run's lock before that host fails as busy (default 300). A dry-run takes no lock. */
  lockTimeoutSeconds?: number;
  /** How lock and handler records name this run; this machine's host name and process id by default. */
  controller?: { name: string; pid: number };
  /**
   * Where each host keeps the run lock and the pending handler records; by default
   * /run/lock/tackle and /var/lib/tackle (a non-root login's ~/.local/state/tackle). Tests give
   * fake hosts that share one machine their own.
   */
  hostPaths?(host: InventoryHost): { lock: string; state: string };
}

/** Checks every host's vars against the task before anything connects; throws one error listing every problem of every host. */
export function checkVars<V extends Vars>(task: Task<V>, hosts: readonly InventoryHost[]): Map<string, V> {
  const checked = new Map<string, V>();
  const problems: string[] = [];
  for (const host of hosts) {
    try {
      checked.set(host.name, checkShape(task.vars, host.vars) as unknown as V);
    } catch (err) {
      if (!(err instanceof VarError)) throw err;
      problems.push(...err.problems.map((p) => `host ${host.name}: var ${p.message}`));
    }
  }
  if (problems.length > 0) throw new TackleError({ phase: 'inventory', step: `task ${task.name}`, reason: `vars do not fit task ${task.name}:\n  - ${problems.join('\n  - ')}` });
  return checked;
}

/** What a run noticed that does not stop it, as the JSON report carries it: the line people read, and the vars it names. */
export interface RunWarning {
  readonly message: string;
  readonly vars: readonly UndeclaredVar[];
}

/**
 * The warning for the vars the hosts give that the task does not declare (none when there are
 * none): one line for the run, near misses with "did you mean" ({@link undeclaredWarning}). One
 * inventory serves many tasks (provision, the backup scripts, deploy), so a var of another task is
 * listed too, but briefly; the inventory's `shared` vars are left out.
 *
 * @example varWarnings(task, hosts, inventory.sharedVars) // [{ message: 'task provision ignores vars it does not declare: swapMB (web1: did you mean swapMb?)', vars: […] }]
 */
export function varWarnings<V extends Vars>(task: Task<V>, hosts: readonly InventoryHost[], shared?: ReadonlySet<string>): RunWarning[] {
  const vars = undeclaredVars(task.vars, hosts, shared);
  if (vars.length === 0) return [];
  return [{ message: undeclaredWarning(task.name, vars, hosts.map((h) => h.name)), vars }];
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
  let data: unknown;
  const done = (status: HostStatus, steps: StepResult[], error?: TackleError, handlers?: HandlerReport): HostResult => ({
    name: host.name,
    status,
    durationMs: Math.round(performance.now() - t0),
    steps,
    ...(error ? { error } : {}),
    ...(handlers && handlers.earlier.length + handlers.ran.length + handlers.outstanding.length > 0 ? { handlers } : {}),
    ...(data !== undefined ? { data } : {}),
  });
  const failed = (error: TackleError): HostStatus => (error.phase === 'connect' ? 'unreachable' : 'failed');
  if (options.signal?.aborted) return done('skipped', []);
  emit({ type: 'host:start', host: host.name });
  // A read-only task's steps are only planned: the dry-run's code path guarantees nothing is applied.
  const dryRun = (options.dryRun ?? false) || task.readOnly;
  let ops: Operation[] | undefined;
  try {
    ops = task.steps?.({ name: host.name, groups: host.groups, vars, dryRun });
  } catch (err) {
    const error = asTackleError(err, host.name);
    return done('failed', [{ name: 'task', status: 'failed', durationMs: 0, error }], error);
  }
  let conn: Connection;
  try {
    conn = await options.connect(host);
  } catch (err) {
    return done('unreachable', [], asTackleError(err, host.name, 'connect'));
  }
  const controller = options.controller ?? { name: hostname(), pid: process.pid };
  const by = `${controller.name} (pid ${controller.pid})`;
  // The facts of every step ride along with the lock: a converged host is one round trip after its channel.
  const first = task.readOnly ? [] : uniqueFacts((ops ?? []).flatMap((op) => Object.values(op.facts)));
  const batch = first.length > 0 ? factBatch(first) : undefined;
  let start: HostStart;
  try {
    start = await hostState(task, host, options, `task ${task.name} from ${by}`, conn, batch);
  } catch (err) {
    await conn.close().catch(() => {});
    if (err instanceof Interrupted) return done('skipped', []);
    const error = asTackleError(err, host.name);
    return done(failed(error), [], error);
  }
  const handlerNames = Object.keys(task.handlers);
  const pending = new PendingHandlers(conn, start.state, handlerNames, by);
  const run = new HostRun(
    host.name,
    host.groups,
    vars,
    conn,
    dryRun,
    options.signal,
    (e) => emit(e.type === 'step:start' ? { type: 'step:start', host: host.name, step: e.step } : { type: 'step:end', host: host.name, step: e.step }),
    () => options.connect(host),
    pending,
    options.stop,
    { task: task.name, names: handlerNames },
  );
  if (batch) run.know(batch.facts, start.values);
  let error: TackleError | undefined;
  try {
    const body = task.readOnly ? readOnly(run, task.name) : run;
    data = await (ops ? body.runSteps(ops) : task.run(body, task.handler));
    await run.settled('the task body');
    // Handlers run in the order the task defines them, once, and only after the body succeeded:
    // those notified now and those an earlier run recorded and never got to. Not after a failed
    // step (Ansible's force_handlers): the task stopped half-way, and a restart could load a
    // half-made configuration. The record stays on the host, so the next run that succeeds runs it.
    for (const [name, handler] of Object.entries(task.handlers)) {
      if (!run.notified.has(name) && !pending.has(name)) continue;
      await run.withPrefix(`${name} › `, () => handler(run));
      await run.settled(`handler "${name}"`);
      await pending.done(name, run.dryRun);
    }
  } catch (err) {
    if (!(err instanceof Interrupted)) error = asTackleError(err, host.name);
    if (!(err instanceof StepFailed) && error) run.steps.push({ name: 'task', status: 'failed', durationMs: 0, error });
  } finally {
    // A step nobody awaited still holds the connection: the lock and the connection outlive it.
    // Closing ends the host's session, and the lock it holds with it.
    await run.idle();
    try {
      await conn.close();
    } catch {
      // The host's outcome is known; a connection that fails to close changes nothing of it.
    }
  }
  if (error) return done(failed(error), run.steps, error, pending.report());
  return done(run.steps.some((s) => s.status === 'changed' || s.status === 'unknown') ? 'changed' : 'ok', run.steps, undefined, pending.report());
}

/**
 * Before a host's first step: a real run takes the host's lock (held by its session until the
 * connection closes) and reads the pending handler records and the batch's facts in the same round trip. A dry-run
 * only reads the records, a read-only task not even those: it changes nothing, so it has no work
 * to lose, and it must never hold up a real run (nor wait minutes behind one to show a plan); its
 * plan may be stale if a real run is under way, as any plan may be.
 */
async function hostState<V extends Vars>(task: Task<V>, host: InventoryHost, options: RunOptions, holder: string, conn: Connection, batch: FactBatch | undefined): Promise<HostStart> {
  const paths = options.hostPaths?.(host);
  // A read-only task has no handlers (defineTask refuses them), so no records of its own: one round trip saved.
  if (task.readOnly) return { state: { dir: '', pending: [] }, values: [] };
  const read = readStateScript(task.name, paths?.state);
  if (options.dryRun) return readHostState(conn, read, batch);
  return takeHostLock(
    conn,
    { timeoutSeconds: options.lockTimeoutSeconds ?? 300, holder, ...(paths ? { dir: paths.lock } : {}), ...(options.signal ? { signal: options.signal } : {}) },
    read,
    batch,
  );
}

/** Facts once each by key (steps share them). */
function uniqueFacts(facts: readonly Fact<unknown>[]): Fact<unknown>[] {
  return [...new Map(facts.map((f) => [f.key, f])).values()];
}

/** What a read-only task's body sees: the host, whose steps may plan but never change (the step that would fails the host). */
function readOnly<V extends Vars>(run: HostRun<V>, task: string): HostContext<V> {
  return {
    name: run.name,
    groups: run.groups,
    vars: run.vars,
    dryRun: run.dryRun,
    fact: (fact) => run.fact(fact),
    facts: (facts) => run.facts(facts),
    async run(op) {
      const outcome = await run.run(op);
      if (outcome === 'changed') throw new TackleError({ phase: 'task', step: op.name, reason: `task ${task} is read-only, and step "${op.name}" would change the host; nothing was changed` });
      return outcome;
    },
    async runSteps(ops) {
      for (const op of ops) await this.run(op);
    },
  };
}
