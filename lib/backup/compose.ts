// Building an operation out of others: an outer operation gathers the facts its parts need and
// plans each part with them, so `rclone.remote` and `schedule.timer` reuse files.file's atomic,
// validated writes instead of copying them. (A general helper: it would sit well in
// lib/engine/operation.ts.)
import type { Change, Operation } from '../engine/operation.ts';
import type { Fact, FactMap } from '../facts/fact.ts';

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
