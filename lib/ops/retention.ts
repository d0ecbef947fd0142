// Which backups to keep: a pure function over a listing of files, the same for the backup
// directory on a host and for a remote bucket. Nothing here touches a host.
import type { StoredFile } from '../facts/files.ts';
import { refuse } from './refuse.ts';


/**
 * One backup and every file that belongs to it. `verified` means the dump sits under its final
 * name with its `.sha256` beside it: only the dump step publishes that pair, and only after a full
 * read of the dump succeeded. A dump without its checksum, or leftovers of a failed run (only a
 * `.partial` or only a checksum), are never counted as a good backup.
 */
export interface Backup {
  /** The final dump name, `DB-YYYYmmddTHHMMSSZ.dump`, whether or not that file exists. */
  name: string;
  database: string;
  /** The moment in the name, as an ISO string. */
  stamp: string;
  /** The dump's modification time (of its newest leftover when there is no dump), ms since epoch. */
  timeMs: number;
  /** Size of the dump, 0 when there is none. */
  size: number;
  state: 'verified' | 'unverified' | 'incomplete';
  /** Every file name of this backup present in the listing (dump, checksum, partials). */
  files: string[];
}

/** How long backups stay: `keepDays` days, and never fewer than the newest `keepAtLeast` verified ones. */
export interface RetentionPolicy {
  keepDays: number;
  keepAtLeast: number;
}

/** The decision for one backup, with the rule that made it. */
export interface Decision {
  backup: Backup;
  reason: string;
}

/** What {@link selectRetention} decided: every backup is in exactly one list. @example const { keep, remove }: Retention = selectRetention(backups, policy, now); */
export interface Retention {
  keep: Decision[];
  remove: Decision[];
}

const DAY_MS = 86_400_000;
const STAMP = /^\d{8}T\d{6}Z$/;
// `.+` is greedy, so a database name with dashes keeps them: `my-app-20240101T020000Z.dump`.
const FILE = /^(?<base>(?<database>.+)-(?<stamp>\d{8}T\d{6}Z)\.dump)(?<ext>\.sha256)?(?<partial>\.partial)?$/;

/** Database names tackle puts into file names: no slash, no space, no leading dot or dash. @example DATABASE_NAME.test('app') // true */
export const DATABASE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;

/**
 * The stamp of a moment as used in dump names: UTC, to the second.
 *
 * @example backupStamp(new Date('2024-03-01T02:00:07Z')) // '20240301T020007Z'
 */
export function backupStamp(at: Date): string {
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw new TypeError(`backupStamp: not a valid Date: ${String(at)}`);
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
}

/**
 * The final file name of a dump of `database` made at `at`.
 *
 * @example dumpName('app', new Date('2024-03-01T02:00:07Z')) // 'app-20240301T020007Z.dump'
 */
export function dumpName(database: string, at: Date): string {
  if (typeof database !== 'string' || !DATABASE_NAME.test(database)) {
    throw new TypeError(`database name ${JSON.stringify(database)} cannot be used in a file name: letters, digits, '_', '.', '-' (not first), at most 63`);
  }
  return `${database}-${backupStamp(at)}.dump`;
}

/**
 * The database and stamp of a final dump name, or undefined for any other name.
 *
 * @example parseDumpName('app-20240301T020007Z.dump') // { database: 'app', stamp: '2024-03-01T02:00:07Z' }
 */
export function parseDumpName(name: string): { database: string; stamp: string } | undefined {
  const m = FILE.exec(name);
  if (!m?.groups || m.groups.ext !== undefined || m.groups.partial !== undefined) return undefined;
  return { database: m.groups.database as string, stamp: isoOfStamp(m.groups.stamp as string) };
}

function isoOfStamp(stamp: string): string {
  if (!STAMP.test(stamp)) throw new TypeError(`not a backup stamp: ${stamp}`);
  return `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`;
}

/**
 * Groups a listing into backups. Names that are not dumps, checksums or partials of
 * `DB-STAMP.dump` are not backups and are left out (retention never touches them).
 *
 * @example
 * groupBackups([{ name: 'app-20240301T020007Z.dump', size: 9, mtimeMs: 0 }, { name: 'app-20240301T020007Z.dump.sha256', size: 90, mtimeMs: 0 }])
 * // [{ name: 'app-20240301T020007Z.dump', state: 'verified', … }]
 */
export function groupBackups(files: readonly StoredFile[]): Backup[] {
  const byName = new Map<string, { database: string; stamp: string; dump?: StoredFile; sha?: StoredFile; others: StoredFile[] }>();
  for (const file of files) {
    const m = FILE.exec(file.name);
    if (!m?.groups) continue;
    const base = m.groups.base as string;
    const entry = byName.get(base) ?? { database: m.groups.database as string, stamp: isoOfStamp(m.groups.stamp as string), others: [] };
    byName.set(base, entry);
    if (m.groups.partial !== undefined) entry.others.push(file);
    else if (m.groups.ext !== undefined) entry.sha = file;
    else entry.dump = file;
  }
  return [...byName].map(([name, e]) => {
    const present = [e.dump, e.sha, ...e.others].filter((f): f is StoredFile => f !== undefined);
    return {
      name,
      database: e.database,
      stamp: e.stamp,
      timeMs: e.dump ? e.dump.mtimeMs : Math.max(...present.map((f) => f.mtimeMs)),
      size: e.dump?.size ?? 0,
      state: e.dump && e.sha ? 'verified' : e.dump ? 'unverified' : 'incomplete',
      files: present.map((f) => f.name).sort(),
    };
  });
}

/** Newest first by modification time; the name (its stamp) breaks ties. */
function newestFirst(a: Backup, b: Backup): number {
  return b.timeMs - a.timeMs || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0);
}

/**
 * Checks a retention policy; the refusal names the bad field.
 *
 * @example checkPolicy({ keepDays: 7, keepAtLeast: 3 }, 'postgres.prune')
 */
export function checkPolicy(policy: RetentionPolicy, where: string): RetentionPolicy {
  const { keepDays, keepAtLeast } = policy;
  if (typeof keepDays !== 'number' || !Number.isFinite(keepDays) || keepDays < 0) throw refuse(where, `keepDays must be a number of days ≥ 0, got ${String(keepDays)}`);
  // Zero would let a run of bad dates delete every backup.
  if (!Number.isInteger(keepAtLeast) || keepAtLeast < 1) throw refuse(where, `keepAtLeast must be a whole number ≥ 1, got ${String(keepAtLeast)}`);
  return { keepDays, keepAtLeast };
}

/**
 * Decides, per database, which backups stay: every backup younger than `keepDays` days (a
 * partial that young may be a dump still being written), and the newest `keepAtLeast` verified
 * backups whatever their dates say. Everything else goes, including unverified dumps and
 * leftovers of failed runs once they are older than `keepDays`. Pure: `now` is passed in.
 *
 * @example
 * const { remove } = selectRetention(groupBackups(files), { keepDays: 7, keepAtLeast: 3 }, new Date());
 * remove.flatMap((d) => d.backup.files) // the file names to delete
 */
export function selectRetention(backups: readonly Backup[], policy: RetentionPolicy, now: Date): Retention {
  const { keepDays, keepAtLeast } = checkPolicy(policy, 'selectRetention');
  const cutoff = now.getTime() - keepDays * DAY_MS;
  const keep: Decision[] = [];
  const remove: Decision[] = [];
  const databases = [...new Set(backups.map((b) => b.database))].sort();
  for (const database of databases) {
    const mine = backups.filter((b) => b.database === database).sort(newestFirst);
    const newest = new Set(mine.filter((b) => b.state === 'verified').slice(0, keepAtLeast));
    for (const backup of mine) {
      if (newest.has(backup)) keep.push({ backup, reason: `one of the newest ${keepAtLeast} verified` });
      else if (backup.timeMs > cutoff) keep.push({ backup, reason: `younger than ${keepDays} days` });
      else remove.push({ backup, reason: `${backup.state === 'verified' ? '' : `${backup.state}, `}older than ${keepDays} days` });
    }
  }
  return { keep, remove };
}

/**
 * A listing (a backup directory, a remote folder) as it is once `names` are in it: what a dump or
 * an upload does to what retention reads, so that a dry-run plans retention after them exactly.
 * A file of a backup dates from the backup's stamp (rclone keeps modification times); sizes are
 * not predicted (retention does not weigh them). Names already listed are replaced.
 *
 * @example withNewFiles(listing.files, ['app-20240301T020007Z.dump', 'app-20240301T020007Z.dump.sha256'])
 */
export function withNewFiles(files: readonly StoredFile[], names: readonly string[]): StoredFile[] {
  const added = names.map((name): StoredFile => {
    const stamp = FILE.exec(name)?.groups?.stamp;
    return { name, size: 0, mtimeMs: stamp === undefined ? Date.now() : Date.parse(isoOfStamp(stamp)) };
  });
  return [...files.filter((f) => !names.includes(f.name)), ...added];
}

/**
 * The newest verified backup of `database`, or undefined.
 *
 * @example newestVerified(groupBackups(files), 'app')?.name
 */
export function newestVerified(backups: readonly Backup[], database: string): Backup | undefined {
  return backups.filter((b) => b.database === database && b.state === 'verified').sort(newestFirst)[0];
}

/**
 * What retention removes from one listing (a backup directory or a remote folder): the file
 * names to delete and a one-line summary of what goes, what stays and why; undefined when
 * everything stays.
 *
 * @example const prune = planPrune(files, { keepDays: 7, keepAtLeast: 3 }, { now: new Date() });
 */
export function planPrune(files: readonly StoredFile[], policy: RetentionPolicy, opts: { now: Date }): { files: string[]; summary: string } | undefined {
  const { keep, remove } = selectRetention(groupBackups(files), policy, opts.now);
  if (remove.length === 0) return undefined;
  const removed = remove.map((d) => `${d.backup.name} (${d.reason})`).join(', ');
  return {
    files: remove.flatMap((d) => d.backup.files),
    summary: `remove ${remove.length} backup(s): ${removed}; keep ${keep.length} (${policy.keepDays} days, at least the newest ${policy.keepAtLeast} verified)`,
  };
}
