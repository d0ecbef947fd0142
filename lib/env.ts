import { readFileSync } from 'node:fs';
import { parse } from 'dotenv';
import { Secret } from './command/command.ts';
import { TackleError } from './errors.ts';

/** How one environment variable is read. */
export interface EnvVar {
  /** Wrap the value in `secret()` so it prints as `***` everywhere. */
  secret?: boolean;
  /** Absent is allowed (the value is `undefined`). */
  optional?: boolean;
  /** Checked after reading; return a message to reject the value. */
  check?: (value: string) => string | undefined;
}

/** The value one declared variable loads as: a Secret when `secret`, possibly undefined when `optional`. */
export type EnvValue<E extends EnvVar> = (E['secret'] extends true ? Secret : string) | (E['optional'] extends true ? undefined : never);
export type EnvOf<S extends Record<string, EnvVar>> = { [K in keyof S]: EnvValue<S[K]> };

/**
 * The one typed, validated way inventories, tasks and scripts read the
 * environment: the process environment first, then a dotenv file (`.env`).
 *
 * @example
 * const env = loadEnv({ SUDO_PASSWORD: { secret: true, optional: true } }, { env: process.env, file: '.env' });
 */
export function loadEnv<S extends Record<string, EnvVar>>(spec: S, source: { env: Readonly<Record<string, string | undefined>>; file?: string }): EnvOf<S> {
  let fromFile: Record<string, string> = {};
  if (source.file) {
    try {
      fromFile = parse(readFileSync(source.file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TackleError({ phase: 'inventory', reason: `cannot read ${source.file}: ${(err as Error).message}`, cause: err });
    }
  }
  const problems: string[] = [];
  const out: Record<string, string | Secret | undefined> = {};
  for (const [name, how] of Object.entries(spec)) {
    const value = source.env[name] ?? fromFile[name];
    if (value === undefined || value === '') {
      if (!how.optional) problems.push(`${name} is not set (in the environment or ${source.file ?? 'a .env file'})`);
      out[name] = undefined;
      continue;
    }
    const problem = how.check?.(value);
    // The message never includes a secret's value.
    if (problem) problems.push(`${name}: ${problem}`);
    out[name] = how.secret ? new Secret(value) : value;
  }
  if (problems.length) throw new TackleError({ phase: 'inventory', reason: `environment:\n  - ${problems.join('\n  - ')}` });
  return out as EnvOf<S>;
}
