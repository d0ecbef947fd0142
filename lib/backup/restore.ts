// The restore drill of one host: pick a verified backup (the newest, or one by name), fetch it
// from the remote when it is not on the host, restore it into a scratch database after checking
// its sha256, and compare exact row counts per table with the source database.
import type { HostContext } from '../engine/task.ts';
import { TackleError } from '../errors.ts';
import { dumpFiles, pgRowCounts, type RowCounts } from '../facts/postgres.ts';
import { remoteFiles, remotePath } from '../facts/rclone.ts';
import { postgres } from '../ops/postgres.ts';
import { rclone } from '../ops/rclone.ts';
import { v, type InferShape } from '../inventory/vars.ts';
import { backupVars, databaseVar, pgTargetOf, remoteOf, type BackupSecrets, type BackupVars } from './config.ts';
import { dumpPath, setupSteps } from './nightly.ts';
import { groupBackups, newestVerified, parseDumpName, type Backup } from '../ops/retention.ts';

/**
 * The vars of a restore drill, set from scripts/restore.ts's flags (`--database`, `--backup`,
 * `--into`, `--replace`, `--drop-after`) on every selected host, beside its `backup` var.
 *
 * @example defineTask({ name: 'restore', vars: restoreVars, run: (host) => restoreDrill(host, requestOf(host.vars, new Date()), secrets, record) })
 */
export const restoreVars = {
  ...backupVars,
  restoreDatabase: databaseVar().optional(),
  /** A dump's file name, as `dumpName` makes them. */
  restoreBackup: v.fileName().optional(),
  restoreInto: databaseVar().optional(),
  restoreReplace: v.boolean().default(false),
  restoreDropAfter: v.boolean().default(false),
};

/** The vars a restore drill sees on a host. @example (host.vars as RestoreVars).restoreInto */
export type RestoreVars = InferShape<typeof restoreVars>;

/**
 * The request a host's restore vars make.
 *
 * @example requestOf(host.vars, new Date()) // { now, replace: false, dropAfter: false }
 */
export function requestOf(vars: RestoreVars, now: Date): RestoreRequest {
  return {
    now,
    ...(vars.restoreDatabase !== undefined ? { database: vars.restoreDatabase } : {}),
    ...(vars.restoreBackup !== undefined ? { backup: vars.restoreBackup } : {}),
    ...(vars.restoreInto !== undefined ? { into: vars.restoreInto } : {}),
    replace: vars.restoreReplace,
    dropAfter: vars.restoreDropAfter,
  };
}

/** What to restore; everything optional. */
export interface RestoreRequest {
  /** Only this database of the host's `backup.databases` (default: each of them). */
  database?: string;
  /** This backup by file name (`app-20240301T020007Z.dump`) instead of the newest verified. */
  backup?: string;
  /** Restore into this database (one database only); default `DB_restore_drill_YYYYmmdd`. */
  into?: string;
  /** Drop an existing database of the target name first. */
  replace?: boolean;
  /** Drop the scratch database after the comparison. */
  dropAfter?: boolean;
  /** The day of the drill, for the default scratch name. */
  now: Date;
}

/** Where the chosen backup is. */
export type Choice = { kind: 'local'; backup: Backup } | { kind: 'remote'; backup: Backup } | { kind: 'none'; reason: string };

/**
 * Pure: the backup to restore. The newest verified one of `database` among the local and the
 * remote ones (local preferred for the same name), or the one named `name`, which must be
 * verified (dump and checksum) where it is. `remote` is undefined when the remote could not
 * be listed: then only local backups count.
 *
 * @example chooseBackup(groupBackups(local), groupBackups(remote), { database: 'app' })
 */
export function chooseBackup(local: readonly Backup[], remote: readonly Backup[] | undefined, want: { database: string; name?: string }): Choice {
  const where = remote === undefined ? 'on the host (the remote could not be listed)' : 'on the host or the remote';
  if (want.name !== undefined) {
    const mine = (list: readonly Backup[] | undefined) => list?.find((b) => b.name === want.name && b.state === 'verified');
    const here = mine(local);
    if (here) return { kind: 'local', backup: here };
    const there = mine(remote);
    if (there) return { kind: 'remote', backup: there };
    return { kind: 'none', reason: `no verified backup named ${want.name} ${where}` };
  }
  const here = newestVerified(local, want.database);
  const there = remote ? newestVerified(remote, want.database) : undefined;
  if (here && (!there || here.name >= there.name)) return { kind: 'local', backup: here };
  if (there) return { kind: 'remote', backup: there };
  return { kind: 'none', reason: `no verified backup of ${want.database} ${where}` };
}

/**
 * The default scratch database of a drill: `DB_restore_drill_YYYYmmdd` (the name cut to fit
 * PostgreSQL's 63 characters).
 *
 * @example drillDatabase('app', new Date('2024-03-01T02:00:00Z')) // 'app_restore_drill_20240301'
 */
export function drillDatabase(database: string, now: Date): string {
  return `${database.slice(0, 40)}_restore_drill_${now.toISOString().slice(0, 10).replace(/-/g, '')}`;
}

/** One table of the comparison; a count is undefined where the table is missing. */
export interface TableCount {
  table: string;
  source: number | undefined;
  restored: number | undefined;
}

/** What a drill did on one host for one database. */
export interface DrillResult {
  host: string;
  database: string;
  backup: string;
  from: 'local' | 'remote';
  into: string;
  /** Undefined in a dry-run (nothing restored to count). */
  tables?: TableCount[];
}

/**
 * Pure: both count sets side by side, table by table.
 *
 * @example countTable({ kind: 'counts', tables: { 'public.t': 3 } }, { kind: 'counts', tables: { 'public.t': 3 } })
 */
export function countTable(source: RowCounts, restored: RowCounts): TableCount[] {
  const a = source.kind === 'counts' ? source.tables : {};
  const b = restored.kind === 'counts' ? restored.tables : {};
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().map((table) => ({ table, source: a[table], restored: b[table] }));
}

/**
 * Runs the drill on a host with a `backup` var, database by database, and hands each result
 * to `record` (before the row-count step, so a mismatch is reported with its numbers).
 * Fails the host's run when no verified backup exists, the checksum does not match, the
 * restore fails, or the row counts differ.
 *
 * @example await restoreDrill(host, { now: new Date() }, secrets, (r) => results.push(r));
 */
export async function restoreDrill(host: HostContext<BackupVars>, request: RestoreRequest, secrets: BackupSecrets, record: (result: DrillResult) => void): Promise<void> {
  const cfg = host.vars.backup;
  if (!cfg) return;
  const named = request.backup === undefined ? undefined : parseDumpName(request.backup);
  if (request.backup !== undefined && !named) throw new TackleError({ phase: 'task', reason: `backup ${JSON.stringify(request.backup)} is not a dump name such as app-20240301T020007Z.dump` });
  const only = named?.database ?? request.database;
  if (only !== undefined && !cfg.databases.includes(only)) throw new TackleError({ phase: 'task', reason: `${only} is not one of this host's backup.databases (${cfg.databases.join(', ')})` });
  const databases = only !== undefined ? [only] : cfg.databases;
  if (request.into !== undefined && databases.length !== 1) throw new TackleError({ phase: 'task', reason: `into names one database, but this host backs up ${databases.join(', ')}: choose one (--database)` });

  const target = pgTargetOf(cfg);
  const loc = remoteOf(cfg, host.name);
  for (const op of setupSteps(cfg, secrets)) await host.run(op);
  const local = await host.fact(dumpFiles(cfg.dir));
  const remote = await host.fact(remoteFiles(loc));
  const localBackups = local.kind === 'directory' ? groupBackups(local.files) : [];
  const remoteBackups = remote.kind === 'listing' ? groupBackups(remote.files) : undefined;

  for (const database of databases) {
    const choice = chooseBackup(localBackups, remoteBackups, { database, ...(request.backup !== undefined ? { name: request.backup } : {}) });
    if (choice.kind === 'none') {
      const why = remote.kind === 'listing' ? '' : ` (${remotePath(loc)}: ${remote.reason})`;
      throw new TackleError({ phase: 'task', reason: `${choice.reason}${why}` });
    }
    const name = choice.backup.name;
    if (choice.kind === 'remote') await host.run(rclone.download({ from: loc, files: [name, `${name}.sha256`], to: cfg.dir }));
    const into = request.into ?? drillDatabase(database, request.now);
    await host.run(postgres.restore({ file: dumpPath(cfg, name), database: into, replace: request.replace ?? false, noOwner: cfg.noOwner, ...target }));
    const result: DrillResult = { host: host.name, database, backup: name, from: choice.kind, into };
    if (!host.dryRun) {
      const [before, after] = [await host.fact(pgRowCounts(target, database)), await host.fact(pgRowCounts(target, into))];
      result.tables = countTable(before, after);
    }
    record(result);
    await host.run(postgres.compareRowCounts({ source: database, target: into, ...target }));
    if (request.dropAfter) await host.run(postgres.database({ name: into, state: 'absent', ...target }));
  }
}
