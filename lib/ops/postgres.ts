import { posix } from 'node:path';
import { Command, raw, sh, type Interpolation } from '../command/command.ts';
import { defineOperation, UNKNOWN, type Change, type CommonOptions, type Operation } from './operation.ts';
import { TackleError } from '../errors.ts';
import { DATABASE_NAME, checkPolicy, dumpName, planPrune, withNewFiles, type RetentionPolicy } from './retention.ts';
import {
  checkTarget,
  describeTarget,
  dumpFiles,
  pgCommand,
  pgDatabases,
  pgRowCounts,
  type DumpFiles,
  type PgDatabases,
  type PgTarget,
  type RowCounts,
} from '../facts/postgres.ts';
import { refuse } from './refuse.ts';

// A backup is a runbook step that acts every time: `postgres.dump` plans its commands on every run
// (like `shell` without a guard), so a dry-run shows exactly the file it would publish. Retention,
// restore and databases are ordinary planners over facts.

/** What to dump, where to, and how to reach the server. @example postgres.dump({ database: 'app', dir: '/var/backups/postgresql', noOwner: true }) */
export interface DumpOptions extends CommonOptions, PgTarget {
  database: string;
  /** The backup directory on the host; it must exist (create it with files.directory first). */
  dir: string;
  /** The moment in the file name (UTC, to the second); default: when the operation is built. */
  at?: Date;
  /** `pg_dump --no-owner`: no ALTER OWNER, so the dump restores under any role. */
  noOwner?: boolean;
  /** `pg_dump --schema-only`. */
  schemaOnly?: boolean;
  /** Tables left out (`pg_dump -T PATTERN` each). */
  excludeTables?: readonly string[];
  /** Compression level 0-9 (`-Z`); pg_dump's default otherwise. */
  compress?: number;
}

function checkAbsolute(path: unknown, where: string, what: string): string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[\0\n]/.test(path)) throw refuse(where, `${what} must be an absolute path, got ${JSON.stringify(path)}`);
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

function checkDatabase(name: unknown, where: string): string {
  if (typeof name !== 'string' || !DATABASE_NAME.test(name)) {
    throw refuse(where, `database ${JSON.stringify(name)} must be letters, digits, '_', '.', '-' (not first), at most 63: it becomes part of file names`);
  }
  return name;
}

function fail(message: string, ...args: Interpolation[]): Command {
  return sh`{ printf ${`tackle: ${message}\\n`} ${args} >&2; exit 1; }`;
}

// Runs the EXIT trap (removing temporary files) when the command is interrupted, too.
const SIGNAL_TRAPS = sh`trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM`;

/**
 * Dumps one database with `pg_dump -Fc` and publishes it only once it is known to be good. Two
 * commands: (1) pg_dump writes `DIR/NAME.partial` by a plain redirect (no pipe, so its own exit
 * status is checked, in any POSIX sh); (2) `pg_restore -f /dev/null` reads the whole archive
 * (`--list` reads only the table of contents and misses a truncated file), then the sha256 is
 * written beside it, and the checksum and the dump are renamed to
 * `DIR/DB-YYYYmmddTHHMMSSZ.dump(.sha256)`, the dump last. On any failure the partial files are
 * removed: nothing is published and nothing counts as a backup. With `via: { kind: 'docker' }`
 * the same programs run through `docker exec` and the dump streams to a file on the host.
 *
 * @example
 * await host.run(postgres.dump({ database: 'app', dir: '/var/backups/postgresql', noOwner: true }));
 * await host.run(postgres.dump({ database: 'app', dir: '/srv/backups', via: { kind: 'docker', container: 'postgres' }, connection: { user: 'postgres' } }));
 */
function dump(options: DumpOptions): Operation {
  const where = 'postgres.dump';
  const database = checkDatabase(options.database, where);
  const dir = checkAbsolute(options.dir, where, 'dir');
  const target = checkTarget(options, where);
  const excluded = options.excludeTables ?? [];
  if (!Array.isArray(excluded) || !excluded.every((t) => typeof t === 'string' && t !== '')) throw refuse(where, 'excludeTables must be table names or patterns');
  if (options.compress !== undefined && !(Number.isInteger(options.compress) && options.compress >= 0 && options.compress <= 9)) {
    throw refuse(where, `compress must be 0 to 9, got ${String(options.compress)}`);
  }
  const name = dumpName(database, options.at ?? new Date());
  const final = posix.join(dir, name);
  const partial = `${final}.partial`;
  const sumPartial = `${final}.sha256.partial`;
  const args: Interpolation[] = [
    '-Fc',
    ...(options.noOwner ? ['--no-owner'] : []),
    ...(options.schemaOnly ? ['--schema-only'] : []),
    ...excluded.flatMap((t) => ['-T', t]),
    ...(options.compress !== undefined ? ['-Z', String(options.compress)] : []),
    '-d',
    database,
  ];
  const dumpCommand = Command.join(
    [
      sh`set -u`,
      sh`cd / || exit 1`,
      sh`[ -d ${dir} ] || ${fail('backup directory %s does not exist', dir)}`,
      sh`for tackle_f in ${final} ${`${final}.sha256`} ${partial}; do [ ! -e "$tackle_f" ] || ${fail('%s already exists; not overwriting it', raw('"$tackle_f"'))}; done`,
      sh`tackle_part=${partial}`,
      sh`trap 'rm -f -- "$tackle_part"' EXIT`,
      SIGNAL_TRAPS,
      // Only root may read the dump, whatever the directory's mode.
      sh`umask 077`,
      sh`${pgCommand(target, 'pg_dump', args)} > ${partial}`,
      sh`tackle_rc=$?`,
      sh`[ "$tackle_rc" -eq 0 ] || ${fail('pg_dump failed (exit %s); nothing was published', raw('"$tackle_rc"'))}`,
      sh`trap - EXIT`,
    ],
    '\n',
  );
  const verifyCommand = Command.join(
    [
      sh`set -u`,
      sh`cd / || exit 1`,
      sh`tackle_part=${partial} tackle_sum_part=${sumPartial}`,
      sh`trap 'rm -f -- "$tackle_part" "$tackle_sum_part"' EXIT`,
      SIGNAL_TRAPS,
      sh`umask 077`,
      sh`[ -s ${partial} ] || ${fail('%s is missing or empty: nothing to verify', partial)}`,
      sh`${pgCommand(target, 'pg_restore', ['-f', '/dev/null'], { stdin: true })} < ${partial}`,
      sh`tackle_rc=$?`,
      sh`[ "$tackle_rc" -eq 0 ] || ${fail('verification failed: pg_restore could not read the whole dump (exit %s): it is truncated or corrupt, so it was removed and not published', raw('"$tackle_rc"'))}`,
      sh`tackle_sum=$(sha256sum < ${partial}) || exit 1`,
      sh`printf '%s  %s\\n' "\${tackle_sum%% *}" ${name} > ${sumPartial} || exit 1`,
      // The dump's final name appears last: a listed .dump always has its checksum.
      sh`mv -fT -- ${sumPartial} ${`${final}.sha256`} || exit 1`,
      sh`mv -fT -- ${partial} ${final} || exit 1`,
      sh`trap - EXIT`,
    ],
    '\n',
  );
  const flags = [options.noOwner ? 'no owner' : '', options.schemaOnly ? 'schema only' : '', excluded.length ? `excluding ${excluded.join(', ')}` : ''].filter(Boolean);
  return defineOperation({
    name: `${where} ${database}`,
    facts: {},
    options,
    plan: () => ({
      summary: `dump ${database} (${describeTarget(target)}${flags.length ? `, ${flags.join(', ')}` : ''}) to ${final}, verify it by a full read, write its sha256, then publish`,
      actions: [{ command: dumpCommand }, { command: verifyCommand }],
      // The dump and its checksum join the directory's listing, which retention plans from.
      effects: { update: { [dumpFiles(dir).key]: (before: DumpFiles) => (before.kind === 'directory' ? { ...before, files: withNewFiles(before.files, [name, `${name}.sha256`]) } : UNKNOWN) } },
    }),
  });
}

/** Local retention of a backup directory. @example postgres.prune({ dir: '/var/backups/postgresql', keepDays: 7, keepAtLeast: 3 }) */
export interface PruneOptions extends CommonOptions, Partial<RetentionPolicy> {
  /** The backup directory. */
  dir: string;
  /** The present moment for ages; default: when the plan is made. */
  now?: Date;
}

/**
 * Local retention: deletes the dumps (with their checksums and leftovers) that
 * {@link selectRetention} lets go: older than `keepDays` (default 7) and not among the newest
 * `keepAtLeast` (default 3) verified dumps of their database. Other files are never touched.
 *
 * @example
 * await host.run(postgres.prune({ dir: '/var/backups/postgresql', keepDays: 7, keepAtLeast: 3 }));
 */
function prune(options: PruneOptions): Operation {
  const where = 'postgres.prune';
  const dir = checkAbsolute(options.dir, where, 'dir');
  const policy = checkPolicy({ keepDays: options.keepDays ?? 7, keepAtLeast: options.keepAtLeast ?? 3 }, where);
  return defineOperation({
    name: `${where} ${dir}`,
    facts: { listing: dumpFiles(dir) },
    options,
    plan: ({ listing }) => {
      // Missing: nothing to prune (in a dry-run an earlier step may be about to create it).
      if (listing.kind === 'missing') return undefined;
      const prune = planPrune(listing.files, policy, { now: options.now ?? new Date() });
      if (!prune) return undefined;
      const gone = (before: DumpFiles) => (before.kind === 'directory' ? { ...before, files: before.files.filter((f) => !prune.files.includes(f.name)) } : before);
      return { summary: prune.summary, actions: [{ command: sh`rm -f -- ${prune.files.map((f) => posix.join(dir, f))}` }], effects: { update: { [dumpFiles(dir).key]: gone } } };
    },
  });
}

/** A dump to restore and the database to restore it into. @example postgres.restore({ file, database: 'app_restore_drill_20240301' }) */
export interface RestoreOptions extends CommonOptions, PgTarget {
  /** The dump on the host; its `.sha256` must be beside it. */
  file: string;
  /** The database to create and restore into. */
  database: string;
  /** Drop a database of that name first; otherwise an existing one is refused. */
  replace?: boolean;
  /** `pg_restore --no-owner`: objects belong to the restoring role. */
  noOwner?: boolean;
}

/**
 * Restores a dump into a new database: checks the dump against its sha256 first, creates the
 * database from template0, runs `pg_restore --exit-on-error`, and drops the half-restored
 * database when that fails. An existing database of that name is refused unless `replace`.
 * Always acts, like the dump.
 *
 * @example
 * await host.run(postgres.restore({ file: '/var/backups/postgresql/app-20240301T020007Z.dump', database: 'app_restore_drill_20240301' }));
 */
function restore(options: RestoreOptions): Operation {
  const where = 'postgres.restore';
  const file = checkAbsolute(options.file, where, 'file');
  const database = checkDatabase(options.database, where);
  const target = checkTarget(options, where);
  const sum = `${file}.sha256`;
  const command = Command.join(
    [
      sh`set -u`,
      sh`cd / || exit 1`,
      sh`[ -f ${file} ] && [ -f ${sum} ] || ${fail('%s or its .sha256 is missing', file)}`,
      sh`tackle_want=$(cut -d ' ' -f 1 < ${sum}) && tackle_got=$(sha256sum < ${file}) || exit 1`,
      sh`tackle_got=\${tackle_got%% *}`,
      sh`[ -n "$tackle_want" ] && [ "$tackle_want" = "$tackle_got" ] || ${fail('checksum mismatch for %s: expected %s, got %s; not restoring it', file, raw('"$tackle_want"'), raw('"$tackle_got"'))}`,
      ...(options.replace ? [sh`${pgCommand(target, 'dropdb', ['--if-exists', database])} || exit 1`] : []),
      sh`${pgCommand(target, 'createdb', ['-T', 'template0', database])} || exit 1`,
      sh`${pgCommand(target, 'pg_restore', ['--exit-on-error', ...(options.noOwner ? ['--no-owner'] : []), '-d', database], { stdin: true })} < ${file}`,
      sh`tackle_rc=$?`,
      sh`if [ "$tackle_rc" -ne 0 ]; then ${pgCommand(target, 'dropdb', ['--if-exists', database])}; ${fail(`pg_restore failed (exit %s); the half-restored database %s was dropped`, raw('"$tackle_rc"'), database)}; fi`,
    ],
    '\n',
  );
  return defineOperation({
    name: `${where} ${posix.basename(file)} → ${database}`,
    facts: { databases: pgDatabases(target) },
    options,
    plan: ({ databases }) => {
      const exists = databases.kind === 'databases' && databases.names.includes(database);
      if (exists && !options.replace) {
        throw refuse(where, `database ${database} already exists; restoring into it would mix data: choose another database name, or replace it`);
      }
      return {
        summary: `${exists ? `drop and re-create ${database}` : `create ${database}`} (${describeTarget(target)}) and restore ${file} into it, after checking its sha256`,
        actions: [{ command }],
      };
    },
  });
}

/** A database that should exist, or not. @example postgres.database({ name: 'scratch', state: 'absent' }) */
export interface DatabaseOptions extends CommonOptions, PgTarget {
  name: string;
  state?: 'present' | 'absent';
}

/**
 * Ensures a database exists (created from template1) or does not (dropped).
 *
 * @example
 * await host.run(postgres.database({ name: 'app_restore_drill_20240301', state: 'absent' }));
 */
function database(options: DatabaseOptions): Operation {
  const where = 'postgres.database';
  const name = checkDatabase(options.name, where);
  const target = checkTarget(options, where);
  const absent = options.state === 'absent';
  if (options.state !== undefined && options.state !== 'present' && !absent) throw refuse(where, `state must be 'present' or 'absent'`);
  return defineOperation({
    name: `${where} ${name}${absent ? ' absent' : ''}`,
    facts: { databases: pgDatabases(target) },
    // Not `options` itself: its `name` is the database's, not a step name.
    options: { notify: options.notify },
    plan: ({ databases }) => planDatabase(name, absent, target, databases),
  });
}

function planDatabase(name: string, absent: boolean, target: PgTarget, databases: PgDatabases): Change | undefined {
  const known = databases.kind === 'databases';
  const exists = known && databases.names.includes(name);
  // Unknown (no server yet in a dry-run): plan the command; --if-exists keeps a drop harmless.
  const note = known ? '' : ` (state unknown: ${databases.reason})`;
  if (absent) return known && !exists ? undefined : { summary: `drop database ${name}${note}`, actions: [{ command: sh`cd / && ${pgCommand(target, 'dropdb', ['--if-exists', name])}` }] };
  return exists ? undefined : { summary: `create database ${name}${note}`, actions: [{ command: sh`cd / && ${pgCommand(target, 'createdb', [name])}` }] };
}

/** Two databases whose row counts must match. @example postgres.compareRowCounts({ source: 'app', target: 'app_copy' }) */
export interface CompareRowCountsOptions extends CommonOptions, PgTarget {
  /** The database the backup came from. */
  source: string;
  /** The restored copy. */
  target: string;
}

/**
 * A check as a step: exact row counts (`SELECT count(*)`) of every table of `target` must equal
 * those of `source`. Plans no change when they do and fails the step, listing the tables, when
 * they do not. Before the restore exists (a dry-run) there is nothing to compare yet.
 * A source written to since the dump will differ: compare a drill against a quiet source.
 *
 * @example
 * await host.run(postgres.compareRowCounts({ source: 'app', target: 'app_restore_drill_20240301' }));
 */
function compareRowCounts(options: CompareRowCountsOptions): Operation {
  const where = 'postgres.compareRowCounts';
  const source = checkDatabase(options.source, where);
  const copy = checkDatabase(options.target, where);
  const target = checkTarget(options, where);
  return defineOperation({
    name: `${where} ${copy} = ${source}`,
    facts: { before: pgRowCounts(target, source), after: pgRowCounts(target, copy) },
    options,
    plan: ({ before, after }) => {
      if (after.kind === 'missing') return undefined;
      const differences = rowCountDifferences(before, after, source, copy);
      if (differences.length) throw new TackleError({ phase: 'operation', reason: `row counts of ${copy} differ from ${source}: ${differences.join('; ')}` });
      return undefined;
    },
  });
}

/**
 * Pure: the tables whose counts differ, as readable lines; empty when all match.
 *
 * @example rowCountDifferences(a, b, 'app', 'copy') // ['public.orders: app 12000, copy 11000']
 */
export function rowCountDifferences(before: RowCounts, after: RowCounts, source: string, copy: string): string[] {
  if (before.kind !== 'counts') throw new TackleError({ phase: 'operation', reason: `cannot count rows of ${source}: ${before.kind === 'missing' ? 'no such database' : before.reason}` });
  if (after.kind !== 'counts') throw new TackleError({ phase: 'operation', reason: `cannot count rows of ${copy}: ${after.kind === 'missing' ? 'no such database' : after.reason}` });
  const tables = [...new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])].sort();
  return tables
    .filter((t) => before.tables[t] !== after.tables[t])
    .map((t) => `${t}: ${source} ${before.tables[t] ?? 'missing'}, ${copy} ${after.tables[t] ?? 'missing'}`);
}

/**
 * PostgreSQL backup operations: dump (verified, checksummed, published atomically), local
 * retention, restore, databases and a row-count check.
 *
 * @example
 * await host.run(postgres.dump({ database: 'app', dir: '/var/backups/postgresql' }));
 * await host.run(postgres.prune({ dir: '/var/backups/postgresql' }));
 */
export const postgres = { dump, prune, restore, database, compareRowCounts };
