import type { Command } from '../command/command.ts';

/** What a fact's parser sees of its command. */
export interface FactOutput {
  stdout: string;
  stderr: string;
  exitCode: number | null;
}

/**
 * A fact: a read-only command plus a pure parser. `key` identifies it in the
 * per-host cache, so two operations asking the same question share one answer.
 */
export interface Fact<T> {
  readonly key: string;
  readonly command: Command;
  parse(output: FactOutput): T;
  /**
   * The paths whose content decides the answer (one ending in `/`: everything below it), so that a
   * change writing elsewhere leaves the fact as it was when a task is planned as a whole.
   * Without it, any write may change the answer.
   */
  readonly reads?: readonly string[];
  /** The answer may change with any change on the host (a guard running an arbitrary command). */
  readonly volatile?: boolean;
  /** The group that reads this fact together with others of its kind in a batch; `item` is its argument. */
  readonly group?: { readonly of: FactGroup; readonly item: string };
}

/**
 * Facts of one kind that a batch reads with one command: several files cost one `stat` for all
 * of them instead of one each, and on a converged host a process costs about as much as reading.
 * `split` cuts the command's output into what each fact's own command would have printed, so each
 * fact's parser reads it unchanged.
 */
export interface FactGroup {
  /** Facts whose group has this id are read together. */
  readonly id: string;
  command(items: readonly string[]): Command;
  /** Pure: one output per item, in order; throws when the output does not hold them all. */
  split(output: FactOutput, items: readonly string[]): FactOutput[];
}

/** What a fact depends on, for planning later steps (see {@link Fact.reads}). */
export interface FactScope {
  reads?: readonly string[];
  volatile?: boolean;
  group?: Fact<unknown>['group'];
}

/** @example defineFact('os.release', sh`cat /etc/os-release`, ({ stdout }) => parseOsRelease(stdout), { reads: ['/etc/os-release'] }) */
export function defineFact<T>(key: string, command: Command, parse: (output: FactOutput) => T, scope: FactScope = {}): Fact<T> {
  return { key, command, parse, ...(scope.reads ? { reads: scope.reads } : {}), ...(scope.volatile ? { volatile: true } : {}), ...(scope.group ? { group: scope.group } : {}) };
}

/** The parsed value of a fact. */
export type FactValue<F> = F extends Fact<infer T> ? T : never;

/** Named facts an operation asks for. */
export type FactMap = Readonly<Record<string, Fact<unknown>>>;

export type FactValues<F extends FactMap> = { [K in keyof F]: FactValue<F[K]> };
