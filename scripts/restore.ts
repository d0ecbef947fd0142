// Restore drill: restores a verified backup (the newest by default, local or fetched from the
// remote, checksum checked) into a scratch database `DB_restore_drill_YYYYmmdd` and compares
// exact row counts per table with the source database.
//
//   npx tsx scripts/restore.ts --limit db1 [--database app] [--backup app-20240301T020007Z.dump]
//                              [--into NAME] [--replace] [--drop-after] [--dry-run] [--json FILE]
//
// The script's own flags are taken out of argv before runCli parses the rest (runCli rejects
// flags it does not know). Environment as for nightly-backup.ts (the keys, to reach the remote).
// Exit code: runCli's; a mismatch in row counts fails the host (2).
import { join } from 'node:path';
import { defineTask, isMain, loadEnv, runCli, secret, type CliIo, type Task } from '../lib/index.ts';
import { backupEnv, backupVars, type BackupSecrets, type BackupVars } from '../lib/backup/config.ts';
import { flagUsage, splitFlags, type FlagSpec } from '../lib/backup/flags.ts';
import { restoreDrill, type DrillResult, type RestoreRequest } from '../lib/backup/restore.ts';

const FLAGS = {
  database: { type: 'string', describe: "only this database of the host's backup.databases (default: each)" },
  backup: { type: 'string', describe: 'restore this dump (file name) instead of the newest verified one' },
  into: { type: 'string', describe: 'restore into this database (default DB_restore_drill_YYYYmmdd)' },
  replace: { type: 'boolean', describe: 'drop an existing database of that name first' },
  'drop-after': { type: 'boolean', describe: 'drop the restored database after the comparison' },
} as const satisfies FlagSpec;

/**
 * The restore drill as a task; each restored database is handed to `record`.
 *
 * @example restoreTask({ now: new Date() }, secrets, (r) => results.push(r))
 */
export function restoreTask(request: RestoreRequest, secrets: BackupSecrets, record: (r: DrillResult) => void): Task<BackupVars> {
  return defineTask({ name: 'restore', vars: backupVars, run: (host) => restoreDrill(host, request, secrets, record) });
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
 * @example process.exitCode = await main(cliIo);
 */
export async function main(io: CliIo): Promise<number> {
  let split;
  try {
    split = splitFlags(io.argv, FLAGS);
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n`);
    return 1;
  }
  const { values, rest } = split;
  if (rest.includes('-h') || rest.includes('--help')) {
    io.stdout.write(`restore: a restore drill of the newest (or a chosen) verified backup.\n\nRestore options:\n${flagUsage(FLAGS)}\n`);
    // runCli prints its usage and returns before the task (and its keys) are used.
    return runCli(restoreTask({ now: new Date() }, { accessKeyId: secret(''), secretAccessKey: secret('') }, () => {}), { ...io, argv: rest });
  }
  let secrets: BackupSecrets;
  try {
    const env = loadEnv(backupEnv, { env: io.env, file: join(io.cwd, '.env') });
    secrets = { accessKeyId: env.BACKUP_ACCESS_KEY_ID, secretAccessKey: env.BACKUP_SECRET_ACCESS_KEY };
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
  const request: RestoreRequest = {
    now: new Date(),
    ...(values.database !== undefined ? { database: values.database } : {}),
    ...(values.backup !== undefined ? { backup: values.backup } : {}),
    ...(values.into !== undefined ? { into: values.into } : {}),
    replace: values.replace === true,
    dropAfter: values['drop-after'] === true,
  };
  const results: DrillResult[] = [];
  const code = await runCli(restoreTask(request, secrets, (r) => results.push(r)), { ...io, argv: rest });
  io.stdout.write(formatDrill(results));
  return code;
}

if (isMain(import.meta.url, process.argv)) {
  process.exitCode = await main({ argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, signals: process });
}
