import { parseArgs } from 'node:util';

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
}

export const USAGE = `Usage: npx tsx tasks/NAME.ts [options]

  --inventory FILE         inventory module (default ./inventory.ts)
  --limit PATTERNS         hosts, groups or globs, comma-separated; !x excludes
  --dry-run                plan only: show what would change, change nothing
  --diff                   show file diffs of changed (or would-change) steps
  --concurrency N          hosts worked on at once (default 10)
  --json FILE              write a JSON report of the run
  --accept-new-host-keys   record unknown SSH host keys (a changed key is always refused)
  --verbose                show the commands of each changed step
  -h, --help               this help
`;

/** Parses argv; throws a TypeError with a plain message on a usage error. */
export function parseCliArgs(argv: readonly string[]): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        inventory: { type: 'string', default: './inventory.ts' },
        limit: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        diff: { type: 'boolean', default: false },
        concurrency: { type: 'string', default: '10' },
        json: { type: 'string' },
        'accept-new-host-keys': { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new TypeError((err as Error).message);
  }
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`--concurrency must be a whole number ≥ 1, got ${values.concurrency}`);
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
  };
}
