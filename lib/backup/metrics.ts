// The nightly backup's figures as Prometheus metrics, so that "no verified backup for 26 hours"
// is an alert rule: per host and database the last verified upload (time and size), per host
// how the last run went. A run carries over what it did not measure from the previous file, so
// a failed night never resets the time of the last success.
import { readSamples, type Metric, type Sample } from '../metrics/textfile.ts';

/** The metric names, for alert rules and dashboards. @example `time() - ${BACKUP_METRICS.verifiedAt} > 26 * 3600` */
export const BACKUP_METRICS = {
  verifiedAt: 'tackle_backup_last_verified_upload_timestamp_seconds',
  verifiedBytes: 'tackle_backup_last_verified_upload_size_bytes',
  runAt: 'tackle_backup_last_run_timestamp_seconds',
  runSuccess: 'tackle_backup_last_run_success',
} as const;

const HELP = {
  verifiedAt: 'Unix time at which the last upload of this database was verified on the remote.',
  verifiedBytes: 'Size in bytes of the last dump of this database verified on the remote.',
  runAt: 'Unix time at which the last nightly backup run of this host ended.',
  runSuccess: '1 if the last nightly backup run of this host succeeded, 0 if it failed or the host was unreachable.',
} as const;

/** A dump that rclone verified on the remote. */
export interface VerifiedUpload {
  host: string;
  database: string;
  /** When the verification passed. */
  at: Date;
  bytes: number;
}

/** How one host's run ended. */
export interface HostRun {
  host: string;
  ok: boolean;
  at: Date;
  /** The databases the host backs up; unknown when the run never started there (unreachable). */
  databases?: readonly string[];
}

const key = (labels: Readonly<Record<string, string>>) => `${labels.host}\u0000${labels.database ?? ''}`;

/** Samples keyed by host and database: `previous` ones, then `current` ones over them. */
function merged(previous: readonly Sample[], current: readonly Sample[], keep: (s: Sample) => boolean): Sample[] {
  return [...new Map([...previous.filter(keep), ...current].map((s) => [key(s.labels), s])).values()];
}

const seconds = (d: Date) => d.getTime() / 1000;

/**
 * The verified-upload metrics of these uploads alone: what a host's own node_exporter file
 * holds (it is rewritten only after a verified upload, so a failed night leaves it as it was).
 *
 * @example renderTextfile(verifiedMetrics([{ host: 'db1', database: 'app', at: new Date(), bytes: 1234 }]))
 */
export function verifiedMetrics(uploads: readonly VerifiedUpload[], previous = '', keep: (s: Sample) => boolean = () => false): Metric[] {
  const labels = (u: VerifiedUpload) => ({ host: u.host, database: u.database });
  return [
    { name: BACKUP_METRICS.verifiedAt, help: HELP.verifiedAt, type: 'gauge', samples: merged(readSamples(previous, BACKUP_METRICS.verifiedAt), uploads.map((u) => ({ labels: labels(u), value: seconds(u.at) })), keep) },
    { name: BACKUP_METRICS.verifiedBytes, help: HELP.verifiedBytes, type: 'gauge', samples: merged(readSamples(previous, BACKUP_METRICS.verifiedBytes), uploads.map((u) => ({ labels: labels(u), value: u.bytes })), keep) },
  ];
}

/**
 * The controller's metrics after a run, from the run's hosts and verified uploads and the
 * `previous` file's text. Carried over from it: every database not verified in this run (a
 * failed night keeps its last success), and the hosts this run did not reach at all (`--limit`).
 * Dropped: databases a host that ran no longer backs up. Hosts without a `backup` var (never
 * started, never seen before) get no sample.
 *
 * @example
 * const text = renderTextfile(backupMetrics(runs, uploads, await readFile(file, 'utf8').catch(() => '')));
 */
export function backupMetrics(runs: readonly HostRun[], uploads: readonly VerifiedUpload[], previous = ''): Metric[] {
  const backedUp = new Map(runs.flatMap((r) => (r.databases ? [[r.host, r.databases] as const] : [])));
  const prevRuns = { at: readSamples(previous, BACKUP_METRICS.runAt), success: readSamples(previous, BACKUP_METRICS.runSuccess) };
  const known = new Set([...backedUp.keys(), ...prevRuns.at.map((s) => s.labels.host)]);
  const ran = runs.filter((r) => known.has(r.host));
  // A host's previous figure stays unless the host ran and no longer backs that database up.
  const keep = (s: Sample) => {
    const dbs = backedUp.get(s.labels.host ?? '');
    return dbs === undefined || dbs.includes(s.labels.database ?? '');
  };
  return [
    ...verifiedMetrics(uploads, previous, keep),
    { name: BACKUP_METRICS.runAt, help: HELP.runAt, type: 'gauge', samples: merged(prevRuns.at, ran.map((r) => ({ labels: { host: r.host }, value: seconds(r.at) })), () => true) },
    { name: BACKUP_METRICS.runSuccess, help: HELP.runSuccess, type: 'gauge', samples: merged(prevRuns.success, ran.map((r) => ({ labels: { host: r.host }, value: r.ok ? 1 : 0 })), () => true) },
  ];
}
