import { sh, type Command, type Interpolation, type Secret } from '../command/command.ts';
import type { StoredFile } from './files.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/**
 * Where PostgreSQL's programs run: on the host itself (as `osUser`, by default `postgres`, which
 * Debian's peer authentication lets in; `null` runs them as the connection's user), or inside a
 * Docker container reached with `docker exec` (the official image trusts local connections).
 */
export type PgVia = { kind: 'host'; osUser?: string | null } | { kind: 'docker'; container: string; user?: string };

/** libpq connection settings (`-h`, `-p`, `-U`); the password goes in `PGPASSWORD`, masked everywhere. */
export interface PgConnection {
  host?: string;
  port?: number;
  user?: string;
  password?: Secret;
}

/** How to reach a PostgreSQL server from the host: the way in and the connection settings. */
export interface PgTarget {
  via?: PgVia;
  connection?: PgConnection;
}

/** The PostgreSQL programs the backup operations run. @example pgCommand({}, 'createdb', ['scratch']) */
export type PgProgram = 'pg_dump' | 'pg_restore' | 'psql' | 'createdb' | 'dropdb';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Checks a target's fields; a TypeError names the bad one.
 *
 * @example checkTarget({ via: { kind: 'docker', container: 'postgres' } }, 'postgres.dump')
 */
export function checkTarget(target: PgTarget, where: string): PgTarget {
  const via = target.via ?? { kind: 'host' };
  if (via.kind === 'docker') {
    if (typeof via.container !== 'string' || !NAME.test(via.container)) throw new TypeError(`${where}: via.container must be a container name or id, got ${JSON.stringify(via.container)}`);
    if (via.user !== undefined && !NAME.test(via.user)) throw new TypeError(`${where}: via.user must be a user name, got ${JSON.stringify(via.user)}`);
  } else if (via.kind === 'host') {
    if (via.osUser !== undefined && via.osUser !== null && !NAME.test(via.osUser)) throw new TypeError(`${where}: via.osUser must be a user name or null, got ${JSON.stringify(via.osUser)}`);
  } else {
    throw new TypeError(`${where}: via.kind must be 'host' or 'docker'`);
  }
  const c = target.connection ?? {};
  if (c.host !== undefined && (typeof c.host !== 'string' || !/^[^\s-][^\s]*$/.test(c.host))) throw new TypeError(`${where}: connection.host must be a host name, address or socket directory, got ${JSON.stringify(c.host)}`);
  if (c.port !== undefined && !(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535)) throw new TypeError(`${where}: connection.port must be a port number, got ${String(c.port)}`);
  if (c.user !== undefined && (typeof c.user !== 'string' || !NAME.test(c.user))) throw new TypeError(`${where}: connection.user must be a role name, got ${JSON.stringify(c.user)}`);
  return { via, connection: c };
}

/**
 * Words that identify a target, for fact cache keys and step summaries; never the password.
 *
 * @example describeTarget({ via: { kind: 'docker', container: 'pg' } }) // 'docker pg'
 */
export function describeTarget(target: PgTarget): string {
  const via = target.via ?? { kind: 'host' };
  const c = target.connection ?? {};
  const where = via.kind === 'docker' ? `docker ${via.container}${via.user ? ` as ${via.user}` : ''}` : `host${via.osUser === null ? '' : ` as ${via.osUser ?? 'postgres'}`}`;
  const server = [c.user ? `${c.user}@` : '', c.host ?? '', c.port ? `:${c.port}` : ''].join('');
  return server ? `${where} ${server}` : where;
}

/**
 * One PostgreSQL program run against a target. On the host: `runuser -u postgres -- PROGRAM …`
 * (from `/`, which the postgres user may enter); in Docker: `docker exec [-i] CONTAINER PROGRAM …`,
 * `-i` when the program reads stdin (a dump fed to pg_restore). A password is passed as
 * `PGPASSWORD` in the environment (masked; `docker exec -e PGPASSWORD` copies it without
 * putting the value in docker's arguments).
 *
 * @example pgCommand({}, 'psql', ['-d', 'app', '-c', 'SELECT 1']).toString()
 * // "runuser -u postgres -- psql -d app -c 'SELECT 1'"
 */
export function pgCommand(target: PgTarget, program: PgProgram, args: readonly Interpolation[], opts: { stdin?: boolean } = {}): Command {
  const via = target.via ?? { kind: 'host' };
  const c = target.connection ?? {};
  const conn: Interpolation[] = [
    ...(c.host !== undefined ? ['-h', c.host] : []),
    ...(c.port !== undefined ? ['-p', String(c.port)] : []),
    ...(c.user !== undefined ? ['-U', c.user] : []),
  ];
  const env = c.password === undefined ? sh`` : sh`PGPASSWORD=${c.password} `;
  if (via.kind === 'docker') {
    const flags: Interpolation[] = [...(opts.stdin ? ['-i'] : []), ...(via.user ? ['-u', via.user] : []), ...(c.password !== undefined ? ['-e', 'PGPASSWORD'] : [])];
    return sh`${env}docker exec ${[...flags, via.container, program, ...conn, ...args]}`;
  }
  const user = via.osUser === undefined ? 'postgres' : via.osUser;
  const run = user === null ? sh`` : sh`runuser -u ${user} -- `;
  return sh`${env}${run}${[program, ...conn, ...args]}`;
}

// ---------------------------------------------------------------- backup directory listing

/** The files of a backup directory (not recursive), or that it does not exist. */
export type DumpFiles = { kind: 'missing' } | { kind: 'directory'; files: StoredFile[] };

/**
 * The regular files in a backup directory with size and modification time, NUL-separated
 * so that no name can fake a line.
 *
 * @example
 * const listing = await host.fact(dumpFiles('/var/backups/postgresql'));
 * if (listing.kind === 'directory') groupBackups(listing.files);
 */
export function dumpFiles(dir: string): Fact<DumpFiles> {
  return defineFact(
    `postgres.dumpFiles ${dir}`,
    sh`if [ -d ${dir} ]; then echo directory && find ${dir} -mindepth 1 -maxdepth 1 -type f -printf ${'%T@\\t%s\\t%f\\0'}; elif [ -e ${dir} ]; then echo 'not a directory' >&2; exit 2; else echo missing; fi`,
    parseDumpFiles,
    { reads: [`${dir}/`] },
  );
}

/**
 * Pure parser of {@link dumpFiles}: `directory\n` then `MTIME\tSIZE\tNAME\0` per file.
 *
 * @example parseDumpFiles({ stdout: 'directory\n1700000000.5\t10\ta.dump\0', stderr: '', exitCode: 0 })
 * // { kind: 'directory', files: [{ name: 'a.dump', size: 10, mtimeMs: 1700000000500 }] }
 */
export function parseDumpFiles({ stdout, stderr, exitCode }: FactOutput): DumpFiles {
  if (exitCode !== 0) throw new Error(`cannot list the backup directory (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  if (stdout === 'missing\n') return { kind: 'missing' };
  if (!stdout.startsWith('directory\n')) throw new Error(`unexpected listing: ${JSON.stringify(stdout.slice(0, 200))}`);
  const files = stdout
    .slice('directory\n'.length)
    .split('\0')
    .filter((r) => r !== '')
    .map((record) => {
      const [mtime = '', size = '', ...rest] = record.split('\t');
      const name = rest.join('\t');
      const mtimeMs = Math.round(Number(mtime) * 1000);
      if (!name || !Number.isFinite(mtimeMs) || !/^\d+$/.test(size)) throw new Error(`unexpected listing record: ${JSON.stringify(record.slice(0, 200))}`);
      return { name, size: Number(size), mtimeMs };
    });
  return { kind: 'directory', files };
}

// ---------------------------------------------------------------- server questions

/** The server's databases, or why they cannot be listed (no server or client yet, refused…). */
export type PgDatabases = { kind: 'unavailable'; reason: string } | { kind: 'databases'; names: string[] };

/**
 * Every database of the server, from one `psql` query (JSON, so any name survives).
 *
 * @example
 * const dbs = await host.fact(pgDatabases({}));
 * if (dbs.kind === 'databases' && dbs.names.includes('app')) …
 */
export function pgDatabases(target: PgTarget): Fact<PgDatabases> {
  const query = 'SELECT json_agg(datname ORDER BY datname) FROM pg_database';
  return defineFact(`postgres.databases ${describeTarget(target)}`, sh`cd / && ${pgCommand(target, 'psql', ['-XAtq', '-d', 'postgres', '-c', query])}`, parseDatabases);
}

/**
 * Pure parser of {@link pgDatabases}.
 *
 * @example parseDatabases({ stdout: '["app", "postgres"]\n', stderr: '', exitCode: 0 }) // { kind: 'databases', names: ['app', 'postgres'] }
 */
export function parseDatabases({ stdout, stderr, exitCode }: FactOutput): PgDatabases {
  if (exitCode !== 0) return { kind: 'unavailable', reason: oneLine(stderr) || `psql exited with code ${exitCode}` };
  const names = JSON.parse(stdout.trim() || '[]') as unknown;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new Error(`unexpected database list: ${JSON.stringify(stdout.slice(0, 200))}`);
  return { kind: 'databases', names };
}

/** Exact row counts per table (`schema.table`), or why there are none. */
export type RowCounts = { kind: 'unavailable'; reason: string } | { kind: 'missing' } | { kind: 'counts'; tables: Record<string, number> };

// Exact counts (SELECT count(*) on each table) in one read-only query: query_to_xml runs the
// count per table; pg_stat's estimates would not prove a restore complete.
const COUNTS_QUERY =
  "SELECT coalesce(json_object_agg(n, c ORDER BY n), '{}') FROM (" +
  "SELECT format('%I.%I', table_schema, table_name) AS n, " +
  "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint AS c " +
  "FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')) t";

/**
 * Exact row counts of every table of `database` (`SELECT count(*)`, not estimates).
 *
 * @example
 * const counts = await host.fact(pgRowCounts({}, 'app'));
 * if (counts.kind === 'counts') counts.tables['public.orders'];
 */
export function pgRowCounts(target: PgTarget, database: string): Fact<RowCounts> {
  return defineFact(
    `postgres.rowCounts ${describeTarget(target)} ${database}`,
    sh`cd / && ${pgCommand(target, 'psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', COUNTS_QUERY])}`,
    parseRowCounts,
  );
}

/**
 * Pure parser of {@link pgRowCounts}.
 *
 * @example parseRowCounts({ stdout: '{ "public.t" : 3 }\n', stderr: '', exitCode: 0 }) // { kind: 'counts', tables: { 'public.t': 3 } }
 */
export function parseRowCounts({ stdout, stderr, exitCode }: FactOutput): RowCounts {
  if (exitCode !== 0) {
    if (/database ".*" does not exist/.test(stderr)) return { kind: 'missing' };
    return { kind: 'unavailable', reason: oneLine(stderr) || `psql exited with code ${exitCode}` };
  }
  const tables = JSON.parse(stdout.trim()) as unknown;
  if (typeof tables !== 'object' || tables === null || Array.isArray(tables) || !Object.values(tables).every((n) => Number.isInteger(n))) {
    throw new Error(`unexpected row counts: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  return { kind: 'counts', tables: tables as Record<string, number> };
}

/** A program's error output on one line, without the harmless complaint about the working directory. */
function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('could not change directory'))
    .join(' ');
}
