import type { Command } from '../command/command.ts';
import type { Connection, Stdin } from '../connection/connection.ts';
import type { Fact, FactMap, FactValues } from '../facts/fact.ts';

/** One command of a plan, with what it reads on stdin (file content, say). */
export interface Action {
  command: Command;
  stdin?: Stdin;
}

/** What a controller-side action may use while a plan is applied. */
export interface ApplyContext {
  readonly host: string;
  /** The connection the run uses (through sudo when the host becomes root). */
  readonly connection: Connection;
  /** Opens a new connection with the same inventory settings, e.g. to prove a login still works. Close it. */
  openFresh(): Promise<Connection>;
}

/**
 * A check run on the controller after a plan's commands: what no remote command can prove, such
 * as "a fresh SSH login still works" after an sshd change. `describe` is what plans and reports
 * show. Throwing fails the step; a check that can undo the change does so before it throws.
 */
export interface Check {
  describe: string;
  run(ctx: ApplyContext): Promise<void>;
}

/**
 * A fact's value in the planned state when earlier changes make it impossible to say before they
 * ran. A step reading it is planned as unknown, never as ok.
 */
export const UNKNOWN: unique symbol = Symbol('tackle.unknown');
export type Unknown = typeof UNKNOWN;

/**
 * What a change does to the facts it touches, so later steps of a task can be planned before it
 * ran. A fact in `facts` takes the value given (or {@link UNKNOWN}), one in `update` the value
 * computed from its value before; a fact that `touches` names,
 * or whose {@link Fact.reads} meet a path in `writes`, becomes unknown; every other fact stays as
 * it was. A change without effects may change anything: after it every fact is unknown.
 *
 * @example { facts: { [pathInfo('/x').key]: { kind: 'missing' } }, writes: ['/x'] }
 */
export interface Effects {
  /** Fact key → the value the fact has after the change. */
  readonly facts?: Readonly<Record<string, unknown>>;
  /** Fact key → its value after the change from its value before (unknown stays unknown). */
  readonly update?: Readonly<Record<string, (before: never) => unknown>>;
  /** Paths the change writes or removes; one ending in `/` is the whole tree below it. */
  readonly writes?: readonly string[];
  /** Other facts the change may alter, by key. */
  readonly touches?: (key: string) => boolean;
}

/** What an operation would change: a one-line summary, its commands and, for files, a diff. */
export interface Change {
  summary: string;
  actions: Action[];
  /** Run on the controller after the actions, in order. */
  checks?: Check[];
  /** Unified diff, already masked when the content is secret. */
  diff?: string;
  /** What the change does to facts, for planning the steps after it (see {@link Effects}). */
  effects?: Effects;
}

/**
 * A handler of a task, as `notify` takes it. A task hands its handlers to its body as values
 * (`run(host, handlers)`), so a misspelt handler is a type error and, in JavaScript, a TypeError.
 */
export interface HandlerRef<K extends string = string> {
  readonly kind: 'tackle.handler';
  readonly name: K;
}

/** Options every operation takes. */
export interface CommonOptions {
  /** Handlers to run once at the end of the task if this step changed something: `notify: handlers['reload nginx']`. */
  notify?: HandlerRef | readonly HandlerRef[];
  /** Overrides the step name shown in the UI and the report. */
  name?: string;
}

/**
 * A planner: from the facts it asks for, the change it would make, or
 * `undefined` when the host is already as desired. Applying is the engine's job.
 */
export interface Operation<F extends FactMap = FactMap> {
  readonly name: string;
  readonly facts: F;
  /** The names of the handlers this step notifies (the task checks them before the step starts). */
  readonly notify: readonly string[];
  plan(facts: FactValues<F>): Change | undefined;
}

/**
 * @example
 * defineOperation({ name: 'touch /x', facts: { f: fileFact('/x') }, options,
 *   plan: ({ f }) => f.kind === 'missing' ? { summary: 'create /x', actions: [{ command: sh`touch /x` }] } : undefined })
 */
export function defineOperation<F extends FactMap>(spec: {
  name: string;
  facts: F;
  options?: CommonOptions;
  plan(facts: FactValues<F>): Change | undefined;
}): Operation<F> {
  const name = spec.options?.name ?? spec.name;
  return { name, facts: spec.facts, notify: handlerNames(name, spec.options?.notify), plan: spec.plan };
}

/**
 * The names `notify` gives. A plain string (JavaScript, or a name built at run time) is taken as a
 * name and checked against the task when the step starts; anything else that is not a handler (an
 * `undefined` from a misspelt lookup, say) is a TypeError now rather than a notification lost.
 */
function handlerNames(step: string, notify: CommonOptions['notify'] | string | readonly string[]): string[] {
  if (notify === undefined) return [];
  const given: readonly unknown[] = Array.isArray(notify) ? notify : [notify];
  return given.map((h) => {
    if (typeof h === 'string') return h;
    if (typeof h === 'object' && h !== null && (h as HandlerRef).kind === 'tackle.handler') return (h as HandlerRef).name;
    throw new TypeError(`${step}: notify takes the task's handlers (run(host, handlers) → notify: handlers['reload nginx']), got ${String(h)}`);
  });
}

// Building an operation out of others: an outer operation gathers the facts its parts need and
// plans each part with them, so composite operations reuse files.file's atomic, validated writes.

/**
 * The facts of several operations, keyed by their cache keys, to put in an outer operation's `facts`.
 *
 * @example defineOperation({ name, facts: factsOf(fileA, fileB), plan: (v) => … })
 */
export function factsOf(...parts: readonly Operation[]): FactMap {
  const facts: Record<string, Fact<unknown>> = {};
  for (const part of parts) for (const fact of Object.values(part.facts)) facts[fact.key] = fact as Fact<unknown>;
  return facts;
}

/**
 * Plans `part` with fact values gathered by an outer operation (keyed by fact cache key, as
 * {@link factsOf} builds them). A fact the outer operation did not gather is a programming error.
 *
 * @example const change = planWith(files.file({ path, content }), values);
 */
export function planWith(part: Operation, values: Readonly<Record<string, unknown>>): Change | undefined {
  const mine = Object.fromEntries(
    Object.entries(part.facts).map(([name, fact]) => {
      if (!Object.hasOwn(values, fact.key)) throw new TypeError(`planWith: ${part.name} needs fact ${fact.key}, which was not gathered`);
      return [name, values[fact.key]];
    }),
  );
  return part.plan(mine as never);
}

/**
 * The effects of changes applied one after the other, as one change's. A part without effects
 * may change anything, and so may the whole.
 *
 * @example { summary, actions, effects: afterEach(module?.effects, { writes: [path] }) }
 */
export function afterEach(...parts: readonly (Effects | undefined)[]): Effects | undefined {
  if (parts.some((p) => p === undefined)) return undefined;
  const all = parts as readonly Effects[];
  const touches = all.map((p) => p.touches).filter((t) => t !== undefined);
  return {
    facts: Object.assign({}, ...all.map((p) => p.facts ?? {})),
    update: Object.assign({}, ...all.map((p) => p.update ?? {})),
    writes: all.flatMap((p) => p.writes ?? []),
    ...(touches.length ? { touches: (key: string) => touches.some((t) => t(key)) } : {}),
  };
}
