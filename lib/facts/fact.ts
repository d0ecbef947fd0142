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
}

/** @example defineFact('os.release', sh`cat /etc/os-release`, ({ stdout }) => parseOsRelease(stdout)) */
export function defineFact<T>(key: string, command: Command, parse: (output: FactOutput) => T): Fact<T> {
  return { key, command, parse };
}

/** The parsed value of a fact. */
export type FactValue<F> = F extends Fact<infer T> ? T : never;

/** Named facts an operation asks for. */
export type FactMap = Readonly<Record<string, Fact<unknown>>>;

export type FactValues<F extends FactMap> = { [K in keyof F]: FactValue<F[K]> };
