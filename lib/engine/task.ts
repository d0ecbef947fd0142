import type { Fact, FactValue } from '../facts/fact.ts';
import type { InferShape, Shape } from '../inventory/vars.ts';
import type { Vars } from '../inventory/inventory.ts';
import type { HandlerRef, Operation } from '../ops/operation.ts';

/** `unknown`: a dry-run could not plan the step before earlier steps ran (it may change). */
export type StepStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unknown';

/** A flag a task adds to the command line; its value becomes a var of every host (highest precedence). */
export interface TaskFlag {
  type: 'string' | 'number' | 'boolean';
  description: string;
  /** The var it sets; the flag's own name by default. */
  var?: string;
}

/**
 * What a task sees of one host. Everything it does goes through here, so two
 * runs in one process never share state.
 */
export interface HostContext<V extends Vars = Vars> {
  readonly name: string;
  readonly groups: readonly string[];
  readonly vars: V;
  readonly dryRun: boolean;
  /**
   * Plans an operation and applies it (unless dry-run). Resolves `ok` or
   * `changed`; a failure ends the task on this host (the runner records it).
   */
  run(op: Operation): Promise<'ok' | 'changed'>;
  /** Reads a fact (cached for the run until a change on this host). */
  fact<T>(fact: Fact<T>): Promise<T>;
  /** Reads several facts in one round trip (those not cached yet), in order. @example const [disk, load] = await host.facts([diskUsage(), loadAverage()]); */
  facts<const F extends readonly Fact<unknown>[]>(facts: F): Promise<{ -readonly [K in keyof F]: FactValue<F[K]> }>;
  /**
   * Runs steps planned as a whole (what a task's `steps` returns): their facts in one round
   * trip, each planned against the state the earlier ones leave. Resolves once all are done;
   * a failure ends the task on this host.
   */
  runSteps(ops: readonly Operation[]): Promise<void>;
}

/** What a task's `steps` sees of a host: its name, groups and vars, nothing to wait for. */
export type HostInfo<V extends Vars = Vars> = Pick<HostContext<V>, 'name' | 'groups' | 'vars' | 'dryRun'>;

/** A step list entry: an operation, or a falsy value for one a condition left out (`vars.swapMb > 0 && server.swapfile(…)`). */
export type StepEntry = Operation | false | '' | 0 | undefined | null;

/** A handler: a body that runs steps, or (declarative) the steps it runs. */
export type Handler<V extends Vars> = (host: HostContext<V>) => Promise<unknown> | StepEntry | readonly StepEntry[];

/**
 * How a task body names one of its handlers for `notify`. In TypeScript only the task's handler
 * names type-check; any other name (a JavaScript typo, a name built at run time) is a TypeError
 * at once, naming the handlers the task has.
 */
export type HandlerLookup<H extends string> = (name: H) => HandlerRef<H>;

interface TaskSpecBase<S extends Shape, H extends string> {
  name: string;
  /** The vars the task needs; hosts are checked against them before any connection. */
  vars?: S;
  /** Run once per host after the task, in this order, when an operation notified them and changed. */
  handlers?: { readonly [K in H]: Handler<InferShape<S>> };
  /** Command-line flags of this task (`--ref v1.2`); each sets a var on every host. */
  flags?: Readonly<Record<string, TaskFlag>>;
  /**
   * A report that only reads (scripts/health.ts): it takes no host lock, so it never waits behind
   * a real run nor holds one up, and it changes nothing: its steps are only planned, and a step
   * that would change something fails the host. It has no handlers.
   */
  readOnly?: boolean;
}

/** A task as a body that runs steps one by one and may branch on their results (deploy, restore). */
export interface RunTaskSpec<S extends Shape, H extends string = never> extends TaskSpecBase<S, H> {
  /**
   * The task body; `handler('reload nginx')` is what `notify` takes. Await every `host.run`: one
   * step at a time per host. What it resolves with (a report's findings) is the host's `data` in
   * the result and the JSON report.
   */
  run(host: HostContext<InferShape<S>>, handler: HandlerLookup<H>): Promise<unknown>;
  steps?: never;
}

/**
 * A task as the list of its steps, a plain function of the host's vars (conditions and loops in
 * TypeScript). The engine sees every step before it applies any: it reads their facts in one
 * round trip and plans each against the state the earlier ones leave, so a dry-run says what
 * the real run will do.
 */
export interface StepsTaskSpec<S extends Shape, H extends string = never> extends TaskSpecBase<S, H> {
  steps(host: HostInfo<InferShape<S>>, handler: HandlerLookup<H>): readonly StepEntry[];
  run?: never;
}

export type TaskSpec<S extends Shape, H extends string = never> = RunTaskSpec<S, H> | StepsTaskSpec<S, H>;

export interface Task<V extends Vars = Vars, H extends string = string> {
  readonly kind: 'tackle.task';
  readonly name: string;
  readonly vars: Shape;
  run(host: HostContext<V>, handler: HandlerLookup<H>): Promise<unknown>;
  /**
   * A declarative task's step list for a host (what `run` runs): the runner reads the facts of
   * every step along with the run lock, in one round trip.
   */
  readonly steps?: (host: HostInfo<V>) => Operation[];
  /** Handler bodies as the runner runs them (a handler given as steps runs them planned as a whole). */
  readonly handlers: Readonly<Record<H, (host: HostContext<V>) => Promise<unknown>>>;
  /** A handler of this task for `notify` outside its body (a helper building steps, say); a TypeError for a name it lacks. */
  handler(name: H): HandlerRef<H>;
  readonly flags: Readonly<Record<string, TaskFlag>>;
  /** Reads only: no host lock, no change (see the spec's `readOnly`). */
  readonly readOnly: boolean;
}

/** The vars type a task needs, for typing an inventory: `defineInventory<VarsOf<typeof task>>(…)`. */
export type VarsOf<T> = T extends Task<infer V> ? V : never;

/**
 * @example
 * export const motd = defineTask({
 *   name: 'motd',
 *   vars: { motd: v.string(), swapMb: v.integer().default(0) },
 *   steps: (host, handler) => [
 *     files.file({ path: '/etc/motd', content: host.vars.motd }),
 *     host.vars.swapMb > 0 && server.swapfile({ sizeMb: host.vars.swapMb }),
 *   ],
 * });
 * @example
 * export const hello = defineTask({
 *   name: 'hello',
 *   vars: { motd: v.string() },
 *   run: async (host, handler) => {
 *     await host.run(files.file({ path: '/etc/motd', content: host.vars.motd, notify: handler('reload nginx') }));
 *   },
 *   handlers: { 'reload nginx': (host) => host.run(systemd.service({ name: 'nginx', state: 'reloaded' })) },
 * });
 */
export function defineTask<S extends Shape = Record<never, never>, H extends string = never>(spec: TaskSpec<S, H>): Task<InferShape<S>, H> {
  const { steps, name: task } = spec;
  if (typeof spec.run !== 'function' && typeof steps !== 'function') throw new TypeError(`task ${task}: give run (a body) or steps (a function returning the steps)`);
  const given = (spec.handlers ?? {}) as Readonly<Record<H, Handler<InferShape<S>>>>;
  for (const [name, body] of Object.entries(given)) {
    if (typeof body !== 'function') throw new TypeError(`task ${spec.name}: handler "${name}" must be a function`);
  }
  if (spec.readOnly && Object.keys(given).length > 0) throw new TypeError(`task ${spec.name} is read-only: it changes nothing, so it has no handlers`);
  // A handler that returns steps runs them planned as a whole, like the task's own.
  const handlers = Object.fromEntries(
    Object.entries<Handler<InferShape<S>>>(given).map(([name, body]) => [
      name,
      async (host: HostContext<InferShape<S>>) => {
        const out = body(host);
        if (out instanceof Promise) return out;
        return host.runSteps(stepList(`task ${spec.name}: handler "${name}"`, out));
      },
    ]),
  ) as Record<H, (host: HostContext<InferShape<S>>) => Promise<unknown>>;
  const refs = new Map(Object.keys(handlers).map((name) => [name, Object.freeze({ kind: 'tackle.handler' as const, name: name as H })]));
  const handler = (name: H): HandlerRef<H> => {
    const ref = refs.get(name);
    if (ref) return ref;
    throw new TypeError(`task ${spec.name} has no handler ${JSON.stringify(name)} (${handlerList(spec.name, [...refs.keys()])})`);
  };
  const list = steps && ((host: HostInfo<InferShape<S>>) => stepList(`task ${spec.name}: steps`, steps(host, handler)));
  const run = list ? (host: HostContext<InferShape<S>>) => host.runSteps(list(host)) : (spec.run as RunTaskSpec<S, H>['run']);
  return { kind: 'tackle.task', name: spec.name, vars: spec.vars ?? {}, run, ...(list ? { steps: list } : {}), handlers, handler, flags: spec.flags ?? {}, readOnly: spec.readOnly ?? false };
}

/** The operations of a step list, conditions that left a step out dropped; anything else is a TypeError. */
function stepList(where: string, entries: StepEntry | readonly StepEntry[]): Operation[] {
  const list: readonly unknown[] = Array.isArray(entries) ? entries : [entries];
  return list.flatMap((e, i) => {
    if (e === false || e === '' || e === 0 || e === undefined || e === null) return [];
    if (typeof e === 'object' && typeof (e as Operation).plan === 'function') return [e as Operation];
    throw new TypeError(`${where}: entry ${i} is not an operation (got ${e instanceof Promise ? 'a Promise: steps are operations, not host.run(…)' : String(e)})`);
  });
}

/** The handlers a task has, for error messages. */
export function handlerList(task: string, names: readonly string[]): string {
  return names.length ? `its handlers: ${names.map((n) => JSON.stringify(n)).join(', ')}` : `task ${task} has no handlers`;
}
