/**
 * Host-key verification against OpenSSH known_hosts files, for ssh2's `hostVerifier`.
 *
 * Parsing and checking are pure; only `loadKnownHosts` and `appendKnownHost` touch the disk.
 * Format and matching follow sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" and OpenSSH's hostfile.c.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One comma-separated element of a plain hostnames field. */
export interface HostPattern {
  /** Glob with `*` and `?`, possibly in `[host]:port` form; matched case-insensitively. */
  pattern: string;
  /** Written `!pattern`: a host matching it is excluded from the whole line. */
  negated: boolean;
}

/** The hostnames field: a pattern list, or one hashed name (`|1|salt|hmac`). */
export type HostNames =
  | { kind: 'patterns'; patterns: readonly HostPattern[] }
  | { kind: 'hashed'; salt: Buffer; hash: Buffer };

/** `none` is a plain host key; `cert-authority` lines are kept but never match a plain key. */
export type KnownHostMarker = 'none' | 'revoked' | 'cert-authority';

/** One valid known_hosts line. */
export interface KnownHostEntry {
  marker: KnownHostMarker;
  hosts: HostNames;
  /** Key type as written, e.g. `ssh-ed25519`; always equal to the type inside `key`. */
  keyType: string;
  /** Public key in SSH wire format (the decoded base64 field), as ssh2 hands to `hostVerifier`. */
  key: Buffer;
  /** Trailing comment, `''` when there is none. */
  comment: string;
  /** 1-based line number in the parsed text. */
  line: number;
  /** The file the line came from, set by `loadKnownHosts`. */
  file?: string;
}

/** Verdict on a presented host key. */
export type HostKeyCheck =
  | { kind: 'match' }
  | { kind: 'unknown' }
  | { kind: 'changed'; expectedTypes: string[] }
  | { kind: 'revoked' };

const HASH_LEN = 20; // SHA-1 output; OpenSSH rejects salts of any other length
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses known_hosts text. Lines OpenSSH would skip (bad marker, legacy RSA1, malformed key or hash)
 * are skipped here too, so one corrupt line never hides the others.
 *
 * @example
 * const entries = parseKnownHosts(await readFile(path, 'utf8'));
 */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const entry = parseLine(raw.replace(/\r$/, ''), index + 1);
    if (entry) entries.push(entry);
  });
  return entries;
}

function parseLine(raw: string, line: number): KnownHostEntry | undefined {
  let rest = raw.trimStart();
  if (rest === '' || rest.startsWith('#')) return undefined;
  let marker: KnownHostMarker = 'none';
  if (rest.startsWith('@')) {
    const [word = '', after = ''] = splitField(rest);
    if (word === '@revoked') marker = 'revoked';
    else if (word === '@cert-authority') marker = 'cert-authority';
    else return undefined;
    rest = after;
  }
  const [hostField = '', afterHosts = ''] = splitField(rest);
  const [keyType = '', afterType = ''] = splitField(afterHosts);
  const [keyText = '', comment = ''] = splitField(afterType);
  const hosts = parseHostNames(hostField);
  if (!hosts || !BASE64.test(keyText)) return undefined;
  const key = Buffer.from(keyText, 'base64');
  // Like OpenSSH's sshkey_read: the declared type must be the one inside the blob.
  if (wireKeyType(key) !== keyType) return undefined;
  return { marker, hosts, keyType, key, comment: comment.trimEnd(), line };
}

/** Splits off the first space/tab separated field; the rest has its leading blanks removed. */
function splitField(s: string): [string, string] {
  const match = /^([^ \t]+)[ \t]*(.*)$/.exec(s);
  return match ? [match[1] ?? '', match[2] ?? ''] : ['', ''];
}

function parseHostNames(field: string): HostNames | undefined {
  if (field === '') return undefined;
  if (field.startsWith('|')) {
    // sshd(8): a hashed name stands alone on its line, without wildcards or negation.
    const match = /^\|1\|([^|]+)\|([^|]+)$/.exec(field);
    if (!match || !BASE64.test(match[1] ?? '') || !BASE64.test(match[2] ?? '')) return undefined;
    const salt = Buffer.from(match[1] ?? '', 'base64');
    const hash = Buffer.from(match[2] ?? '', 'base64');
    return salt.length === HASH_LEN && hash.length === HASH_LEN ? { kind: 'hashed', salt, hash } : undefined;
  }
  const patterns = field.split(',').map((p) => (p.startsWith('!') ? { pattern: p.slice(1), negated: true } : { pattern: p, negated: false }));
  return { kind: 'patterns', patterns };
}

/**
 * Checks a presented host key as OpenSSH would, with one deliberate difference.
 *
 * - A key listed under `@revoked` for the host is refused, whatever else matches.
 * - A plain entry with the same type and key → `match`.
 * - For a port other than 22 that gives `unknown`, the bare host name is tried too, as OpenSSH does
 *   ("checking without port identifier"); only a match (or, stricter than OpenSSH, a revocation) counts.
 * - The difference: OpenSSH reports HOST_CHANGED whenever the host has a plain entry that differs from
 *   the presented key, even one of another type. tackle says `changed` only when an entry of the
 *   presented key's type exists, and `unknown` when only other types are known, so a server that
 *   gained a new key type can be recorded instead of refused. A caller doing trust-on-first-use should
 *   know that this is weaker than OpenSSH against an attacker who offers a different key type.
 *
 * `expectedTypes` lists every key type known for the host, in file order.
 *
 * @example
 * hostVerifier: (key: Buffer) => checkHostKey(entries, 'web1.example.com', 22, key).kind === 'match'
 */
export function checkHostKey(entries: readonly KnownHostEntry[], host: string, port: number, key: Buffer): HostKeyCheck {
  const keyType = wireKeyType(key);
  if (keyType === undefined) throw new TypeError('checkHostKey: key is not an SSH wire-format public key');
  const exact = checkName(entries, hostPortName(host, port), keyType, key);
  if (exact.kind !== 'unknown' || port === 22) return exact;
  const bare = checkName(entries, hostPortName(host, 22), keyType, key);
  return bare.kind === 'match' || bare.kind === 'revoked' ? bare : exact;
}

function checkName(entries: readonly KnownHostEntry[], name: string, keyType: string, key: Buffer): HostKeyCheck {
  const forHost = entries.filter((e) => hostMatches(e.hosts, name));
  if (forHost.some((e) => e.marker === 'revoked' && e.key.equals(key))) return { kind: 'revoked' };
  const plain = forHost.filter((e) => e.marker === 'none');
  if (plain.some((e) => e.key.equals(key))) return { kind: 'match' };
  if (plain.some((e) => e.keyType === keyType)) {
    return { kind: 'changed', expectedTypes: [...new Set(plain.map((e) => e.keyType))] };
  }
  return { kind: 'unknown' };
}

/**
 * The key types known_hosts holds for a host (plain entries), so the client can ask the server for
 * one of those first, as OpenSSH does; then a key of another type means the known one is gone.
 *
 * @example knownKeyTypes(entries, '10.0.0.5', 22) // ['ssh-ed25519']
 */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const names = port === 22 ? [hostPortName(host, 22)] : [hostPortName(host, port), hostPortName(host, 22)];
  for (const name of names) {
    const types = entries.filter((e) => e.marker === 'none' && hostMatches(e.hosts, name)).map((e) => e.keyType);
    if (types.length > 0) return [...new Set(types)];
  }
  return [];
}

/** Whether a line's hostnames field covers `name` (already in `[host]:port` form when needed). */
function hostMatches(hosts: HostNames, name: string): boolean {
  if (hosts.kind === 'hashed') {
    const digest = createHmac('sha1', hosts.salt).update(name).digest();
    return timingSafeEqual(digest, hosts.hash);
  }
  // OpenSSH's match_pattern_list: any matching negated pattern rejects the line outright.
  let positive = false;
  for (const { pattern, negated } of hosts.patterns) {
    if (!globMatch(name, pattern.toLowerCase())) continue;
    if (negated) return false;
    positive = true;
  }
  return positive;
}

/** `*` and `?` glob without regexes, so hostile patterns cannot backtrack exponentially. */
function globMatch(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starT = t;
    } else if (starP >= 0) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** The name OpenSSH looks up and records: lowercased, `[host]:port` unless the port is 22. */
function hostPortName(host: string, port: number): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`invalid port: ${port}`);
  if (host === '') throw new TypeError('host must not be empty');
  const lower = host.toLowerCase();
  return port === 22 ? lower : `[${lower}]:${port}`;
}

/** The key type named at the start of an SSH wire-format key, or undefined if malformed. */
function wireKeyType(key: Buffer): string | undefined {
  if (key.length < 4) return undefined;
  const len = key.readUInt32BE(0);
  if (len === 0 || len > key.length - 4) return undefined;
  return key.subarray(4, 4 + len).toString('latin1');
}

/**
 * The fingerprint OpenSSH prints: `SHA256:` and unpadded base64 of the key's SHA-256.
 *
 * @example
 * keyFingerprint(key) // 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'
 */
export function keyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/**
 * One unhashed known_hosts line (no newline), as OpenSSH writes with `HashKnownHosts no`.
 *
 * @example
 * formatKnownHostsLine('web1', 2222, key) // '[web1]:2222 ssh-ed25519 AAAAC3Nz…'
 */
export function formatKnownHostsLine(host: string, port: number, key: Buffer): string {
  // These characters would turn a host name into a pattern, a second name or a broken line.
  if (/[\s,*?!#[\]|@]/.test(host)) throw new TypeError(`host cannot be written to known_hosts: ${JSON.stringify(host)}`);
  const keyType = wireKeyType(key);
  if (keyType === undefined) throw new TypeError('formatKnownHostsLine: key is not an SSH wire-format public key');
  return `${hostPortName(host, port)} ${keyType} ${key.toString('base64')}`;
}

/**
 * Appends one line for `host`/`port` to a known_hosts file. A missing file is created with mode 600
 * and missing directories with mode 700 (what OpenSSH uses for ~/.ssh); a last line without a
 * newline is completed first so the two entries do not merge.
 *
 * @example
 * await appendKnownHost(join(home, '.ssh/known_hosts'), 'web1', 22, key);
 */
export async function appendKnownHost(path: string, host: string, port: number, key: Buffer): Promise<void> {
  const line = formatKnownHostsLine(host, port, key);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const file = await open(path, 'a+', 0o600);
  try {
    const { size } = await file.stat();
    let prefix = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      await file.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) prefix = '\n';
    }
    // One write on an O_APPEND descriptor, so a concurrent appender cannot interleave inside it.
    await file.write(`${prefix}${line}\n`);
  } finally {
    await file.close();
  }
}

/**
 * Reads and parses known_hosts files in order, skipping those that do not exist (OpenSSH's
 * defaults name files that usually don't). Other read errors are thrown.
 *
 * @example
 * const entries = await loadKnownHosts([userKnownHosts, '/etc/ssh/ssh_known_hosts']);
 */
export async function loadKnownHosts(paths: string[]): Promise<KnownHostEntry[]> {
  const perFile = await Promise.all(
    paths.map(async (file) => {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return [];
        throw err;
      }
      return parseKnownHosts(text).map((entry) => ({ ...entry, file }));
    }),
  );
  return perFile.flat();
}
