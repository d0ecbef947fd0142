import type { Fact, FactValue } from '../facts/fact.ts';
import type { InferShape, Shape } from '../inventory/vars.ts';
import type { Vars } from '../inventory/inventory.ts';
import type { HandlerRef, Operation } from './operation.ts';

export type StepStatus = 'ok' | 'changed' | 'failed' | 'skipped';

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
}

export type Handler<V extends Vars> = (host: HostContext<V>) => Promise<unknown>;

/**
 * How a task body names one of its handlers for `notify`. In TypeScript only the task's handler
 * names type-check; any other name (a JavaScript typo, a name built at run time) is a TypeError
 * at once, naming the handlers the task has.
 */
export type HandlerLookup<H extends string> = (name: H) => HandlerRef<H>;

export interface TaskSpec<S extends Shape, H extends string = never> {
  name: string;
  /** The vars the task needs; hosts are checked against them before any connection. */
  vars?: S;
  /**
   * The task body; `handler('reload nginx')` is what `notify` takes. Await every `host.run`: one
   * step at a time per host. What it resolves with (a report's findings) is the host's `data` in
   * the result and the JSON report.
   */
  run(host: HostContext<InferShape<S>>, handler: HandlerLookup<H>): Promise<unknown>;
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

export interface Task<V extends Vars = Vars, H extends string = string> {
  readonly kind: 'tackle.task';
  readonly name: string;
  readonly vars: Shape;
  run(host: HostContext<V>, handler: HandlerLookup<H>): Promise<unknown>;
  readonly handlers: Readonly<Record<H, Handler<V>>>;
  /** A handler of this task for `notify` outside its body (a helper building steps, say); a TypeError for a name it lacks. */
  handler(name: H): HandlerRef<H>;
  readonly flags: Readonly<Record<string, TaskFlag>>;
  /** Reads only: no host lock, no change (see {@link TaskSpec.readOnly}). */
  readonly readOnly: boolean;
}

/** The vars type a task needs, for typing an inventory: `defineInventory<VarsOf<typeof task>>(…)`. */
export type VarsOf<T> = T extends Task<infer V> ? V : never;

/**
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
  if (typeof spec.run !== 'function') throw new TypeError(`task ${spec.name}: run must be a function`);
  const handlers = (spec.handlers ?? {}) as Readonly<Record<H, Handler<InferShape<S>>>>;
  for (const [name, body] of Object.entries(handlers)) {
    if (typeof body !== 'function') throw new TypeError(`task ${spec.name}: handler "${name}" must be a function`);
  }
  if (spec.readOnly && Object.keys(handlers).length > 0) throw new TypeError(`task ${spec.name} is read-only: it changes nothing, so it has no handlers`);
  const refs = new Map(Object.keys(handlers).map((name) => [name, Object.freeze({ kind: 'tackle.handler' as const, name: name as H })]));
  const handler = (name: H): HandlerRef<H> => {
    const ref = refs.get(name);
    if (ref) return ref;
    throw new TypeError(`task ${spec.name} has no handler ${JSON.stringify(name)} (${handlerList(spec.name, [...refs.keys()])})`);
  };
  return { kind: 'tackle.task', name: spec.name, vars: spec.vars ?? {}, run: spec.run, handlers, handler, flags: spec.flags ?? {}, readOnly: spec.readOnly ?? false };
}

/** The handlers a task has, for error messages. */
export function handlerList(task: string, names: readonly string[]): string {
  return names.length ? `its handlers: ${names.map((n) => JSON.stringify(n)).join(', ')}` : `task ${task} has no handlers`;
}
