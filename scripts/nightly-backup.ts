// The nightly PostgreSQL backup of every database host of the inventory (hosts with a `backup`
// var, see lib/backup/config.ts), in parallel: dump → verify → upload → verify → prune.
//
//   npx tsx scripts/nightly-backup.ts [--limit db] [--dry-run] [--json report.json] [--prometheus FILE]
//
// Metrics for Prometheus (lib/backup/metrics.ts): with `--prometheus FILE` the controller writes
// every host's figures there (give it a path in node_exporter's textfile directory); a host that
// runs node_exporter itself gets its own figures in /var/lib/prometheus/node-exporter after each
// verified upload.
//
// Environment (or `.env`): BACKUP_ACCESS_KEY_ID and BACKUP_SECRET_ACCESS_KEY (the R2/S3 keys;
// masked everywhere), BACKUP_WEBHOOK_URL (optional: a Slack-compatible webhook told about any
// failure, naming the host and the step; a dry-run never posts).
// Exit codes are runCli's: 0 all hosts backed up, 2 a host failed or was unreachable, 1 nothing
// ran (usage, inventory, vars or environment error), 130 interrupted.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { backupEnv, backupMetrics, type BackupSecrets, type BackupVars, backupVars, type CliIo, defineTask, EXIT, failureMessage, hostTextfile, type JsonReport, loadEnv, postWebhook, renderTextfile, runCli, runIfMain, runNightly, type Secret, secret, type Task, verifiedMetrics, type VerifiedUpload, webhookEnv, writeTextfile } from '../lib/index.ts';

/** What a run learns for its metrics: the databases each host backs up, and the verified uploads. */
export interface MetricsLog {
  databases: Map<string, readonly string[]>;
  uploads: VerifiedUpload[];
}

/**
 * The nightly backup as a task; every dump of the run is named after `now`. Each verified upload
 * goes into `log` and, on a host with node_exporter, into its textfile directory.
 *
 * @example await runCli(nightlyBackup({ now: new Date(), secrets, log: { databases: new Map(), uploads: [] } }), io);
 */
export function nightlyBackup(ctx: { now: Date; secrets: BackupSecrets; log: MetricsLog }): Task<BackupVars> {
  return defineTask({
    name: 'nightly-backup',
    vars: backupVars,
    run: (host) =>
      runNightly(host, {
        now: ctx.now,
        secrets: ctx.secrets,
        onStart: (databases) => void ctx.log.databases.set(host.name, databases),
        onVerified: async (dumps) => {
          const at = new Date();
          const uploads = dumps.map((d) => ({ host: host.name, database: d.database, at, bytes: d.bytes }));
          if (!host.dryRun) ctx.log.uploads.push(...uploads);
          await host.run(hostTextfile({ name: 'tackle_backup.prom', text: renderTextfile(verifiedMetrics(uploads)) }));
        },
      }),
  });
}

/** The metrics file after a run: this run's figures over the previous file's. */
async function writeMetrics(file: string, report: JsonReport, log: MetricsLog): Promise<void> {
  const previous = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const at = new Date();
  // A skipped host (--max-fail, Ctrl-C) did not run: it keeps its previous figures.
  const runs = report.hosts.filter((h) => h.status !== 'skipped').map((h) => ({ host: h.name, ok: h.status === 'ok' || h.status === 'changed', at, ...(log.databases.has(h.name) ? { databases: log.databases.get(h.name) } : {}) }));
  await writeTextfile(file, renderTextfile(backupMetrics(runs, log.uploads, previous)));
}

const HELP = `nightly-backup: dump, verify, upload, verify and prune the PostgreSQL databases of every host
with a \`backup\` var. Needs BACKUP_ACCESS_KEY_ID and BACKUP_SECRET_ACCESS_KEY (environment or .env);
BACKUP_WEBHOOK_URL, when set, receives a Slack-compatible message about any failure.

`;

/** The script's output flag: not a var, read after the run. */
const FLAGS = {
  prometheus: { type: 'string', description: "after the run, write per-database metrics (last verified upload, its size, last run's outcome) to FILE in Prometheus' textfile format" },
} as const;

/**
 * Runs the script: the task through runCli, then the metrics file (`--prometheus`) and, when
 * something failed (and this was not a dry-run), the webhook. Returns the exit code.
 *
 * @example await runIfMain(import.meta, main);
 */
export async function main(io: CliIo): Promise<number> {
  const log: MetricsLog = { databases: new Map(), uploads: [] };
  const source = { env: io.env, file: join(io.cwd, '.env') };
  if (io.argv.includes('-h') || io.argv.includes('--help')) {
    io.stdout.write(HELP);
    // runCli prints its usage and returns before the task (and its keys) are used.
    return runCli(nightlyBackup({ now: new Date(), secrets: { accessKeyId: secret(''), secretAccessKey: secret('') }, log }), io, { flags: FLAGS });
  }
  let hook: Secret | undefined;
  try {
    hook = loadEnv(webhookEnv, source).BACKUP_WEBHOOK_URL;
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  const dryRun = io.argv.includes('--dry-run');
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
    return EXIT.usage;
  }

  const code = await runCli(nightlyBackup({ now: new Date(), secrets, log }), io, {
    flags: FLAGS,
    async finish(report, end) {
      let code = end.code;
      const file = end.flags.prometheus;
      if (typeof file === 'string' && !report.dryRun) {
        const path = resolve(end.cwd, file);
        try {
          await writeMetrics(path, report, log);
        } catch (err) {
          end.stderr.write(`error: cannot write the metrics file ${path}: ${(err as Error).message}\n`);
          code = code || EXIT.failed;
        }
      }
      const payload = code === EXIT.failed ? failureMessage(report, { secrets: [secrets.accessKeyId.reveal(), secrets.secretAccessKey.reveal()] }) : undefined;
      if (payload) await notify(payload.text);
      return code;
    },
  });
  if (code === EXIT.usage) await notify('tackle nightly-backup could not start (a usage, inventory or vars error; see its output): nothing was backed up');
  return code;
}

await runIfMain(import.meta, main);
