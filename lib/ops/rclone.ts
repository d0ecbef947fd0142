import { Buffer } from 'node:buffer';
import { posix } from 'node:path';
import { Command, Secret, raw, secret, sh } from '../command/command.ts';
import { defineOperation, UNKNOWN, type Change, type CommonOptions, type Operation } from './operation.ts';
import { checkPolicy, planPrune, withNewFiles, type RetentionPolicy } from './retention.ts';
import { pathInfo } from '../facts/files.ts';
import { pathPresenceFact } from '../facts/shell.ts';
import { DEFAULT_RCLONE_CONFIG, checkLocation, rcloneCommand, remoteFiles, remotePath, type RemoteFiles, type RemoteLocation } from '../facts/rclone.ts';
import { fileDiff } from './diff.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';

/** S3-compatible providers rclone 1.60 knows by name; `Other` for any other endpoint (MinIO, s3rver…). */
export type S3Provider = 'Cloudflare' | 'AWS' | 'Minio' | 'Wasabi' | 'DigitalOcean' | 'Other';
const PROVIDERS: readonly S3Provider[] = ['Cloudflare', 'AWS', 'Minio', 'Wasabi', 'DigitalOcean', 'Other'];

/** An S3-compatible remote for rclone. @example rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId, accessKeyId, secretAccessKey }) */
export interface RemoteOptions extends CommonOptions {
  /** The remote's name in rclone (`r2` → `r2:bucket/…`). */
  name: string;
  provider: S3Provider;
  /** Cloudflare account id: the endpoint becomes `https://ACCOUNT.r2.cloudflarestorage.com`. */
  accountId?: string;
  /** The S3 endpoint URL (any provider; required for `Other`, `Minio`…). */
  endpoint?: string;
  accessKeyId: Secret;
  secretAccessKey: Secret;
  /** Default `auto`, as R2 wants. */
  region?: string;
  /** The rclone config file to keep the remote in (default root's); written mode 600. */
  configPath?: string;
}

const REMOTE_NAME = /^[A-Za-z0-9_.+@][A-Za-z0-9_.+@-]*$/;
const MASK = '***';
// Values rclone keeps in its config that are secrets, masked in diffs.
const SECRET_KEYS = new Set(['access_key_id', 'secret_access_key', 'session_token', 'pass', 'password', 'token']);

function checkSecret(value: unknown, field: string, where: string): Secret {
  if (!(value instanceof Secret)) throw refuse(where, `${field} must be a secret(...) (it is never printed)`);
  // Its value is never put in a message; a newline would end the config line early.
  if (value.reveal() === '' || /[\n\r]/.test(value.reveal()) || value.reveal().trim() !== value.reveal()) throw refuse(where, `${field} is empty or has white space around it or a line break in it`);
  return value;
}

/** The `key = value` lines of the remote's section; secrets stay Secret values. */
function remoteSection(o: RemoteOptions, where: string): Array<[string, string | Secret]> {
  if (!PROVIDERS.includes(o.provider)) throw refuse(where, `provider must be one of ${PROVIDERS.join(', ')}, got ${JSON.stringify(o.provider)}`);
  if (o.accountId !== undefined && (o.provider !== 'Cloudflare' || !/^[0-9a-f]{32}$/.test(o.accountId))) {
    throw refuse(where, `accountId is a Cloudflare account id (32 hex digits) and needs provider 'Cloudflare'`);
  }
  if (o.endpoint !== undefined && (typeof o.endpoint !== 'string' || !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(o.endpoint))) throw refuse(where, `endpoint must be an http(s) URL, got ${JSON.stringify(o.endpoint)}`);
  const endpoint = o.endpoint ?? (o.accountId ? `https://${o.accountId}.r2.cloudflarestorage.com` : undefined);
  if (endpoint === undefined && o.provider !== 'AWS') throw refuse(where, `provider ${o.provider} needs an endpoint${o.provider === 'Cloudflare' ? ' or an accountId' : ''}`);
  const region = o.region ?? 'auto';
  if (!/^[a-z0-9-]+$/.test(region)) throw refuse(where, `region must be a region name such as auto or eu-west-1, got ${JSON.stringify(region)}`);
  return [
    ['type', 's3'],
    ['provider', o.provider],
    ['access_key_id', checkSecret(o.accessKeyId, 'accessKeyId', where)],
    ['secret_access_key', checkSecret(o.secretAccessKey, 'secretAccessKey', where)],
    ...(endpoint ? [['endpoint', endpoint] as [string, string]] : []),
    ['region', region],
    // R2 keys scoped to a bucket may not create or even look for buckets.
    ['no_check_bucket', 'true'],
  ];
}

/**
 * Pure: `text` with the `[name]` section replaced by `section` (or appended), every other line
 * kept as it was, so remotes configured by hand survive.
 *
 * @example replaceSection('[a]\ntype = s3\n', 'b', '[b]\ntype = s3\n') // '[a]\ntype = s3\n\n[b]\ntype = s3\n'
 */
export function replaceSection(text: string, name: string, section: string): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const header = (l: string) => /^\s*\[.*\]\s*$/.test(l);
  const start = lines.findIndex((l) => l.trim() === `[${name}]`);
  if (start < 0) {
    const before = lines.length ? `${lines.join('\n')}\n${lines.at(-1)?.trim() === '' ? '' : '\n'}` : '';
    return `${before}${section}`;
  }
  let end = start + 1;
  while (end < lines.length && !header(lines[end] as string)) end++;
  // Blank lines that separated this section from the next one stay between them.
  let keep = end;
  while (keep > start + 1 && (lines[keep - 1] as string).trim() === '') keep--;
  const after = lines.slice(keep);
  return [...lines.slice(0, start), ...section.replace(/\n$/, '').split('\n'), ...after].join('\n') + '\n';
}

function maskConfig(text: string): string {
  return text.replace(/^(\s*([A-Za-z_]+)\s*=\s*)(.*)$/gm, (line, lead: string, key: string) => (SECRET_KEYS.has(key.toLowerCase()) ? `${lead}${MASK}` : line));
}

/**
 * Configures an S3-compatible rclone remote (Cloudflare R2 by default wording: provider
 * `Cloudflare`, endpoint from the account id, region `auto`, `no_check_bucket = true`) as one
 * section of the rclone config file, written atomically with mode 600 through files.file. The
 * keys are secrets: the diff shows the section with them as `***`, and nothing else prints them.
 * Other sections of the file are kept.
 *
 * @example
 * await host.run(rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId: env.R2_ACCOUNT_ID, accessKeyId: env.R2_KEY_ID, secretAccessKey: env.R2_SECRET }));
 */
function remote(options: RemoteOptions): Operation {
  const where = 'rclone.remote';
  if (typeof options.name !== 'string' || !REMOTE_NAME.test(options.name)) throw refuse(where, `name must be an rclone remote name (letters, digits, _ . + @ -), got ${JSON.stringify(options.name)}`);
  const configPath = options.configPath ?? DEFAULT_RCLONE_CONFIG;
  if (!configPath.startsWith('/')) throw refuse(where, 'configPath must be an absolute path');
  const lines = remoteSection(options, where);
  const section = `[${options.name}]\n${lines.map(([k, v]) => `${k} = ${v instanceof Secret ? v.reveal() : v}`).join('\n')}\n`;
  const endpoint = lines.find(([k]) => k === 'endpoint')?.[1];
  return defineOperation({
    name: `${where} ${options.name}`,
    // The file's new content comes from its current one: files.file is built when planning, from this fact.
    facts: { config: pathInfo(configPath) },
    // Not `options` itself: its `name` is the remote's, not a step name.
    options: { notify: options.notify },
    plan: ({ config }, part) => {
      if (config.kind === 'file' && config.content === undefined) throw refuse(where, `${configPath} is too large to edit (${config.size} bytes)`);
      const current = config.kind === 'file' ? Buffer.from(config.content as string, 'base64').toString() : '';
      const next = replaceSection(current, options.name, section);
      const change = part(files.file({ path: configPath, content: secret(next), mode: '0600' }));
      if (!change) return undefined;
      const diff = fileDiff(configPath, config.kind === 'file' ? current : undefined, next, { mask: maskConfig });
      // rclone's config directory does not exist on a fresh host.
      const mkdir = config.kind === 'missing' ? [{ command: sh`mkdir -p -m 0700 -- ${posix.dirname(configPath)}` }] : [];
      return {
        summary: `${config.kind === 'missing' || !current.includes(`[${options.name}]`) ? 'add' : 'update'} remote ${options.name} (${options.provider}${endpoint ? `, ${String(endpoint)}` : ''}) in ${configPath}: ${change.summary}`,
        actions: [...mkdir, ...change.actions],
        diff,
        effects: { writes: [posix.dirname(configPath), configPath] },
      };
    },
  });
}

/** A fixed list of file names written to a temporary file for `--files-from-raw`, removed on exit. */
function withFileList(names: readonly string[], body: readonly Command[]): Command {
  return Command.join(
    [
      sh`set -u`,
      sh`tackle_list=$(mktemp) || exit 1`,
      sh`trap 'rm -f -- "$tackle_list"' EXIT`,
      sh`trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM`,
      // Files fetched from the remote are backups: readable by root only.
      sh`umask 077`,
      sh`printf '%s\\n' ${[...names]} > "$tackle_list" || exit 1`,
      ...body,
    ],
    '\n',
  );
}

function checkNames(names: unknown, where: string): string[] {
  if (!Array.isArray(names) || names.length === 0) throw refuse(where, 'files must be a non-empty list of file names');
  for (const n of names) if (typeof n !== 'string' || n === '' || n.includes('/') || /[\0\n]/.test(n) || n === '.' || n === '..') throw refuse(where, `${JSON.stringify(n)} is not a file name (no directories)`);
  return [...names] as string[];
}

function checkDir(dir: unknown, where: string): string {
  if (typeof dir !== 'string' || !dir.startsWith('/') || /[\0\n]/.test(dir)) throw refuse(where, `directory must be an absolute path, got ${JSON.stringify(dir)}`);
  return posix.normalize(dir).replace(/(.)\/+$/, '$1');
}

/** The checked arguments of an upload or its check. */
function transfer(options: CopyOptions, where: string): { where: string; dir: string; names: string[]; to: RemoteLocation } {
  return { where, dir: checkDir(options.from, where), names: checkNames(options.files, where), to: checkLocation(options.to, where) };
}

/** Files of a local directory and the remote folder they go to. @example rclone.copy({ from: '/var/backups/postgresql', files: ['a.dump'], to: loc }) */
export interface CopyOptions extends CommonOptions {
  /** The local directory the files are in. */
  from: string;
  /** File names in `from`: only these are copied. */
  files: readonly string[];
  to: RemoteLocation;
}

/**
 * Uploads the given files with `rclone copy --files-from-raw` (never `sync`: nothing on the
 * remote is ever deleted by an upload). A missing file fails the step before anything is sent.
 * Always acts: an upload is a runbook step; follow it with {@link check}.
 *
 * @example
 * await host.run(rclone.copy({ from: '/var/backups/postgresql', files: [name, `${name}.sha256`], to: { remote: 'r2', bucket: 'backups', prefix: 'db1' } }));
 */
function copy(options: CopyOptions): Operation {
  const { where, dir, names, to } = transfer(options, 'rclone.copy');
  const command = withFileList(names, [
    sh`for tackle_f in ${names.map((n) => posix.join(dir, n))}; do [ -f "$tackle_f" ] || { printf 'tackle: %s is missing; nothing uploaded\\n' "$tackle_f" >&2; exit 1; }; done`,
    rcloneCommand(to, 'copy', ['--files-from-raw', raw('"$tackle_list"'), '--no-traverse', dir, remotePath(to)]),
  ]);
  return defineOperation({
    name: `${where} ${dir} → ${remotePath(to)}`,
    facts: {},
    options,
    plan: () => ({
      summary: `upload ${names.join(', ')} to ${remotePath(to)}`,
      actions: [{ command }],
      // The files join the remote folder's listing, which remote retention plans from.
      effects: { update: { [remoteFiles(to).key]: (before: RemoteFiles) => (before.kind === 'listing' ? { ...before, files: withNewFiles(before.files, names) } : UNKNOWN) } },
    }),
  });
}

/** Uploaded files to verify, and how. @example rclone.check({ from: dir, files, to: loc, method: 'download' }) */
export interface CheckOptions extends CopyOptions {
  /** `download` compares the bytes themselves instead of size and checksum (for remotes without MD5). */
  method?: 'checksum' | 'download';
}

/**
 * Verifies uploaded files: `rclone check --one-way` of exactly these files compares size and
 * MD5 with the remote's (S3 ETags and rclone's own MD5 metadata), and fails when any differs or
 * is missing, or when no checksum could be compared at all (then size alone would "pass").
 * Always acts.
 *
 * @example
 * await host.run(rclone.check({ from: '/var/backups/postgresql', files: [name, `${name}.sha256`], to: loc }));
 */
function check(options: CheckOptions): Operation {
  const { where, dir, names, to } = transfer(options, 'rclone.check');
  const download = options.method === 'download';
  const command = withFileList(names, [
    sh`tackle_out=$(${rcloneCommand(to, 'check', ['--one-way', ...(download ? ['--download'] : []), '--files-from-raw', raw('"$tackle_list"'), dir, remotePath(to)])} 2>&1)`,
    sh`tackle_rc=$?`,
    sh`printf '%s\\n' "$tackle_out" >&2`,
    sh`[ "$tackle_rc" -eq 0 ] || { printf 'tackle: the remote copy differs from the local files or is missing (rclone check exit %s)\\n' "$tackle_rc" >&2; exit 1; }`,
    sh`case $tackle_out in *'hashes could not be checked'*|*'No common hash'*) printf 'tackle: no checksum could be compared, only sizes; use method download\\n' >&2; exit 1;; esac`,
  ]);
  return defineOperation({
    name: `${where} ${dir} ↔ ${remotePath(to)}`,
    facts: {},
    options,
    // It only reads: every fact stays as it was.
    plan: () => ({ summary: `verify ${names.join(', ')} on ${remotePath(to)} (${download ? 'download and compare' : 'size and checksum'})`, actions: [{ command }], effects: {} }),
  });
}

/** Remote retention of a folder. @example rclone.prune({ location: loc, keepDays: 30, keepAtLeast: 3 }) */
export interface RemotePruneOptions extends CommonOptions, Partial<RetentionPolicy> {
  location: RemoteLocation;
  now?: Date;
}

/**
 * Remote retention: deletes backups in the remote folder that {@link selectRetention} lets go,
 * by default older than 30 days and not among the newest 3 verified (dump and `.sha256` both
 * there). Run it only after a verified upload in the same run (the nightly script does). A
 * remote that cannot be listed fails the step; one not set up yet (rclone or its config
 * missing, as in a dry-run on a fresh host) plans nothing, which never loses a backup.
 *
 * @example
 * await host.run(rclone.prune({ location: { remote: 'r2', bucket: 'backups', prefix: 'db1' }, keepDays: 30 }));
 */
function prune(options: RemotePruneOptions): Operation {
  const where = 'rclone.prune';
  const loc = checkLocation(options.location, where);
  const policy = checkPolicy({ keepDays: options.keepDays ?? 30, keepAtLeast: options.keepAtLeast ?? 3 }, where);
  return defineOperation({
    name: `${where} ${remotePath(loc)}`,
    facts: { listing: remoteFiles(loc) },
    options,
    plan: ({ listing }) => {
      if (listing.kind === 'unavailable') return undefined;
      if (listing.kind === 'error') throw refuse(where, `cannot list ${remotePath(loc)}: ${listing.reason}`);
      const prune = planPrune(listing.files, policy, { now: options.now ?? new Date() });
      if (!prune) return undefined;
      const deletes = prune.files.map((n) => rcloneCommand(loc, 'deletefile', [remotePath(loc, n)]));
      const gone = (before: RemoteFiles) => (before.kind === 'listing' ? { ...before, files: before.files.filter((f) => !prune.files.includes(f.name)) } : before);
      return { summary: prune.summary, actions: [{ command: Command.join(deletes, ' && ') }], effects: { update: { [remoteFiles(loc).key]: gone } } };
    },
  });
}

/** Files to fetch from a remote folder into a local directory. @example rclone.download({ from: loc, files: ['a.dump', 'a.dump.sha256'], to: dir }) */
export interface DownloadOptions extends CommonOptions {
  from: RemoteLocation;
  /** File names in the remote folder. */
  files: readonly string[];
  /** The local directory; it must exist. */
  to: string;
}

/**
 * Fetches files from a remote folder into a local directory unless they are all there already
 * (then no change). Only the missing ones are copied; check their content afterwards (a dump's
 * `.sha256`, as postgres.restore does).
 *
 * @example
 * await host.run(rclone.download({ from: loc, files: [name, `${name}.sha256`], to: '/var/backups/postgresql' }));
 */
function download(options: DownloadOptions): Operation {
  const where = 'rclone.download';
  const loc = checkLocation(options.from, where);
  const names = checkNames(options.files, where);
  const dir = checkDir(options.to, where);
  const facts = Object.fromEntries(names.map((n, i) => [`f${i}`, pathPresenceFact(posix.join(dir, n))]));
  return defineOperation({
    name: `${where} ${remotePath(loc)} → ${dir}`,
    facts,
    options,
    plan: (present): Change | undefined => {
      const missing = names.filter((_, i) => present[`f${i}`]?.kind !== 'exists');
      if (missing.length === 0) return undefined;
      const command = withFileList(missing, [rcloneCommand(loc, 'copy', ['--files-from-raw', raw('"$tackle_list"'), '--no-traverse', remotePath(loc), dir])]);
      return { summary: `download ${missing.join(', ')} from ${remotePath(loc)} to ${dir}`, actions: [{ command }] };
    },
  });
}

/**
 * rclone operations for backups on S3-compatible storage (Cloudflare R2 and others).
 *
 * @example
 * await host.run(rclone.remote({ name: 'r2', provider: 'Cloudflare', accountId, accessKeyId, secretAccessKey }));
 * await host.run(rclone.copy({ from: dir, files, to: loc }));
 * await host.run(rclone.check({ from: dir, files, to: loc }));
 */
export const rclone = { remote, copy, check, prune, download };

