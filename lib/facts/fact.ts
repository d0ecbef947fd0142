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
}

/** What a fact depends on, for planning later steps (see {@link Fact.reads}). */
export interface FactScope {
  reads?: readonly string[];
  volatile?: boolean;
}

/** @example defineFact('os.release', sh`cat /etc/os-release`, ({ stdout }) => parseOsRelease(stdout), { reads: ['/etc/os-release'] }) */
export function defineFact<T>(key: string, command: Command, parse: (output: FactOutput) => T, scope: FactScope = {}): Fact<T> {
  return { key, command, parse, ...(scope.reads ? { reads: scope.reads } : {}), ...(scope.volatile ? { volatile: true } : {}) };
}

/** The parsed value of a fact. */
export type FactValue<F> = F extends Fact<infer T> ? T : never;

/** Named facts an operation asks for. */
export type FactMap = Readonly<Record<string, Fact<unknown>>>;

export type FactValues<F extends FactMap> = { [K in keyof F]: FactValue<F[K]> };
