// Restore drill: restores a verified backup (the newest by default, local or fetched from the
// remote, checksum checked) into a scratch database `DB_restore_drill_YYYYmmdd` and compares
// exact row counts per table with the source database.
//
//   npx tsx scripts/restore.ts --limit db1 [--database app] [--backup app-20240301T020007Z.dump]
//                              [--into NAME] [--replace] [--drop-after] [--dry-run] [--json FILE]
//
// Its own flags are task flags (runCli parses them and sets the restore* vars of lib/backup/restore.ts
// on every selected host). Environment as for nightly-backup.ts (the keys, to reach the remote).
// Exit code: runCli's; a mismatch in row counts fails the host (2).
import { join } from 'node:path';
import { backupEnv, type BackupSecrets, type CliIo, defineTask, type DrillResult, loadEnv, requestOf, restoreDrill, type RestoreVars, restoreVars, runCli, runIfMain, secret, type Task } from '../lib/index.ts';

/** The script's flags; each sets a restore var (lib/backup/restore.ts) on every selected host. */
const FLAGS = {
  database: { type: 'string', var: 'restoreDatabase', description: "only this database of the host's backup.databases (default: each)" },
  backup: { type: 'string', var: 'restoreBackup', description: 'restore this dump (file name) instead of the newest verified one' },
  into: { type: 'string', var: 'restoreInto', description: 'restore into this database (default DB_restore_drill_YYYYmmdd)' },
  replace: { type: 'boolean', var: 'restoreReplace', description: 'drop an existing database of that name first' },
  'drop-after': { type: 'boolean', var: 'restoreDropAfter', description: 'drop the restored database after the comparison' },
} as const;

/**
 * The restore drill as a task; each restored database is handed to `record`.
 *
 * @example restoreTask(new Date(), secrets, (r) => results.push(r))
 */
export function restoreTask(now: Date, secrets: BackupSecrets, record: (r: DrillResult) => void): Task<RestoreVars> {
  return defineTask({ name: 'restore', vars: restoreVars, flags: FLAGS, run: (host) => restoreDrill(host, requestOf(host.vars, now), secrets, record) });
}

/**
 * The comparison as a table for people: one row per table, `!=` where the counts differ.
 *
 * @example formatDrill([{ host: 'db1', database: 'app', backup: 'app-….dump', from: 'local', into: 'app_restore_drill_20240301', tables: [] }])
 */
export function formatDrill(results: readonly DrillResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    out.push(`\n${r.host}: ${r.database} ← ${r.backup} (${r.from === 'remote' ? 'fetched from the remote' : 'local'}) restored into ${r.into}`);
    if (!r.tables) {
      out.push('  (dry-run: nothing restored, nothing counted)');
      continue;
    }
    const rows = r.tables.map((t) => [t.table, String(t.source ?? 'missing'), String(t.restored ?? 'missing'), t.source === t.restored ? '=' : '!=']);
    const header = ['TABLE', r.database, r.into, ''];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
    for (const row of [header, ...rows]) out.push(`  ${row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}`);
    const same = r.tables.every((t) => t.source === t.restored);
    out.push(`  ${same ? `all ${r.tables.length} table(s) match` : 'ROW COUNTS DIFFER'}`);
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * Runs the script and returns the exit code.
 *
 * @example await runIfMain(import.meta, main);
 */
export async function main(io: CliIo): Promise<number> {
  let secrets: BackupSecrets = { accessKeyId: secret(''), secretAccessKey: secret('') };
  // --help needs no keys: runCli prints its usage before the task runs.
  if (!io.argv.includes('-h') && !io.argv.includes('--help')) {
    try {
      const env = loadEnv(backupEnv, { env: io.env, file: join(io.cwd, '.env') });
      secrets = { accessKeyId: env.BACKUP_ACCESS_KEY_ID, secretAccessKey: env.BACKUP_SECRET_ACCESS_KEY };
    } catch (err) {
      io.stderr.write(`error: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const results: DrillResult[] = [];
  // The comparison follows the recap (on stderr with `--json -`), the drills of failed hosts included.
  return runCli(restoreTask(new Date(), secrets, (r) => results.push(r)), io, { render: (_report, _paint, recap) => recap + formatDrill(results) });
}

await runIfMain(import.meta, main);
