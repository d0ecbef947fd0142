// The typed inventory vars of the backup scripts, and what they mean for the operations.
import type { Secret } from '../command/command.ts';
import { VarError, VarType, v, type InferShape } from '../inventory/vars.ts';
import type { PgTarget } from '../facts/postgres.ts';
import type { RemoteLocation } from '../facts/rclone.ts';
import type { S3Provider } from '../ops/rclone.ts';
import { cronFields } from '../ops/schedule.ts';
import { DATABASE_NAME } from '../ops/retention.ts';

const PROVIDERS: readonly S3Provider[] = ['Cloudflare', 'AWS', 'Minio', 'Wasabi', 'DigitalOcean', 'Other'];

/**
 * A cron expression var, checked with cron-parser with the inventory, before any host is contacted.
 *
 * @example const vars = { when: cronVar().default('0 2 * * *') };
 */
export function cronVar(): VarType<string> {
  return new VarType('a cron expression', (value, path) => {
    if (typeof value !== 'string') throw new VarError(path, 'a cron expression such as "0 2 * * *"', value);
    try {
      cronFields(value);
    } catch (err) {
      throw new VarError(path, `a valid cron expression (${(err as Error).message})`, value);
    }
    return value;
  });
}

/**
 * A database name var: it becomes part of the dump files' names.
 *
 * @example const vars = { restoreInto: databaseVar().optional() };
 */
export function databaseVar(): VarType<string> {
  return v.match(DATABASE_NAME, "a database name of letters, digits, '_', '.', '-' (not first), at most 63");
}

/**
 * The `backup` var of a database host: what to dump, where, and where to copy it. Hosts
 * without it are not database hosts for the backup scripts (they are skipped).
 *
 * @example
 * db1: { address: '203.0.113.5', groups: ['db'], vars: { backup: {
 *   databases: ['app'], remote: { accountId: '0123…', bucket: 'acme-backups' } } } }
 */
export const backupVars = {
  backup: v
    .object({
      databases: v.array(databaseVar()),
      /** The backup directory on the host. */
      dir: v.path().default('/var/backups/postgresql'),
      /** PostgreSQL runs in this Docker container (`docker exec`); otherwise on the host. */
      container: v.match(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'a container name or id').optional(),
      /** The OS user that runs the programs on the host (peer authentication). */
      osUser: v.userName().default('postgres'),
      /** The database role (`-U`); in a container usually `postgres`. */
      dbUser: v.match(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'a role name such as "postgres"').optional(),
      noOwner: v.boolean().default(false),
      excludeTables: v.array(v.match(/\S/, 'a table name or pattern')).default([]),
      keepDays: v.number({ min: 0 }).default(7),
      keepAtLeast: v.integer({ min: 1 }).default(3),
      remote: v.object({
        /** The rclone remote's name. */
        name: v.match(/^[A-Za-z0-9_.+@][A-Za-z0-9_.+@-]*$/, "an rclone remote name (letters, digits, '_', '.', '+', '@', '-')").default('r2'),
        provider: v.oneOf(...PROVIDERS).default('Cloudflare'),
        /** Cloudflare account id (R2 endpoint https://ID.r2.cloudflarestorage.com). */
        accountId: v.match(/^[0-9a-f]{32}$/, 'a Cloudflare account id (32 hex digits)').optional(),
        endpoint: v.url().optional(),
        region: v.match(/^[a-z0-9-]+$/, 'a region such as "auto" or "eu-west-1"').default('auto'),
        bucket: v.match(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name (3-63 lower-case letters, digits, '.', '-')"),
        /** Folder in the bucket; default the host's inventory name. */
        prefix: v.string().refine((p) => !p.split('/').some((part) => part === '' || part === '.' || part === '..') && !/[\0\n\\]/.test(p), "folder names separated by '/'").optional(),
        keepDays: v.number({ min: 0 }).default(30),
        keepAtLeast: v.integer({ min: 1 }).default(3),
        retries: v.integer({ min: 1 }).optional(),
        lowLevelRetries: v.integer({ min: 1 }).optional(),
      }),
    })
    .optional(),
};

/** The vars the backup scripts see on a host. @example const cfg = (host.vars as BackupVars).backup; */
export type BackupVars = InferShape<typeof backupVars>;
/** A database host's `backup` var, defaults filled in. @example cfg.remote.keepDays // 30 */
export type BackupConfig = NonNullable<BackupVars['backup']>;

/** The storage keys, from the controller's environment (`.env`), never printed. */
export interface BackupSecrets {
  accessKeyId: Secret;
  secretAccessKey: Secret;
}

/**
 * The remote folder of a host's backups: `REMOTE:BUCKET/PREFIX`, the prefix defaulting to the host's name.
 *
 * @example remoteOf(cfg, 'db1') // { remote: 'r2', bucket: 'acme-backups', prefix: 'db1' }
 */
export function remoteOf(cfg: BackupConfig, host: string): RemoteLocation {
  const r = cfg.remote;
  return {
    remote: r.name,
    bucket: r.bucket,
    prefix: r.prefix ?? host,
    ...(r.retries !== undefined ? { retries: r.retries } : {}),
    ...(r.lowLevelRetries !== undefined ? { lowLevelRetries: r.lowLevelRetries } : {}),
  };
}

/**
 * How to reach the host's PostgreSQL: in its container, or on the host as `osUser`.
 *
 * @example pgTargetOf({ ...cfg, container: 'postgres', dbUser: 'postgres' }) // { via: { kind: 'docker', container: 'postgres' }, connection: { user: 'postgres' } }
 */
export function pgTargetOf(cfg: BackupConfig): PgTarget {
  return {
    via: cfg.container ? { kind: 'docker', container: cfg.container } : { kind: 'host', osUser: cfg.osUser },
    ...(cfg.dbUser ? { connection: { user: cfg.dbUser } } : {}),
  };
}

/**
 * The environment the backup scripts read (process environment, then `.env`): the storage keys.
 *
 * @example const env = loadEnv(backupEnv, { env: process.env, file: '.env' });
 */
export const backupEnv = {
  BACKUP_ACCESS_KEY_ID: { secret: true },
  BACKUP_SECRET_ACCESS_KEY: { secret: true },
} as const;

/**
 * The webhook told about failures (optional; a Slack incoming-webhook URL is a credential, so it is a secret).
 *
 * @example const { BACKUP_WEBHOOK_URL } = loadEnv(webhookEnv, { env: process.env, file: '.env' });
 */
export const webhookEnv = {
  BACKUP_WEBHOOK_URL: { secret: true, optional: true, check: (value: string) => (/^https?:\/\/\S+$/.test(value) ? undefined : 'must be an http(s) URL') },
} as const;
