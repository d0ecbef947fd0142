import { posix } from 'node:path';
import { sh, type Command, type Interpolation } from '../command/command.ts';
import type { StoredFile } from './files.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** Where rclone keeps its remotes unless told otherwise: root's config, tackle runs as root. @example rcloneCommand({ remote: 'r2', bucket: 'b-1' }, 'lsd', []) // uses it */
export const DEFAULT_RCLONE_CONFIG = '/root/.config/rclone/rclone.conf';

/**
 * A folder of a bucket on an rclone remote, and how rclone reaches it: `remote:bucket/prefix`
 * with the remotes of `configPath`. `retries`/`lowLevelRetries` are rclone's own (3 and 10 by
 * default; against an endpoint that refuses connections that is minutes of retrying).
 */
export interface RemoteLocation {
  remote: string;
  bucket: string;
  /** A folder inside the bucket, e.g. the host's name; none for the bucket's top. */
  prefix?: string;
  configPath?: string;
  retries?: number;
  lowLevelRetries?: number;
}

// rclone's remote names: letters, digits, '_', '-', '.', '+', '@' (and spaces, not allowed here).
const REMOTE = /^[A-Za-z0-9_.+@][A-Za-z0-9_.+@-]*$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Checks a location; a TypeError names the bad field.
 *
 * @example checkLocation({ remote: 'r2', bucket: 'backups', prefix: 'db1' }, 'rclone.copy')
 */
export function checkLocation(loc: RemoteLocation, where: string): RemoteLocation {
  if (typeof loc !== 'object' || loc === null) throw new TypeError(`${where}: a remote location { remote, bucket, prefix? } is required`);
  if (typeof loc.remote !== 'string' || !REMOTE.test(loc.remote)) throw new TypeError(`${where}: remote must be an rclone remote name (letters, digits, _ . + @ -), got ${JSON.stringify(loc.remote)}`);
  if (typeof loc.bucket !== 'string' || !BUCKET.test(loc.bucket)) throw new TypeError(`${where}: bucket must be an S3 bucket name (3-63 lowercase letters, digits, '.', '-'), got ${JSON.stringify(loc.bucket)}`);
  if (loc.prefix !== undefined && (typeof loc.prefix !== 'string' || loc.prefix.split('/').some((p) => p === '' || p === '.' || p === '..') || /[\0\n\\]/.test(loc.prefix))) {
    throw new TypeError(`${where}: prefix must be folder names separated by '/', got ${JSON.stringify(loc.prefix)}`);
  }
  if (loc.configPath !== undefined && (typeof loc.configPath !== 'string' || !loc.configPath.startsWith('/'))) throw new TypeError(`${where}: configPath must be an absolute path`);
  for (const key of ['retries', 'lowLevelRetries'] as const) {
    const n = loc[key];
    if (n !== undefined && !(Number.isInteger(n) && n >= 1)) throw new TypeError(`${where}: ${key} must be a whole number ≥ 1, got ${String(n)}`);
  }
  return loc;
}

/**
 * `remote:bucket/prefix`, as rclone takes it and as step names show it.
 *
 * @example remotePath({ remote: 'r2', bucket: 'backups', prefix: 'db1' }) // 'r2:backups/db1'
 */
export function remotePath(loc: RemoteLocation, file?: string): string {
  return `${loc.remote}:${posix.join(loc.bucket, loc.prefix ?? '', file ?? '')}`;
}

/**
 * `rclone --config FILE [retries] SUBCOMMAND ARGS…`.
 *
 * @example rcloneCommand(loc, 'lsjson', ['r2:backups/db1']).toString() // 'rclone --config /root/.config/rclone/rclone.conf lsjson r2:backups/db1'
 */
export function rcloneCommand(loc: RemoteLocation, subcommand: string, args: readonly Interpolation[]): Command {
  const retries: Interpolation[] = [
    ...(loc.retries !== undefined ? ['--retries', String(loc.retries)] : []),
    ...(loc.lowLevelRetries !== undefined ? ['--low-level-retries', String(loc.lowLevelRetries)] : []),
  ];
  return sh`rclone ${['--config', loc.configPath ?? DEFAULT_RCLONE_CONFIG, ...retries, subcommand, ...args]}`;
}

/**
 * The files in a remote folder, or why they cannot be listed: `unavailable` when rclone or the
 * remote is not set up on the host (yet: in a dry-run an earlier step installs them), `error`
 * when the remote does not answer as it should (down, refused credentials).
 */
export type RemoteFiles = { kind: 'unavailable'; reason: string } | { kind: 'error'; reason: string } | { kind: 'listing'; files: StoredFile[] };

const NOT_INSTALLED = 100;
const NO_CONFIG = 101;

/**
 * The files directly in a remote folder (`rclone lsjson --files-only`) with size and
 * modification time (rclone keeps a file's mtime in the object's metadata).
 *
 * @example
 * const remote = await host.fact(remoteFiles({ remote: 'r2', bucket: 'backups', prefix: 'db1' }));
 * if (remote.kind === 'listing') groupBackups(remote.files);
 */
export function remoteFiles(loc: RemoteLocation): Fact<RemoteFiles> {
  const config = loc.configPath ?? DEFAULT_RCLONE_CONFIG;
  return defineFact(
    `rclone.files ${config} ${remotePath(loc)}`,
    sh`command -v rclone >/dev/null 2>&1 || exit ${NOT_INSTALLED}; [ -f ${config} ] || exit ${NO_CONFIG}; ${rcloneCommand(loc, 'lsjson', ['--files-only', '--no-mimetype', remotePath(loc)])}`,
    parseRemoteFiles,
    // On the host it reads rclone's config (the remote's files are elsewhere).
    { reads: [config] },
  );
}

/**
 * Pure parser of {@link remoteFiles}.
 *
 * @example parseRemoteFiles({ stdout: '[\n]\n', stderr: '', exitCode: 0 }) // { kind: 'listing', files: [] }
 */
export function parseRemoteFiles({ stdout, stderr, exitCode }: FactOutput): RemoteFiles {
  if (exitCode === NOT_INSTALLED) return { kind: 'unavailable', reason: 'rclone is not installed' };
  if (exitCode === NO_CONFIG) return { kind: 'unavailable', reason: 'the rclone config file does not exist' };
  if (exitCode !== 0 && /didn't find section in config file/.test(stderr)) return { kind: 'unavailable', reason: 'the remote is not in the rclone config' };
  // A missing folder (or bucket) holds no files.
  if (exitCode === 3 && /directory not found/.test(stderr)) return { kind: 'listing', files: [] };
  if (exitCode !== 0) return { kind: 'error', reason: lastLine(stderr) || `rclone lsjson exited with code ${exitCode}` };
  const entries = JSON.parse(stdout) as unknown;
  if (!Array.isArray(entries)) throw new Error(`unexpected lsjson output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return {
    kind: 'listing',
    files: entries.map((e: { Name?: unknown; Size?: unknown; ModTime?: unknown }) => {
      const mtimeMs = typeof e.ModTime === 'string' ? Date.parse(e.ModTime) : NaN;
      if (typeof e.Name !== 'string' || typeof e.Size !== 'number' || Number.isNaN(mtimeMs)) throw new Error(`unexpected lsjson entry: ${JSON.stringify(e).slice(0, 200)}`);
      return { name: e.Name, size: e.Size, mtimeMs };
    }),
  };
}

/** rclone logs with a date prefix; the last line says why it gave up. */
function lastLine(text: string): string {
  const line = text.trim().split('\n').at(-1) ?? '';
  return line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '');
}
