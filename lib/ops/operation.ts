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
 * Plans another operation as a part of the one being planned, with the facts the engine gathered
 * for it (see `parts` of {@link defineOperation}); `undefined` when the part changes nothing. The
 * part's own `notify` and step name do not apply: the outer operation is the step.
 */
export type PlanPart = (part: Operation) => Change | undefined;

/**
 * Defines an operation. An operation made of others (a config that files.file writes, say) names
 * them in `parts`, or asks itself for the facts they need (a part built from fact values, such
 * as a file whose content depends on its current content); `plan` then plans each of them with
 * `part(op)`, typed by the part's own facts. Part facts are gathered under their cache keys, so
 * two parts asking one question share one answer.
 *
 * @example
 * defineOperation({ name: 'touch /x', facts: { f: pathInfo('/x') }, options,
 *   plan: ({ f }) => f.kind === 'missing' ? { summary: 'create /x', actions: [{ command: sh`touch /x` }] } : undefined })
 * const unit = files.file({ path: '/etc/systemd/system/x.service', content });
 * defineOperation({ name: 'x', facts: { state: systemdUnit('x.service') }, parts: [unit],
 *   plan: ({ state }, part) => combine([part(unit), state.kind === 'unit' ? undefined : start]) })
 */
export function defineOperation<F extends FactMap>(spec: {
  name: string;
  facts: F;
  /** Operations this one plans with `part(op)`: their facts are gathered with its own. */
  parts?: readonly Operation[];
  options?: CommonOptions;
  plan(facts: FactValues<F>, part: PlanPart): Change | undefined;
}): Operation {
  const name = spec.options?.name ?? spec.name;
  const facts = withPartFacts(name, spec.facts, spec.parts ?? []);
  return {
    name,
    facts,
    notify: handlerNames(name, spec.options?.notify),
    plan: (values) => {
      // Every gathered value by its fact's cache key, where a part finds its own.
      const byKey = new Map(Object.entries(facts).map(([k, fact]) => [fact.key, values[k]]));
      const part: PlanPart = (op) => {
        const mine: Record<string, unknown> = {};
        for (const [k, fact] of Object.entries(op.facts)) {
          if (!byKey.has(fact.key)) throw new TypeError(`${name}: part ${op.name} needs fact ${fact.key}; name the part in parts, or ask for the fact`);
          mine[k] = byKey.get(fact.key);
        }
        return op.plan(mine);
      };
      return spec.plan(ownValues(spec.facts, values), part);
    },
  };
}

/** The operation's own facts by name, and each fact of its parts it does not ask for itself by its cache key. */
function withPartFacts(name: string, own: FactMap, parts: readonly Operation[]): FactMap {
  const facts: Record<string, Fact<unknown>> = { ...own };
  const keys = new Set(Object.values(own).map((f) => f.key));
  for (const fact of parts.flatMap((p) => Object.values(p.facts))) {
    if (keys.has(fact.key)) continue;
    if (Object.hasOwn(own, fact.key)) throw new TypeError(`${name}: its fact named ${fact.key} clashes with a part's fact of that key`);
    keys.add(fact.key);
    facts[fact.key] = fact;
  }
  return facts;
}

// The engine passes a value for every fact of `facts`, own ones under their names: this picks
// those. The one cast of composition, where the names of F meet the record the engine built.
function ownValues<F extends FactMap>(own: F, values: Readonly<Record<string, unknown>>): FactValues<F> {
  return Object.fromEntries(Object.keys(own).map((k) => [k, values[k]])) as FactValues<F>;
}

/**
 * One change from several (the parts of an operation, say): summaries joined by `separator`,
 * actions and controller checks in order, diffs one after another. `undefined` when none changes anything.
 *
 * @example combine([part(service), part(timer)]) // { summary: 'create …service…; create …timer…', actions: [...] }
 */
export function combine(changes: readonly (Change | undefined)[], separator = '; '): Change | undefined {
  const done = changes.filter((c): c is Change => c !== undefined);
  if (done.length === 0) return undefined;
  const checks = done.flatMap((c) => c.checks ?? []);
  const diff = done.map((c) => c.diff ?? '').join('');
  const effects = afterEach(...done.map((c) => c.effects));
  return {
    summary: done.map((c) => c.summary).join(separator),
    actions: done.flatMap((c) => c.actions),
    ...(checks.length ? { checks } : {}),
    ...(diff ? { diff } : {}),
    ...(effects ? { effects } : {}),
  };
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
