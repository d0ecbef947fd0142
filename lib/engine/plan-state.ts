import type { Fact } from '../facts/fact.ts';
import { UNKNOWN, type Effects } from '../ops/operation.ts';

// A task planned as a whole sees the host as its earlier steps will leave it. A real run reads
// the facts, applies a change, and re-reads only the facts the change invalidated; a dry-run
// applies nothing and carries the facts it read through each planned change's effects instead.

/**
 * Whether a path a change writes meets a path a fact reads. A path ending in `/` is a tree: a
 * write of `/etc/ufw/` may change anything below it, a read of `/etc/ssh/` depends on everything
 * below it. Any other path is that path alone (creating a directory leaves what is inside alone).
 *
 * @example pathsMeet('/etc/nginx/sites-enabled/app', '/etc/nginx/') // true
 * @example pathsMeet('/srv/app', '/srv/app/index.html') // false
 */
export function pathsMeet(written: string, read: string): boolean {
  const a = written.replace(/\/+$/, '') || '/';
  const b = read.replace(/\/+$/, '') || '/';
  const inside = (p: string, dir: string) => p !== dir && (dir === '/' || p.startsWith(`${dir}/`));
  return a === b || (written.endsWith('/') && inside(b, a)) || (read.endsWith('/') && inside(a, b));
}

/** Whether a change with these effects may change the fact's value (no effects: anything may). */
export function invalidates(effects: Effects | undefined, fact: Fact<unknown>): boolean {
  if (!effects || fact.volatile || effects.touches?.(fact.key)) return true;
  if (predicted(effects, fact.key)) return true;
  const writes = effects.writes ?? [];
  if (writes.length === 0) return false;
  const reads = fact.reads;
  return reads === undefined || writes.some((w) => reads.some((r) => pathsMeet(w, r)));
}

/**
 * A fact's value after a change: the value the effects predict, {@link UNKNOWN} when the change
 * may alter it otherwise, else the value before.
 *
 * @example afterChange(unitFact, before, { facts: { [unitFact.key]: started } }) // started
 */
export function afterChange(fact: Fact<unknown>, before: unknown, effects: Effects | undefined): unknown {
  if (effects?.facts && Object.hasOwn(effects.facts, fact.key)) return effects.facts[fact.key];
  const update = effects?.update && Object.hasOwn(effects.update, fact.key) ? effects.update[fact.key] : undefined;
  if (update) return before === UNKNOWN || before === undefined ? UNKNOWN : update(before as never);
  return invalidates(effects, fact) ? UNKNOWN : before;
}

function predicted(effects: Effects, key: string): boolean {
  return (effects.facts !== undefined && Object.hasOwn(effects.facts, key)) || (effects.update !== undefined && Object.hasOwn(effects.update, key));
}

/**
 * The facts of one host during a run. A real run holds what it read and marks stale what an
 * applied change invalidated, to be read again. A dry-run holds the planned state: every value
 * read, carried through the effects of the changes planned so far (also for a fact first read
 * after them).
 *
 * @example
 * const state = new FactState(true);
 * state.store([unit], [inactive]);
 * state.changed({ facts: { [unit.key]: active } });
 * state.get(unit.key) // active
 */
export class FactState {
  readonly #values = new Map<string, unknown>();
  readonly #facts = new Map<string, Fact<unknown>>();
  readonly #stale = new Set<string>();
  readonly #planned: (Effects | undefined)[] = [];

  constructor(readonly dryRun: boolean) {}

  /** Of these facts, the ones to read from the host (once each): never read, or stale after a change. */
  toRead(facts: readonly Fact<unknown>[]): Fact<unknown>[] {
    const out = new Map<string, Fact<unknown>>();
    for (const f of facts) if (!this.#values.has(f.key) || this.#stale.has(f.key)) out.set(f.key, f);
    return [...out.values()];
  }

  /** Keeps values just read from the host; a dry-run carries each through the changes planned so far. */
  store(facts: readonly Fact<unknown>[], values: readonly unknown[]): void {
    facts.forEach((f, i) => {
      this.#facts.set(f.key, f);
      this.#stale.delete(f.key);
      this.#values.set(f.key, this.#planned.reduce((v, effects) => afterChange(f, v, effects), values[i]));
    });
  }

  /** The value known for a fact key (possibly {@link UNKNOWN} in a dry-run). */
  get(key: string): unknown {
    return this.#values.get(key);
  }

  /** After a change was applied (real run: what it invalidated is read again) or planned (dry-run). */
  changed(effects: Effects | undefined): void {
    if (this.dryRun) this.#planned.push(effects);
    for (const [key, fact] of this.#facts) {
      if (this.dryRun) this.#values.set(key, afterChange(fact, this.#values.get(key), effects));
      else if (invalidates(effects, fact)) this.#stale.add(key);
    }
  }
}
