// The nightly PostgreSQL backup of every database host of the inventory (hosts with a `backup`
// var, see lib/backup/config.ts), in parallel: dump → verify → upload → verify → prune.
//
//   npx tsx scripts/nightly-backup.ts [--limit db] [--dry-run] [--json report.json]
//
// Environment (or `.env`): BACKUP_ACCESS_KEY_ID and BACKUP_SECRET_ACCESS_KEY (the R2/S3 keys;
// masked everywhere), BACKUP_WEBHOOK_URL (optional: a Slack-compatible webhook told about any
// failure, naming the host and the step; a dry-run never posts).
// Exit codes are runCli's: 0 all hosts backed up, 2 a host failed or was unreachable, 1 nothing
// ran (usage, inventory, vars or environment error), 130 interrupted.
import { join } from 'node:path';
import { defineTask, isMain, loadEnv, runCli, secret, type CliIo, type Secret, type Task } from '../lib/index.ts';
import { backupEnv, backupVars, webhookEnv, type BackupSecrets, type BackupVars } from '../lib/backup/config.ts';
import { runNightly } from '../lib/backup/nightly.ts';
import { failureMessage, postWebhook } from '../lib/backup/webhook.ts';
import type { JsonReport } from '../lib/cli/report.ts';

/**
 * The nightly backup as a task; every dump of the run is named after `now`.
 *
 * @example await runCli(nightlyBackup({ now: new Date(), secrets }), io);
 */
export function nightlyBackup(ctx: { now: Date; secrets: BackupSecrets }): Task<BackupVars> {
  return defineTask({ name: 'nightly-backup', vars: backupVars, run: (host) => runNightly(host, ctx) });
}

const HELP = `nightly-backup: dump, verify, upload, verify and prune the PostgreSQL databases of every host
with a \`backup\` var. Needs BACKUP_ACCESS_KEY_ID and BACKUP_SECRET_ACCESS_KEY (environment or .env);
BACKUP_WEBHOOK_URL, when set, receives a Slack-compatible message about any failure.

`;

/**
 * Runs the script: the task through runCli, then, when something failed (and this was not a
 * dry-run), the webhook. Returns the exit code.
 *
 * @example process.exitCode = await main(cliIo);
 */
export async function main(io: CliIo & { env: Readonly<Record<string, string | undefined>> }): Promise<number> {
  const argv = [...io.argv];
  const source = { env: io.env, file: join(io.cwd, '.env') };
  if (argv.includes('-h') || argv.includes('--help')) {
    io.stdout.write(HELP);
    // runCli prints its usage and returns before the task (and its keys) are used.
    return runCli(nightlyBackup({ now: new Date(), secrets: { accessKeyId: secret(''), secretAccessKey: secret('') } }), io);
  }
  let hook: Secret | undefined;
  try {
    hook = loadEnv(webhookEnv, source).BACKUP_WEBHOOK_URL;
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
  const dryRun = argv.includes('--dry-run');
  const notify = async (text: string): Promise<void> => {
    if (!hook || dryRun) return;
    const sent = await postWebhook(hook, { text });
    io.stderr.write(sent.ok ? `webhook notified (HTTP ${sent.status})\n` : `warning: ${sent.reason}\n`);
  };

  let secrets: BackupSecrets;
  try {
    const env = loadEnv(backupEnv, source);
    secrets = { accessKeyId: env.BACKUP_ACCESS_KEY_ID, secretAccessKey: env.BACKUP_SECRET_ACCESS_KEY };
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    await notify(`tackle nightly-backup could not start: ${(err as Error).message}; nothing was backed up`);
    return 1;
  }

  let report: JsonReport | undefined;
  const code = await runCli(nightlyBackup({ now: new Date(), secrets }), { ...io, onReport: async (r) => void (report = r) });
  if (code === 1) await notify('tackle nightly-backup could not start (a usage, inventory or vars error; see its output): nothing was backed up');
  if (code === 2 && report) {
    const payload = failureMessage(report, { secrets: [secrets.accessKeyId.reveal(), secrets.secretAccessKey.reveal()] });
    if (payload) await notify(payload.text);
  }
  return code;
}

if (isMain(import.meta.url, process.argv)) {
  process.exitCode = await main({ argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, signals: process });
}
