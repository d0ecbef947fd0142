import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Command, Secret, secret, sh } from '../command/command.ts';
import { TEMP, digestOf, receiveWhole, replaceScript } from '../connection/replace.ts';
import { defineOperation, type Action, type Change, type CommonOptions, type Effects, type Operation } from './operation.ts';
import {
  authorizedKeysFact,
  parseAuthorizedKey,
  passwordDigestFact,
  userFact,
  type AuthorizedKey,
  type AuthorizedKeysInfo,
  type PasswordDigest,
  type UserInfo,
} from '../facts/users.ts';
import { fileDiff } from './diff.ts';
import { sudoer } from './sudoers.ts';
import { refuse } from './refuse.ts';

/**
 * Desired state of a local account. `name` is the account's name, so the step
 * name (`users.user NAME`) cannot be overridden here.
 */
export interface UserOptions extends Omit<CommonOptions, 'name'> {
  name: string;
  /** `false` removes the account. Default `true`. */
  present?: boolean;
  uid?: number;
  /** Primary group, by name or number; it must exist. Default on creation: a new group named like the user. */
  group?: string;
  /** Supplementary groups; they must exist (they are not created, as in Ansible). */
  groups?: readonly string[];
  /** `true` (default): add to `groups`, never remove others. `false`: exactly `groups`. */
  append?: boolean;
  shell?: string;
  /** Home directory. Changing it on an existing account does not move files. */
  home?: string;
  /** Create the home directory when creating the account. Default `true`. */
  createHome?: boolean;
  /** Create a system account (low uid, no aging); only has effect on creation. */
  system?: boolean;
  /** A crypt(3) hash (`$y$…`, `$6$…`, or `!`/`*` for locked), never a plain password. */
  password?: Secret;
  /** With `present: false`, also delete the home directory and mail spool. */
  removeHome?: boolean;
}

// Debian's useradd accepts a little more with --badname; this keeps names that need no care anywhere.
const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$|^[A-Za-z_][A-Za-z0-9_.-]{0,30}\$$/;

function checkName(value: unknown, what: string, where: string): asserts value is string {
  if (typeof value !== 'string' || !ACCOUNT_NAME.test(value)) {
    throw refuse(where, `${what} must be a user or group name such as "deploy" (got ${JSON.stringify(value)})`);
  }
}

/**
 * Ensures a local account exists with these properties (`useradd`/`usermod`),
 * or is absent (`userdel`). Only the properties you pass are managed.
 * Groups named in `group`/`groups` must already exist: like Ansible, a missing
 * group is not created and the step fails with useradd's "group 'x' does not exist".
 * The password is a crypt hash sent with `chpasswd -e` on stdin; it is compared
 * through a sha256 digest computed on the host, so it never appears in output.
 *
 * @example
 * await host.run(users.user({ name: 'deploy', groups: ['sudo'], shell: '/bin/bash', password: secret(host.vars.deployHash) }));
 * await host.run(users.user({ name: 'olduser', present: false, removeHome: true }));
 */
function user(options: UserOptions): Operation {
  const { name } = options;
  const where = `users.user ${String(name)}`;
  checkName(name, 'name', where);
  if (options.group !== undefined && !/^\d+$/.test(options.group)) checkName(options.group, 'group', where);
  options.groups?.forEach((g) => checkName(g, 'each of groups', where));
  if (options.uid !== undefined && !(Number.isSafeInteger(options.uid) && options.uid >= 0)) {
    throw refuse(where, 'uid must be a non-negative integer');
  }
  const { password } = options;
  if (password !== undefined) checkPasswordHash(password, where);
  const opts = { notify: options.notify };
  const facts = { user: userFact(name) };
  // Read the shadow digest only when a password is managed.
  if (password === undefined || options.present === false) {
    return defineOperation({ name: where, facts, options: opts, plan: ({ user }) => planUser(options, user, undefined) });
  }
  return defineOperation({
    name: where,
    facts: { ...facts, password: passwordDigestFact(name) },
    options: opts,
    plan: ({ user, password: digest }) => planUser(options, user, digest),
  });
}

function checkPasswordHash(password: unknown, where: string): void {
  if (!(password instanceof Secret)) throw refuse(where, 'password must be a secret(), so it is never printed');
  const hash = password.reveal();
  // The message never contains the value: it may be a plain password given by mistake.
  if (!/^(?:[!*]|\$[A-Za-z0-9]+\$)/.test(hash) || /[:\n]/.test(hash)) {
    throw refuse(where, `password must be a crypt(3) hash such as $y$… or $6$… (mkpasswd, openssl passwd -6), not a plain password`);
  }
}

function planUser(o: UserOptions, current: UserInfo, digest: PasswordDigest | undefined): Change | undefined {
  const { name } = o;
  if (o.present === false) {
    if (current.kind === 'missing') return undefined;
    return {
      summary: `remove user ${name}${o.removeHome ? ' and its home' : ''}`,
      actions: [{ command: sh`userdel ${[...(o.removeHome ? ['-r'] : []), name]}` }],
      effects: accountEffects(o.removeHome ? current.home : undefined),
    };
  }
  const setPassword: Action[] =
    o.password && !(digest?.kind === 'hash' && digest.sha256 === sha256(o.password.reveal()))
      ? [{ command: sh`chpasswd -e`, stdin: secret(`${name}:${o.password.reveal()}\n`) }]
      : [];
  if (current.kind === 'missing') {
    const flags = [
      ...(o.uid !== undefined ? ['-u', String(o.uid)] : []),
      ...(o.group !== undefined ? ['-g', o.group] : []),
      ...(o.groups?.length ? ['-G', o.groups.join(',')] : []),
      ...(o.shell !== undefined ? ['-s', o.shell] : []),
      ...(o.home !== undefined ? ['-d', o.home] : []),
      ...(o.system ? ['-r'] : []),
      o.createHome === false ? '-M' : '-m',
    ];
    const home = o.home ?? `/home/${name}`;
    // useradd -m copies /etc/skel, which has no .ssh: the keys step after it starts from nothing.
    const keys: AuthorizedKeysInfo = { kind: 'user', home, dir: { kind: 'missing' } };
    const effects = accountEffects(home);
    return {
      summary: `create user ${name}`,
      actions: [{ command: sh`useradd ${[...flags, name]}` }, ...setPassword],
      effects: { ...effects, facts: { [authorizedKeysFact(name).key]: keys } },
    };
  }
  const flags: string[] = [];
  const said: string[] = [];
  const change = (flag: string, value: string, what: string): void => {
    flags.push(flag, value);
    said.push(what);
  };
  if (o.uid !== undefined && o.uid !== current.uid) change('-u', String(o.uid), `uid ${current.uid} → ${o.uid}`);
  const newGroup = o.group === current.group || o.group === String(current.gid) ? undefined : o.group;
  if (newGroup !== undefined) change('-g', newGroup, `group ${current.group} → ${newGroup}`);
  // The primary group is a membership too; listing it in `groups` must not cause a change every run.
  const primary = newGroup ?? current.group;
  const wanted = [...new Set(o.groups ?? [])].filter((g) => g !== primary);
  if (o.append === false && o.groups !== undefined) {
    const same = wanted.length === current.groups.length && wanted.every((g) => current.groups.includes(g));
    if (!same) change('-G', wanted.join(','), `groups ${current.groups.join(',') || '(none)'} → ${wanted.join(',') || '(none)'}`);
  } else {
    const missing = wanted.filter((g) => !current.groups.includes(g));
    if (missing.length) {
      flags.push('-a');
      change('-G', missing.join(','), `add to ${missing.join(', ')}`);
    }
  }
  if (o.shell !== undefined && o.shell !== current.shell) change('-s', o.shell, `shell ${current.shell} → ${o.shell}`);
  if (o.home !== undefined && o.home !== current.home) change('-d', o.home, `home ${current.home} → ${o.home}`);
  if (setPassword.length) said.push('set password');
  if (said.length === 0) return undefined;
  const usermod: Action[] = flags.length ? [{ command: sh`usermod ${[...flags, name]}` }] : [];
  const moved = o.home !== undefined && o.home !== current.home;
  // Shell, groups or password: the account's authorized keys stay where and what they were.
  const effects: Effects = moved ? accountEffects(o.home) : { ...accountEffects(undefined), update: { [authorizedKeysFact(name).key]: (before: AuthorizedKeysInfo) => before } };
  return { summary: `update user ${name}: ${said.join(', ')}`, actions: [...usermod, ...setPassword], effects };
}

// The account databases, and the home a user gets or loses.
function accountEffects(home: string | undefined): Effects {
  return { writes: ['/etc/passwd', '/etc/group', '/etc/shadow', '/etc/gshadow', '/etc/subuid', '/etc/subgid', ...(home ? [`${home}/`] : [])] };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Desired keys of one account's `~/.ssh/authorized_keys`. */
export interface AuthorizedKeysOptions extends CommonOptions {
  /**
   * The account, or the options given to `users.user` for it: its `home` is used
   * when the account does not exist yet (dry-run on a fresh host), else `/home/NAME`.
   */
  user: string | { readonly name: string; readonly home?: string };
  /** Public key lines (`[options] type base64 [comment]`), one key each. */
  keys: readonly string[];
  /** `true`: the file holds exactly these keys. Default `false`: other keys stay. Only with `state: 'present'`. */
  exclusive?: boolean;
  /** `'absent'` removes the given keys. Default `'present'`. */
  state?: 'present' | 'absent';
}

interface WantedKey {
  line: string;
  key: AuthorizedKey;
}

const identity = (k: AuthorizedKey): string => `${k.type} ${k.body}`;

/**
 * Ensures keys are (or are not) in a user's `~/.ssh/authorized_keys`.
 * Keys are the same when type and base64 body match; a kept key whose options
 * differ from the wanted line is rewritten (options restrict what a key may do),
 * a different comment alone changes nothing. `~/.ssh` is made mode 700 and the
 * file mode 600, both owned by the user. The file is replaced atomically (temp
 * file + `mv` in `~/.ssh`), written as the user with `runuser`, so a user's
 * symlink cannot redirect root's write; a symlinked `~/.ssh` or file is an error.
 *
 * @example
 * await host.run(users.authorizedKeys({ user: 'deploy', keys: ['ssh-ed25519 AAAAC3Nza… ci@example'] }));
 * await host.run(users.authorizedKeys({ user: deployUser, keys: team, exclusive: true }));
 */
function authorizedKeys(options: AuthorizedKeysOptions): Operation {
  const account = typeof options.user === 'string' ? { name: options.user } : options.user;
  const { name } = account;
  const where = `users.authorizedKeys ${String(name)}`;
  checkName(name, 'user', where);
  const state = options.state ?? 'present';
  if (state === 'absent' && options.exclusive) throw refuse(where, `exclusive only applies to state 'present'`);
  const wanted = new Map<string, WantedKey>();
  options.keys.forEach((text, i) => {
    const line = text.trim();
    const key = line.includes('\n') ? undefined : parseAuthorizedKey(line);
    if (!key) throw refuse(where, `keys[${i}] is not one OpenSSH public key line ("[options] type base64 [comment]")`);
    if (!wanted.has(identity(key))) wanted.set(identity(key), { line, key });
  });
  return defineOperation({
    name: where,
    facts: { keys: authorizedKeysFact(name, account.home) },
    options,
    plan: ({ keys }) =>
      planAuthorizedKeys({ name, home: account.home, wanted, state, exclusive: options.exclusive ?? false }, keys),
  });
}

interface KeysPlanInput {
  name: string;
  home: string | undefined;
  wanted: ReadonlyMap<string, WantedKey>;
  state: 'present' | 'absent';
  exclusive: boolean;
}

function planAuthorizedKeys(o: KeysPlanInput, info: AuthorizedKeysInfo): Change | undefined {
  const { name } = o;
  if (info.kind === 'no-user' && o.state === 'absent') return undefined;
  // No account yet (an earlier step may only have planned it): plan for the home it will get.
  const home = info.kind === 'user' ? info.home : (o.home ?? `/home/${name}`);
  const dir = info.kind === 'user' ? info.dir : ({ kind: 'missing' } as const);
  const dirPath = posix.join(home, '.ssh');
  const filePath = posix.join(dirPath, 'authorized_keys');
  if (dir.kind === 'other') throw refuse('users.authorizedKeys', `${dirPath} is a ${dir.type}, not a directory; refusing to write authorized_keys through it`);
  const file = dir.kind === 'directory' ? dir.file : ({ kind: 'missing' } as const);
  if (file.kind === 'other') throw refuse('users.authorizedKeys', `${filePath} is a ${file.type}, not a regular file; refusing to write authorized_keys through it`);

  const before = file.kind === 'file' ? file.content : '';
  const edit = o.state === 'present' ? mergeKeys(splitLines(before), o.wanted, o.exclusive) : removeKeys(splitLines(before), o.wanted);
  const changed = edit.added + edit.updated + edit.removed + edit.dropped > 0;
  const managing = changed || (o.state === 'present' && file.kind === 'file');
  if (!managing) return undefined;
  const write = changed || (file.kind === 'file' && (file.owner !== name || file.mode !== '600'));

  const asRoot: Command[] = [];
  if (info.kind === 'no-user') asRoot.push(sh`id -u ${name} >/dev/null`);
  if (dir.kind === 'missing') asRoot.push(sh`mkdir -m 700 ${dirPath}`);
  if (dir.kind === 'missing' || dir.owner !== name) asRoot.push(sh`chown -h ${name}: ${dirPath}`);
  // Root only creates and chowns (chown -h never follows a link); the user does the rest.
  const after = edit.lines.length ? `${edit.lines.join('\n')}\n` : '';
  const asUser: Command[] = [];
  if (dir.kind === 'directory' && dir.mode !== '700') asUser.push(sh`chmod 700 ${dirPath}`);
  // mktemp makes the new file 0600, owned by the user; it replaces the old one only when whole.
  if (write) asUser.push(replaceScript(filePath, [receiveWhole(TEMP, digestOf(after))]));
  if (asRoot.length === 0 && asUser.length === 0) return undefined;

  const actions: Action[] = [];
  if (asRoot.length) actions.push({ command: Command.join(asRoot, ' && ') });
  if (asUser.length) {
    const command = sh`runuser -u ${name} -- sh -c ${Command.join([sh`set -e`, ...asUser], '\n').asArgument()}`;
    actions.push(write ? { command, stdin: after } : { command });
  }
  const said = [
    ...(edit.added ? [`add ${count(edit.added)}`] : []),
    ...(edit.updated ? [`update options of ${count(edit.updated)}`] : []),
    ...(edit.removed ? [`remove ${count(edit.removed)}`] : []),
    ...(edit.dropped ? [`drop ${edit.dropped} other line${edit.dropped === 1 ? '' : 's'}`] : []),
  ];
  const summary = `${filePath}: ${said.length ? said.join(', ') : 'fix owner and mode'}`;
  // The file as the step leaves it: what a later keys step of the same user starts from.
  const keys: AuthorizedKeysInfo = { kind: 'user', home, dir: { kind: 'directory', owner: name, mode: '700', file: { kind: 'file', owner: name, mode: '600', content: after } } };
  return {
    summary,
    actions,
    ...(changed ? { diff: fileDiff(filePath, file.kind === 'file' ? before : undefined, after) } : {}),
    effects: { facts: { [authorizedKeysFact(name).key]: keys }, writes: [`${dirPath}/`] },
  };
}


function count(n: number): string {
  return `${n} key${n === 1 ? '' : 's'}`;
}

function splitLines(content: string): string[] {
  if (content === '') return [];
  return (content.endsWith('\n') ? content.slice(0, -1) : content).split('\n');
}

interface KeysEdit {
  lines: string[];
  added: number;
  updated: number;
  removed: number;
  /** Comments, blank and unparsable lines left out (exclusive mode only). */
  dropped: number;
}

/** Keeps wanted keys where they are (rewritten when their options differ), then appends the missing ones. */
function mergeKeys(lines: readonly string[], wanted: ReadonlyMap<string, WantedKey>, exclusive: boolean): KeysEdit {
  const edit: KeysEdit = { lines: [], added: 0, updated: 0, removed: 0, dropped: 0 };
  const seen = new Set<string>();
  for (const line of lines) {
    const key = parseAuthorizedKey(line);
    const want = key && wanted.get(identity(key));
    if (key && want) {
      // sshd may try a later duplicate line, whose options could be laxer: keep one line per wanted key.
      if (seen.has(identity(key))) edit.removed++;
      else if (want.key.options === key.options) edit.lines.push(line);
      else {
        edit.lines.push(want.line);
        edit.updated++;
      }
      seen.add(identity(key));
    } else if (!exclusive) edit.lines.push(line);
    else if (key) edit.removed++;
    else edit.dropped++;
  }
  for (const [id, want] of wanted) {
    if (seen.has(id)) continue;
    edit.lines.push(want.line);
    edit.added++;
  }
  return edit;
}

function removeKeys(lines: readonly string[], unwanted: ReadonlyMap<string, WantedKey>): KeysEdit {
  const edit: KeysEdit = { lines: [], added: 0, updated: 0, removed: 0, dropped: 0 };
  for (const line of lines) {
    const key = parseAuthorizedKey(line);
    if (key && unwanted.has(identity(key))) edit.removed++;
    else edit.lines.push(line);
  }
  return edit;
}

/**
 * Operations on local accounts and their SSH keys.
 *
 * @example
 * await host.run(users.user({ name: 'deploy', groups: ['sudo'] }));
 * await host.run(users.authorizedKeys({ user: 'deploy', keys: [pubKey] }));
 */
export const users = { user, authorizedKeys, sudoer };
