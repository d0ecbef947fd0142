// Read-only fleet reports (scripts/health.ts, scripts/releases.ts): their flags, and each host
// opened and its facts read in one round trip. No operations, no plan, no recap; nothing here
// prints: the scripts write what these return (tables with lib/cli/table.ts).
import { parseArgs } from 'node:util';
import { Semaphore } from '../concurrency.ts';
import type { Connection } from '../connection/connection.ts';
import { gatherFacts } from '../facts/gather.ts';
import { asTackleError } from '../engine/host-run.ts';
import { TackleError } from '../errors.ts';
import type { Fact } from '../facts/fact.ts';
import type { InventoryHost } from '../inventory/inventory.ts';
import { HOST_FLAGS, parseConcurrency } from '../cli/args.ts';

/** One host's answer: the parsed facts, or why there is none. */
export type Collected<T> = { host: InventoryHost; kind: 'ok'; value: T } | { host: InventoryHost; kind: 'unreachable' | 'failed'; error: TackleError };

/**
 * For each host: connect, gather `facts(host)` in one exec, hand the values to `build`, close.
 * Hosts run in parallel up to `concurrency`; one failing never stops the others. Results come
 * in the order of `hosts`.
 *
 * @example
 * const results = await collectFacts(hosts, (h) => openConnection(h, inv, ctx), () => [diskUsage()], ([disk]) => disk);
 */
export async function collectFacts<T>(
  hosts: readonly InventoryHost[],
  connect: (host: InventoryHost) => Promise<Connection>,
  facts: (host: InventoryHost) => readonly Fact<unknown>[],
  build: (values: unknown[], host: InventoryHost) => T,
  concurrency = 10,
): Promise<Collected<T>[]> {
  const slots = new Semaphore(concurrency);
  return Promise.all(
    hosts.map((host) =>
      slots.use(async (): Promise<Collected<T>> => {
        let conn: Connection;
        try {
          conn = await connect(host);
        } catch (err) {
          return { host, kind: 'unreachable', error: asTackleError(err, host.name, 'connect') };
        }
        try {
          return { host, kind: 'ok', value: build(await gatherFacts(conn, facts(host)), host) };
        } catch (err) {
          const error = asTackleError(err, host.name, 'facts');
          return { host, kind: error.phase === 'connect' ? 'unreachable' : 'failed', error };
        } finally {
          await conn.close().catch(() => {});
        }
      }),
    ),
  );
}

/** What a report script needs from the process; scripts pass `process` parts in explicitly. */
export interface ReportIo {
  argv: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
}

/**
 * The report's flags, or the exit code to end with at once: 0 after `--help` (usage written to
 * stdout), `usageExit` after a usage error (message and usage written to stderr).
 *
 * @example const args = reportArgs(io, USAGE, ['app'], 1); if (typeof args === 'number') return args;
 */
export function reportArgs(io: ReportIo, usage: string, own: readonly string[], usageExit: number): ReportArgs | number {
  let args: ReportArgs;
  try {
    args = parseReportArgs(io.argv, own);
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${usage}`);
    return usageExit;
  }
  if (!args.help) return args;
  io.stdout.write(usage);
  return 0;
}

/** The flags every report script takes. */
export interface ReportArgs {
  inventory: string;
  limit?: string;
  json: boolean;
  concurrency: number;
  acceptNewHostKeys: boolean;
  help: boolean;
  /** The script's own string flags, by name. */
  own: Record<string, string | undefined>;
}

/** Usage lines of the common flags. @example `Usage: npx tsx scripts/x.ts [options]\n\n${REPORT_USAGE}` */
export const REPORT_USAGE = `  --inventory FILE         inventory module (default ./inventory.ts)
  --limit PATTERNS         hosts, groups or globs, comma-separated; !x excludes
  --json                   print JSON instead of the table
  --concurrency N          hosts read at once (default 10)
  --accept-new-host-keys   record unknown SSH host keys (a changed key is always refused)
  -h, --help               this help
`;

/**
 * Parses a report script's argv; `own` names its extra string flags. Throws a TypeError with a
 * plain message on a usage error.
 *
 * @example parseReportArgs(['--json', '--app', 'shop'], ['app']).own.app // 'shop'
 */
export function parseReportArgs(argv: readonly string[], own: readonly string[] = []): ReportArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...HOST_FLAGS,
        json: { type: 'boolean', default: false },
        ...Object.fromEntries(own.map((name) => [name, { type: 'string' as const }])),
      },
    }));
  } catch (err) {
    throw new TypeError((err as Error).message);
  }
  const concurrency = parseConcurrency(values.concurrency);
  return {
    inventory: String(values.inventory),
    ...(typeof values.limit === 'string' ? { limit: values.limit } : {}),
    json: values.json === true,
    concurrency,
    acceptNewHostKeys: values['accept-new-host-keys'] === true,
    help: values.help === true,
    own: Object.fromEntries(own.map((name) => [name, typeof values[name] === 'string' ? (values[name] as string) : undefined])),
  };
}
