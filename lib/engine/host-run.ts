import { assertOk, type Connection } from '../connection/connection.ts';
import { TackleError } from '../errors.ts';
import type { Fact, FactValue } from '../facts/fact.ts';
import type { Vars } from '../inventory/inventory.ts';
import { gatherFacts } from '../facts/gather.ts';
import type { PendingHandlers } from './pending-handlers.ts';
import { UNKNOWN, type ApplyContext, type Operation } from '../ops/operation.ts';
import { FactState } from './plan-state.ts';
import { handlerList, type HostContext, type StepStatus } from './task.ts';

/** One step as the report shows it; all text is masked. */
export interface StepResult {
  name: string;
  status: StepStatus;
  durationMs: number;
  summary?: string;
  diff?: string;
  commands?: string[];
  error?: TackleError;
}

export type StepListener = (event: { type: 'step:start'; step: string } | { type: 'step:end'; step: StepResult }) => void;

/** Raised inside a task body to end it on this host; the step is already recorded. */
export class StepFailed extends Error {
  constructor(readonly error: TackleError) {
    super(error.message);
    this.name = 'StepFailed';
  }
}

/** Raised when Ctrl-C asked to stop before a step started. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted before this step');
    this.name = 'Interrupted';
  }
}

/** Normalises anything thrown below the runner into a TackleError naming host and step. */
export function asTackleError(err: unknown, host: string, step?: string): TackleError {
  if (err instanceof StepFailed) return err.error;
  if (err instanceof TackleError) return err.at(host, step);
  const e = err as Error;
  return new TackleError({ phase: 'task', host, step, reason: e?.message ?? String(err), cause: err });
}

/** What a dry-run says of a step whose facts earlier changes leave unknown. */
export const UNKNOWN_SUMMARY = 'unknown until the earlier steps ran';

/** The per-host state of one run: facts (planned, in a dry-run), steps, notified handlers. */
export class HostRun<V extends Vars> implements HostContext<V> {
  readonly steps: StepResult[] = [];
  readonly notified = new Set<string>();
  readonly #state: FactState;
  /** The facts of the steps still to come in {@link runSteps}: read along with those of the next step. */
  #upcoming: readonly Fact<unknown>[] = [];
  #prefix = '';
  /** The step under way and its promise (settled either way): a host runs one step at a time. */
  #current: { name: string; done: Promise<void> } | undefined;

  constructor(
    readonly name: string,
    readonly groups: readonly string[],
    readonly vars: V,
    readonly connection: Connection,
    readonly dryRun: boolean,
    readonly signal: AbortSignal | undefined,
    readonly listener: StepListener,
    readonly openFresh: () => Promise<Connection> = () => Promise.reject(new TypeError('this run cannot open new connections')),
    /** Where notifications are recorded on the host; without it they live only in `notified`. */
    readonly pending?: PendingHandlers,
    /** Aborting kills the commands under way (see RunOptions.stop). */
    readonly stop?: AbortSignal,
    /** The task's handlers: a step that notifies any other name fails before it starts. Unchecked without. */
    readonly handlers?: { task: string; names: readonly string[] },
  ) {
    this.#state = new FactState(dryRun);
  }

  /** Values read before the first step (with the run lock): no step reads them again until a change invalidates them. */
  know(facts: readonly Fact<unknown>[], values: readonly unknown[]): void {
    this.#state.store(facts, values);
  }

  /** A fact's value; in a dry-run the planned one, or the host's as it is now when earlier changes leave it unknown. */
  async fact<T>(fact: Fact<T>): Promise<T> {
    const [value] = await this.facts([fact]);
    return value as T;
  }

  /** Several facts in one round trip, each as {@link fact} gives it. */
  async facts<const F extends readonly Fact<unknown>[]>(facts: F): Promise<{ -readonly [K in keyof F]: FactValue<F[K]> }> {
    const values = await this.#facts(facts);
    const unknown = facts.filter((_, i) => values[i] === UNKNOWN);
    if (unknown.length > 0) {
      const now = await gatherFacts(this.connection, unknown);
      let next = 0;
      values.forEach((v, i) => v === UNKNOWN && (values[i] = now[next++]));
    }
    return values as { -readonly [K in keyof F]: FactValue<F[K]> };
  }

  /** The values of these facts, reading in one batch those not known yet and the stale ones the next steps need. */
  async #facts(facts: readonly Fact<unknown>[]): Promise<unknown[]> {
    const missing = this.#state.toRead(facts);
    if (missing.length > 0) {
      const batch = this.#state.toRead([...missing, ...this.#upcoming]);
      this.#state.store(batch, await gatherFacts(this.connection, batch));
    }
    return facts.map((f) => this.#state.get(f.key));
  }

  /**
   * Runs a task's steps planned as a whole: the facts of every step are read in one round trip,
   * then each step is planned against the state the earlier ones leave (in a dry-run, as their
   * changes predict; in a real run, re-reading only what an applied change invalidated).
   */
  async runSteps(ops: readonly Operation[]): Promise<void> {
    try {
      for (const [i, op] of ops.entries()) {
        this.#upcoming = ops.slice(i).flatMap((o) => Object.values(o.facts));
        await this.run(op);
      }
    } finally {
      this.#upcoming = [];
    }
  }

  /** Runs handler bodies with their steps named after the handler. */
  async withPrefix(prefix: string, body: () => Promise<unknown>): Promise<void> {
    this.#prefix = prefix;
    try {
      await body();
    } finally {
      this.#prefix = '';
    }
  }

  /**
   * Runs one step. A step started while another of this host is under way (a missing `await`)
   * fails, naming both. The promise is marked handled: a step nobody awaited must not end the
   * process, its outcome is in `steps` and {@link settled} reports it.
   */
  run(op: Operation): Promise<'ok' | 'changed'> {
    const step = this.#step(op);
    step.catch(() => {});
    return step;
  }

  /** Resolves once no step is under way, whatever its outcome. */
  async idle(): Promise<void> {
    while (this.#current) await this.#current.done;
  }

  /**
   * After `part` (the task body, a handler) returned: fails the host when a step was still under
   * way or a step failed without `part` noticing, both signs of a `host.run` nobody awaited.
   */
  async settled(part: string): Promise<void> {
    const running = this.#current?.name;
    await this.idle();
    if (running !== undefined) throw new TackleError({ phase: 'task', host: this.name, step: running, reason: `step "${running}" was still running when ${part} returned: await each host.run(…)` });
    const failed = this.steps.find((s) => s.status === 'failed')?.error;
    if (failed) throw new StepFailed(failed);
  }

  async #step(op: Operation): Promise<'ok' | 'changed'> {
    const name = this.#prefix + op.name;
    if (this.signal?.aborted) throw new Interrupted();
    const started = performance.now();
    const record = (step: Omit<StepResult, 'name' | 'durationMs'>): StepResult => {
      const result = { name, durationMs: Math.round(performance.now() - started), ...step };
      this.steps.push(result);
      this.listener({ type: 'step:end', step: result });
      return result;
    };
    const fail = (err: unknown): never => {
      const error = asTackleError(err, this.name, name);
      record({ status: 'failed', error });
      throw new StepFailed(error);
    };
    const other = this.#current;
    if (other) {
      fail(new TackleError({ phase: 'task', reason: `step "${name}" started while step "${other.name}" was still running on this host: await each host.run(…), a host runs one step at a time` }));
    }
    let finished!: () => void;
    this.#current = { name, done: new Promise((resolve) => (finished = resolve)) };
    this.listener({ type: 'step:start', step: name });
    try {
      return await this.#apply(op, name, record);
    } catch (err) {
      return fail(err);
    } finally {
      this.#current = undefined;
      finished();
    }
  }

  async #apply(op: Operation, name: string, record: (step: Omit<StepResult, 'name' | 'durationMs'>) => StepResult): Promise<'ok' | 'changed'> {
    const known = this.handlers;
    const unknown = known ? op.notify.filter((h) => !known.names.includes(h)) : [];
    if (known && unknown.length > 0) {
      throw new TackleError({ phase: 'task', reason: `notify names ${unknown.map((h) => JSON.stringify(h)).join(', ')}, not a handler of task ${known.task} (${handlerList(known.task, known.names)}); nothing was changed` });
    }
    const keys = Object.keys(op.facts);
    const values = await this.#facts(keys.map((k) => op.facts[k] as Fact<unknown>));
    if (values.includes(UNKNOWN)) {
      // Only a dry-run gets here: what this step would do depends on changes merely planned.
      this.#state.changed(undefined);
      op.notify.forEach((h) => this.notified.add(h));
      record({ status: 'unknown', summary: `${UNKNOWN_SUMMARY} (${keys.filter((_, i) => values[i] === UNKNOWN).join(', ')})` });
      return 'changed';
    }
    const change = op.plan(Object.fromEntries(keys.map((k, i) => [k, values[i]])));
    if (!change || change.actions.length === 0) {
      record({ status: 'ok' });
      return 'ok';
    }
    const checks = change.checks ?? [];
    const commands = [...change.actions.map((a) => a.command.toString()), ...checks.map((c) => `(controller) ${c.describe}`)];
    // Before the commands run: a change that fails half-way may have changed what it touches.
    this.#state.changed(change.effects);
    if (!this.dryRun) {
      // Recorded before the change: whatever happens next, a later run still runs the handler.
      await this.pending?.record(op.notify, name);
      const ctx: ApplyContext = { host: this.name, connection: this.connection, openFresh: this.openFresh };
      for (const action of change.actions) {
        const result = await this.connection.exec(action.command, { ...(action.stdin === undefined ? {} : { stdin: action.stdin }), ...(this.stop ? { signal: this.stop } : {}) });
        assertOk(result, this.name, this.stop?.aborted ? 'the run was stopped while this command ran (its channel was closed)' : undefined);
      }
      for (const check of checks) await check.run(ctx);
    }
    op.notify.forEach((h) => this.notified.add(h));
    record({ status: 'changed', summary: change.summary, commands, ...(change.diff ? { diff: change.diff } : {}) });
    return 'changed';
  }
}
