import { parseArgs } from 'node:util';
import { EXIT_CODE_MEANINGS } from '../engine/report.ts';
import type { TaskFlag } from '../engine/task.ts';
import { describeShape, type Shape } from '../inventory/vars.ts';

/** A flag a program adds that is not a var: the program reads it after the run (`--prometheus FILE`). */
export interface OutputFlag {
  type: 'string' | 'boolean';
  description: string;
}


/** Every flag a task script takes. */
export interface CliOptions {
  inventory: string;
  limit?: string;
  dryRun: boolean;
  diff: boolean;
  concurrency: number;
  json?: string;
  acceptNewHostKeys: boolean;
  verbose: boolean;
  help: boolean;
  /** Hosts per batch: a number or a percentage of the selected hosts. */
  serial?: number | `${number}%`;
  /** Stop starting batches once more than this percentage of hosts failed (0: the first failure). */
  maxFail?: number;
  /** Extra vars from `--var k=v` and task flags; they override the inventory. */
  vars: Record<string, unknown>;
  /** Seconds to wait for another run's lock on a host before failing that host (default 300). */
  lockTimeout: number;
  /** The values of the program's output flags, by name. */
  outputs: Record<string, string | boolean | undefined>;
}

export const USAGE = `Usage: npx tsx tasks/NAME.ts [options]

  --inventory FILE         inventory module (default ./inventory.ts)
  --limit PATTERNS         hosts, groups or globs, comma-separated; !x excludes
  --dry-run                plan only: show what would change, change nothing
  --diff                   show file diffs of changed (or would-change) steps
  --concurrency N          hosts worked on at once (default 10)
  --json FILE              write a JSON report of the run (- for stdout; the recap goes to stderr)
  --accept-new-host-keys   record unknown SSH host keys (a changed key is always refused)
  --verbose                show the commands of each changed step
  --serial N|P%            rolling batches: N hosts (or P% of them) at a time
  --max-fail P             start no further batch once more than P% of hosts failed
  --var NAME=VALUE         set a var on every host (JSON value or plain string); repeatable
  --lock-timeout SECONDS   wait this long for another run on a host to finish (default 300)
  -h, --help               this help
`;

/** The exit codes of every program, as `--help` lists them (the README's table has the same words). */
export const EXIT_CODES = `Exit codes:\n${EXIT_CODE_MEANINGS.map((e) => `  ${String(e.code).padEnd(4)} ${e.when}`).join('\n')}\n`;

function flagLines(flags: Readonly<Record<string, { type: string; description: string }>>): string[] {
  return Object.entries(flags).map(([name, f]) => `  --${`${name}${f.type === 'boolean' ? '' : ` ${f.type.toUpperCase()}`}`.padEnd(23)} ${f.description}`);
}

/**
 * `--help` of a task: the common flags, the task's own flags and the program's output flags, its
 * vars with what fits and their defaults, and the exit codes. Built from the task alone: nothing
 * connects, no inventory loads.
 *
 * @example usage(task.flags, task.vars)
 */
export function usage(flags: Readonly<Record<string, TaskFlag>> = {}, vars: Shape = {}, outputs: Readonly<Record<string, OutputFlag>> = {}): string {
  const own = flagLines({ ...flags, ...outputs });
  const declared = describeShape(vars);
  const width = Math.max(23, ...declared.map((d) => d.name.length));
  return [
    USAGE,
    ...(own.length ? [`Task options:\n${own.join('\n')}\n`] : []),
    ...(declared.length ? [`Vars (from the inventory, or --var NAME=VALUE):\n${declared.map((d) => `  ${d.name.padEnd(width)}  ${d.help}`).join('\n')}\n`] : []),
    EXIT_CODES,
  ].join('\n');
}

/**
 * Parses argv: the common flags, the task's `flags` (their values become vars) and the program's
 * `outputs` (kept apart, in `outputs`). Throws a TypeError with a plain message on a usage error.
 *
 * @example parseCliArgs(['--limit', 'web', '--prometheus', 'x.prom'], {}, { prometheus: { type: 'string', description: '…' } }).outputs // { prometheus: 'x.prom' }
 */
export function parseCliArgs(argv: readonly string[], flags: Readonly<Record<string, TaskFlag>> = {}, outputs: Readonly<Record<string, OutputFlag>> = {}): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        inventory: { type: 'string', default: './inventory.ts' },
        limit: { type: 'string' },
        concurrency: { type: 'string', default: '10' },
        'accept-new-host-keys': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        'dry-run': { type: 'boolean', default: false },
        diff: { type: 'boolean', default: false },
        json: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        serial: { type: 'string' },
        'max-fail': { type: 'string' },
        var: { type: 'string', multiple: true, default: [] },
        'lock-timeout': { type: 'string', default: '300' },
        ...Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, { type: f.type === 'boolean' ? ('boolean' as const) : ('string' as const) }])),
        ...Object.fromEntries(Object.entries(outputs).map(([name, f]) => [name, { type: f.type }])),
      },
    }));
  } catch (err) {
    throw new TypeError((err as Error).message);
  }
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`--concurrency must be a whole number ≥ 1, got ${values.concurrency}`);
  const vars: Record<string, unknown> = {};
  for (const pair of values.var as string[]) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new TypeError(`--var takes NAME=VALUE, got ${JSON.stringify(pair)}`);
    vars[pair.slice(0, eq)] = jsonOrString(pair.slice(eq + 1));
  }
  for (const [name, f] of Object.entries(flags)) {
    const value = (values as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (f.type === 'number' && !Number.isFinite(Number(value))) throw new TypeError(`--${name} takes a number, got ${JSON.stringify(value)}`);
    vars[f.var ?? name] = f.type === 'number' ? Number(value) : value;
  }
  for (const [name, f] of Object.entries(outputs)) {
    // `--prometheus=` would only fail after the run, when the file cannot be written.
    if (f.type === 'string' && (values as Record<string, unknown>)[name] === '') throw new TypeError(`--${name} takes a value, got ""`);
  }
  const lockTimeout = Number(values['lock-timeout']);
  if (!(lockTimeout >= 0) || !Number.isFinite(lockTimeout)) throw new TypeError(`--lock-timeout takes a number of seconds ≥ 0, got ${JSON.stringify(values['lock-timeout'])}`);
  const serial = values.serial === undefined ? undefined : parseSerial(values.serial);
  const maxFail = values['max-fail'] === undefined ? undefined : Number(values['max-fail'].replace(/%$/, ''));
  if (maxFail !== undefined && !(maxFail >= 0 && maxFail <= 100)) throw new TypeError(`--max-fail takes a percentage from 0 to 100, got ${values['max-fail']}`);
  return {
    inventory: values.inventory,
    ...(values.limit !== undefined ? { limit: values.limit } : {}),
    dryRun: values['dry-run'],
    diff: values.diff,
    concurrency,
    ...(values.json !== undefined ? { json: values.json } : {}),
    acceptNewHostKeys: values['accept-new-host-keys'],
    verbose: values.verbose,
    help: values.help,
    ...(serial !== undefined ? { serial } : {}),
    ...(maxFail !== undefined ? { maxFail } : {}),
    vars,
    lockTimeout,
    // parseArgs typed these by their declared type (string or boolean) above.
    outputs: Object.fromEntries(Object.keys(outputs).map((name) => [name, (values as Record<string, unknown>)[name] as string | boolean | undefined])),
  };
}

function parseSerial(text: string): number | `${number}%` {
  const m = /^(\d+)(%?)$/.exec(text);
  const n = Number(m?.[1]);
  if (!m || n < 1 || (m[2] && n > 100)) throw new TypeError(`--serial takes a number of hosts or a percentage such as 25%, got ${JSON.stringify(text)}`);
  return m[2] ? `${n}%` : n;
}

function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
