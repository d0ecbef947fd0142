import { sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** A local account as `getent passwd` and `id` see it. */
/** The files `getent` and `id` read for local accounts. */
const ACCOUNT_FILES = ['/etc/passwd', '/etc/group'];

export type UserInfo =
  | { kind: 'missing' }
  | {
      kind: 'user';
      uid: number;
      gid: number;
      /** Name of the primary group (its number when the group has no name). */
      group: string;
      /** Supplementary groups, without the primary group. */
      groups: string[];
      home: string;
      shell: string;
    };

/**
 * The account NAME, read with `getent passwd` and `id` in one command.
 *
 * @example
 * const deploy = await host.fact(userFact('deploy'));
 * if (deploy.kind === 'user') console.log(deploy.home);
 */
export function userFact(name: string): Fact<UserInfo> {
  // `exit` keeps getent's status (2: no such user); the engine runs each fact in its own subshell.
  return defineFact(`users.user ${name}`, sh`getent passwd ${name} || exit; id -gn ${name}; id -Gn ${name}`, (out) => parseUser(name, out), {
    reads: ACCOUNT_FILES,
  });
}

/**
 * Pure parser of {@link userFact}'s output.
 *
 * @example
 * parseUser('deploy', { stdout: 'deploy:x:1001:1001::/home/deploy:/bin/bash\ndeploy\ndeploy sudo\n', stderr: '', exitCode: 0 })
 * // { kind: 'user', uid: 1001, gid: 1001, group: 'deploy', groups: ['sudo'], home: '/home/deploy', shell: '/bin/bash' }
 */
export function parseUser(name: string, { stdout, exitCode }: FactOutput): UserInfo {
  if (stdout.trim() === '') {
    if (exitCode === 2) return { kind: 'missing' };
    throw new Error(`getent passwd exited with code ${exitCode}`);
  }
  // id exits 1 when a group id has no name; it still prints the number, which is good enough.
  if (exitCode !== 0 && exitCode !== 1) throw new Error(`id exited with code ${exitCode}`);
  const [entry = '', group = '', groups = ''] = stdout.split('\n');
  const fields = entry.split(':');
  if (fields.length !== 7) throw new Error(`not a passwd entry: ${JSON.stringify(entry)}`);
  const [login, , uid, gid, , home = '', shell = ''] = fields;
  // getent looks a numeric argument up as a uid; never mistake another account for this one.
  if (login !== name) throw new Error(`getent passwd ${name} returned the entry of ${login}`);
  return {
    kind: 'user',
    uid: toId(uid, 'uid'),
    gid: toId(gid, 'gid'),
    group,
    groups: groups.split(' ').filter((g) => g !== '' && g !== group),
    home,
    shell,
  };
}

function toId(text: string | undefined, what: string): number {
  if (!text || !/^\d+$/.test(text)) throw new Error(`${what} is not a number: ${JSON.stringify(text)}`);
  return Number(text);
}

/** A digest of the account's password hash, so the hash itself never leaves the host. */
export type PasswordDigest = { kind: 'missing' } | { kind: 'hash'; sha256: string };

/**
 * The sha256 (hex) of NAME's crypt hash in /etc/shadow, computed on the host.
 * Compare it with `sha256(desiredHash)`; the hash is never printed (needs root).
 *
 * @example
 * const d = await host.fact(passwordDigestFact('deploy'));
 * const same = d.kind === 'hash' && d.sha256 === createHash('sha256').update(hash.reveal()).digest('hex');
 */
export function passwordDigestFact(name: string): Fact<PasswordDigest> {
  return defineFact(
    `users.passwordDigest ${name}`,
    sh`e=$(getent shadow ${name}) || exit; printf '%s\n' "$e" | cut -d: -f2 | tr -d '\n' | sha256sum`,
    parsePasswordDigest,
    { reads: ['/etc/shadow'] },
  );
}

/**
 * Pure parser of {@link passwordDigestFact}'s output.
 *
 * @example
 * parsePasswordDigest({ stdout: `${'0'.repeat(64)}  -\n`, stderr: '', exitCode: 0 }) // { kind: 'hash', sha256: '000…' }
 */
export function parsePasswordDigest({ stdout, exitCode }: FactOutput): PasswordDigest {
  if (exitCode === 2) return { kind: 'missing' };
  const digest = /^([0-9a-f]{64}) {2}-$/.exec(stdout.trim());
  if (exitCode !== 0 || !digest?.[1]) throw new Error(`unexpected sha256sum output (exit code ${exitCode})`);
  return { kind: 'hash', sha256: digest[1] };
}

/** The state of `~/.ssh/authorized_keys` and of the directory holding it. */
export type AuthorizedKeysInfo =
  | { kind: 'no-user' }
  | { kind: 'user'; home: string; dir: SshDirState };

/** `~/.ssh`: the file inside is only looked at when this is a real directory. */
export type SshDirState =
  | { kind: 'missing' }
  | { kind: 'other'; type: string }
  | { kind: 'directory'; owner: string; mode: string; file: KeysFileState };

/** `authorized_keys`; `mode` is octal without leading zeros, as `stat -c %a` prints it. */
export type KeysFileState =
  | { kind: 'missing' }
  | { kind: 'other'; type: string }
  | { kind: 'file'; owner: string; mode: string; content: string };

/**
 * NAME's home (from passwd), `~/.ssh` and `~/.ssh/authorized_keys`: type, owner,
 * mode and content. Symlinks are reported, never followed, so a user cannot make
 * root read another file through them.
 *
 * @example
 * const keys = await host.fact(authorizedKeysFact('deploy'));
 * if (keys.kind === 'user' && keys.dir.kind === 'directory' && keys.dir.file.kind === 'file') console.log(keys.dir.file.content);
 */
export function authorizedKeysFact(name: string, home?: string): Fact<AuthorizedKeysInfo> {
  const command = sh`e=$(getent passwd ${name}) || { echo no-user; exit 0; }
h=\${e#*:*:*:*:*:}; h=\${h%%:*}; d="$h/.ssh"; f="$d/authorized_keys"
printf 'home %s\n' "$h"
stat -c 'dir %F|%U|%a' -- "$d" 2>/dev/null || echo 'dir missing'
[ -d "$d" ] && [ ! -L "$d" ] || exit 0
stat -c 'file %F|%U|%a' -- "$f" 2>/dev/null || echo 'file missing'
if [ -f "$f" ] && [ ! -L "$f" ]; then echo content; cat -- "$f"; fi`;
  // The account, and the home it has: the one given, else where useradd puts it.
  const dir = home ?? (name === 'root' ? '/root' : `/home/${name}`);
  return defineFact(`users.authorizedKeys ${name}`, command, parseAuthorizedKeys, { reads: [...ACCOUNT_FILES, `${dir}/`] });
}

/**
 * Pure parser of {@link authorizedKeysFact}'s output.
 *
 * @example
 * parseAuthorizedKeys({ stdout: 'home /home/d\ndir missing\n', stderr: '', exitCode: 0 })
 * // { kind: 'user', home: '/home/d', dir: { kind: 'missing' } }
 */
export function parseAuthorizedKeys({ stdout, exitCode }: FactOutput): AuthorizedKeysInfo {
  if (exitCode !== 0) throw new Error(`exited with code ${exitCode}`);
  if (stdout === 'no-user\n') return { kind: 'no-user' };
  const header = (prefix: string, from: number): { value: string; next: number } => {
    const end = stdout.indexOf('\n', from);
    const line = stdout.slice(from, end < 0 ? undefined : end);
    if (!line.startsWith(prefix)) throw new Error(`expected "${prefix}…", got ${JSON.stringify(line)}`);
    return { value: line.slice(prefix.length), next: end < 0 ? stdout.length : end + 1 };
  };
  const home = header('home ', 0);
  const dirLine = header('dir ', home.next);
  const dir = parseStat(dirLine.value);
  if (dir.kind === 'missing') return { kind: 'user', home: home.value, dir };
  if (dir.type !== 'directory') return { kind: 'user', home: home.value, dir: { kind: 'other', type: dir.type } };
  const fileLine = header('file ', dirLine.next);
  const file = parseStat(fileLine.value);
  let fileState: KeysFileState;
  if (file.kind === 'missing') fileState = file;
  else if (file.type === 'regular file' || file.type === 'regular empty file') {
    const content = header('content', fileLine.next);
    fileState = { kind: 'file', owner: file.owner, mode: file.mode, content: stdout.slice(content.next) };
  } else fileState = { kind: 'other', type: file.type };
  return { kind: 'user', home: home.value, dir: { kind: 'directory', owner: dir.owner, mode: dir.mode, file: fileState } };
}

/** One `stat -c '%F|%U|%a'` line, or the word `missing`. */
function parseStat(text: string): { kind: 'missing' } | { kind: 'stat'; type: string; owner: string; mode: string } {
  if (text === 'missing') return { kind: 'missing' };
  const [type, owner, mode] = text.split('|');
  if (!type || !owner || !mode || !/^[0-7]+$/.test(mode)) throw new Error(`unexpected stat output ${JSON.stringify(text)}`);
  return { kind: 'stat', type, owner, mode };
}

/** One key line of an authorized_keys file, split into its parts. */
export interface AuthorizedKey {
  /** The options before the key type (`from="…",no-pty`), or `''`. */
  options: string;
  type: string;
  /** The base64 key blob: with `type`, the key's identity. */
  body: string;
  comment: string;
}

const KEY_TYPE = /^(?:ssh|ecdsa|sk|rsa)-[A-Za-z0-9@.-]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,3}$/;

/**
 * Parses one authorized_keys line as sshd reads it; blank lines, comments and
 * anything that is not a key give `undefined`.
 *
 * @example
 * parseAuthorizedKey('no-pty ssh-ed25519 AAAAC3Nza… me@laptop')
 * // { options: 'no-pty', type: 'ssh-ed25519', body: 'AAAAC3Nza…', comment: 'me@laptop' }
 */
export function parseAuthorizedKey(line: string): AuthorizedKey | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const plain = splitKey('', text);
  if (plain) return plain;
  // Options run to the first blank outside double quotes (command="a b" holds blanks).
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) return splitKey(text.slice(0, i), text.slice(i).trimStart());
  }
  return undefined;
}

function splitKey(options: string, rest: string): AuthorizedKey | undefined {
  const [type = '', body = '', ...comment] = rest.split(/[ \t]+/);
  if (!KEY_TYPE.test(type) || !BASE64.test(body)) return undefined;
  return { options, type, body, comment: comment.join(' ') };
}
