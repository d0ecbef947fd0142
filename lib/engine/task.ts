import type { Fact } from '../facts/fact.ts';
import type { InferShape, Shape } from '../inventory/vars.ts';
import type { Vars } from '../inventory/inventory.ts';
import type { Operation } from './operation.ts';
import type { TaskFlag } from '../cli/args.ts';

export type StepStatus = 'ok' | 'changed' | 'failed' | 'skipped';

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
}

export type Handler<V extends Vars> = (host: HostContext<V>) => Promise<unknown>;

export interface TaskSpec<S extends Shape> {
  name: string;
  /** The vars the task needs; hosts are checked against them before any connection. */
  vars?: S;
  run(host: HostContext<InferShape<S>>): Promise<void>;
  /** Run once per host after the task, in this order, when an operation notified them and changed. */
  handlers?: Readonly<Record<string, Handler<InferShape<S>>>>;
  /** Command-line flags of this task (`--ref v1.2`); each sets a var on every host. */
  flags?: Readonly<Record<string, TaskFlag>>;
}

export interface Task<V extends Vars = Vars> {
  readonly kind: 'tackle.task';
  readonly name: string;
  readonly vars: Shape;
  run(host: HostContext<V>): Promise<void>;
  readonly handlers: Readonly<Record<string, Handler<V>>>;
  readonly flags: Readonly<Record<string, TaskFlag>>;
}

/** The vars type a task needs, for typing an inventory: `defineInventory<VarsOf<typeof task>>(…)`. */
export type VarsOf<T> = T extends Task<infer V> ? V : never;

/**
 * @example
 * export const hello = defineTask({
 *   name: 'hello',
 *   vars: { motd: v.string() },
 *   run: async (host) => { await host.run(files.file({ path: '/etc/motd', content: host.vars.motd })); },
 * });
 */
export function defineTask<S extends Shape = Record<never, never>>(spec: TaskSpec<S>): Task<InferShape<S>> {
  if (typeof spec.run !== 'function') throw new TypeError(`task ${spec.name}: run must be a function`);
  return { kind: 'tackle.task', name: spec.name, vars: spec.vars ?? {}, run: spec.run, handlers: spec.handlers ?? {}, flags: spec.flags ?? {} };
}
