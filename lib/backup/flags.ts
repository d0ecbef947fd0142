// Flags of the backup scripts beyond the ones runCli knows. runCli rejects unknown flags, so a
// script takes its own out of argv first and hands the rest on. (The lasting fix is a `flags`
// spec on defineTask that runCli parses and passes to the task; see the backup report.)

/** A script's own flags: `--name VALUE` (string) or `--name` (boolean). */
export type FlagSpec = Readonly<Record<string, { type: 'string' | 'boolean'; describe: string }>>;

/** The values found for a spec: strings and booleans, absent when not given. @example const { values } = splitFlags(argv, spec); values.backup */
export type FlagValues<S extends FlagSpec> = { [K in keyof S]?: S[K]['type'] extends 'string' ? string : boolean };

/**
 * Takes the flags of `spec` (`--name value`, `--name=value`, `--flag`) out of argv; the rest
 * keeps its order. A string flag without a value is a TypeError.
 *
 * @example splitFlags(['--backup', 'x.dump', '--limit', 'db1'], { backup: { type: 'string', describe: '' } })
 * // { values: { backup: 'x.dump' }, rest: ['--limit', 'db1'] }
 */
export function splitFlags<S extends FlagSpec>(argv: readonly string[], spec: S): { values: FlagValues<S>; rest: string[] } {
  const values: Record<string, string | boolean> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    const flag = m ? spec[m[1] as string] : undefined;
    if (!m || !flag) {
      rest.push(arg);
      // The value of another flag is passed on with it, even when it looks like one of ours.
      if (/^--[^=]+$/.test(arg) && TAKES_VALUE.has(arg) && i + 1 < argv.length) rest.push(argv[++i] as string);
      continue;
    }
    const name = m[1] as string;
    if (flag.type === 'boolean') {
      if (m[2] !== undefined) throw new TypeError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined || value === '') throw new TypeError(`--${name} needs a value`);
    values[name] = value;
  }
  return { values: values as FlagValues<S>, rest };
}

// runCli's flags that take a value (lib/cli/args.ts).
const TAKES_VALUE = new Set(['--inventory', '--limit', '--concurrency', '--json']);

/**
 * Usage lines for a script's own flags, in the style of runCli's help.
 *
 * @example flagUsage({ backup: { type: 'string', describe: 'restore this dump' } }) // '  --backup VALUE  restore this dump\n'
 */
export function flagUsage(spec: FlagSpec): string {
  const rows = Object.entries(spec).map(([name, f]) => [`--${name}${f.type === 'string' ? ' VALUE' : ''}`, f.describe] as const);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return rows.map(([left, text]) => `  ${left.padEnd(width)}${text}\n`).join('');
}

/**
 * The JSON report file of a run: the one asked for with `--json`, or `fallback` appended to
 * argv, so that a script can read what happened after runCli returns.
 *
 * @example withJsonReport(['--limit', 'db1'], '/tmp/x.json') // { argv: ['--limit', 'db1', '--json', '/tmp/x.json'], file: '/tmp/x.json' }
 */
export function withJsonReport(argv: readonly string[], fallback: string): { argv: string[]; file: string } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json' && argv[i + 1] !== undefined) return { argv: [...argv], file: argv[i + 1] as string };
    if (arg.startsWith('--json=')) return { argv: [...argv], file: arg.slice('--json='.length) };
  }
  return { argv: [...argv, '--json', fallback], file: fallback };
}
