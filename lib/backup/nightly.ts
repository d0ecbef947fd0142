// The nightly backup of one database host as an ordered list of steps. Each step runs only if
// every step before it succeeded (a failed step ends the host's run), which gives the pipeline
// its guarantees: nothing is uploaded unless it was verified, and no retention runs, locally or
// remotely, unless this run's upload was verified on the remote.
import { posix } from 'node:path';
import type { Operation } from '../ops/operation.ts';
import type { HostContext } from '../engine/task.ts';
import { dumpFiles } from '../facts/postgres.ts';
import { apt } from '../ops/apt.ts';
import { files } from '../ops/files.ts';
import { postgres } from '../ops/postgres.ts';
import { rclone } from '../ops/rclone.ts';
import { pgTargetOf, remoteOf, type BackupConfig, type BackupSecrets, type BackupVars } from './config.ts';
import { dumpName } from '../ops/retention.ts';

/** What a nightly run knows besides the host's vars. @example nightlySteps(cfg, { host: 'db1', now: new Date(), secrets }) */
export interface NightlyContext {
  /** The inventory name of the host (the default remote prefix). */
  host: string;
  /** The moment of this run: every dump of the run is named after it. */
  now: Date;
  secrets: BackupSecrets;
}

/**
 * The remote as an rclone remote on the host, from the `backup.remote` var and the keys.
 *
 * @example await host.run(remoteSetup(cfg, secrets));
 */
export function remoteSetup(cfg: BackupConfig, secrets: BackupSecrets): Operation {
  const r = cfg.remote;
  return rclone.remote({
    name: r.name,
    provider: r.provider,
    ...(r.accountId !== undefined ? { accountId: r.accountId } : {}),
    ...(r.endpoint !== undefined ? { endpoint: r.endpoint } : {}),
    region: r.region,
    accessKeyId: secrets.accessKeyId,
    secretAccessKey: secrets.secretAccessKey,
  });
}

/**
 * What a host needs before any backup step: rclone, its remote, the backup directory (0700).
 *
 * @example for (const op of setupSteps(cfg, secrets)) await host.run(op);
 */
export function setupSteps(cfg: BackupConfig, secrets: BackupSecrets): Operation[] {
  return [apt.packages({ names: ['rclone'] }), remoteSetup(cfg, secrets), files.directory({ path: cfg.dir, mode: '0700' })];
}

/**
 * The nightly run of one host, in order: setup; dump → verify → publish each database;
 * upload the new files (copy, never sync); verify them on the remote; local retention; remote
 * retention. Pure: the same config and moment give the same steps.
 *
 * @example for (const op of nightlySteps(cfg, { host: 'db1', now: new Date(), secrets })) await host.run(op);
 */
export function nightlySteps(cfg: BackupConfig, ctx: NightlyContext): Operation[] {
  const { upload, retention } = nightlyPhases(cfg, ctx);
  return [...upload, ...retention];
}

/** The steps up to the remote verification of this run's uploads, the retention steps after it, and the dumps' names by database. */
function nightlyPhases(cfg: BackupConfig, ctx: NightlyContext): { upload: Operation[]; retention: Operation[]; dumps: Array<{ database: string; name: string }> } {
  const target = pgTargetOf(cfg);
  const loc = remoteOf(cfg, ctx.host);
  const dumps = cfg.databases.map((database) => ({ database, name: dumpName(database, ctx.now) }));
  const names = dumps.map((d) => d.name);
  const newFiles = names.flatMap((name) => [name, `${name}.sha256`]);
  return {
    upload: [
      ...setupSteps(cfg, ctx.secrets),
      ...cfg.databases.map((database) =>
        postgres.dump({ database, dir: cfg.dir, at: ctx.now, noOwner: cfg.noOwner, excludeTables: cfg.excludeTables, ...target }),
      ),
      rclone.copy({ from: cfg.dir, files: newFiles, to: loc }),
      rclone.check({ from: cfg.dir, files: newFiles, to: loc }),
    ],
    retention: [
      postgres.prune({ dir: cfg.dir, keepDays: cfg.keepDays, keepAtLeast: cfg.keepAtLeast, now: ctx.now }),
      rclone.prune({ location: loc, keepDays: cfg.remote.keepDays, keepAtLeast: cfg.remote.keepAtLeast, now: ctx.now }),
    ],
    dumps,
  };
}

/** A dump of this run that rclone verified on the remote: its database, file name and size. */
export interface VerifiedDump {
  database: string;
  name: string;
  bytes: number;
}

/** What a caller of {@link runNightly} may hear about a host's run. */
export interface NightlyHooks {
  /** Told the databases the host backs up, before any step. */
  onStart?(databases: readonly string[]): void;
  /**
   * Told, as soon as the remote verification passed (before retention), each database's dump.
   * In a dry-run, told the planned dumps with sizes unknown (NaN), so that steps it runs on the
   * host are planned too.
   */
  onVerified?(dumps: readonly VerifiedDump[]): Promise<void>;
}

/**
 * Runs the nightly steps on a host that has a `backup` var (others are left alone). The first
 * failing step ends the run on this host (the runner records which).
 *
 * @example defineTask({ name: 'nightly-backup', vars: backupVars, run: (host) => runNightly(host, { now, secrets }) })
 */
export async function runNightly(host: HostContext<BackupVars>, ctx: Omit<NightlyContext, 'host'> & NightlyHooks): Promise<void> {
  const cfg = host.vars.backup;
  if (!cfg) return;
  ctx.onStart?.(cfg.databases);
  const { upload, retention, dumps } = nightlyPhases(cfg, { ...ctx, host: host.name });
  for (const op of upload) await host.run(op);
  if (ctx.onVerified) {
    // The sizes rclone just compared with the objects in the bucket (NaN, "unknown", in a dry-run
    // or for a dump that something removed in between).
    const listing = host.dryRun ? undefined : await host.fact(dumpFiles(cfg.dir));
    const sizes = new Map(listing?.kind === 'directory' ? listing.files.map((f) => [f.name, f.size]) : []);
    await ctx.onVerified(dumps.map((d) => ({ ...d, bytes: sizes.get(d.name) ?? NaN })));
  }
  for (const op of retention) await host.run(op);
}

/**
 * The path of a dump in a host's backup directory.
 *
 * @example dumpPath(cfg, 'app-20240301T020007Z.dump') // '/var/backups/postgresql/app-20240301T020007Z.dump'
 */
export function dumpPath(cfg: BackupConfig, name: string): string {
  return posix.join(cfg.dir, name);
}
