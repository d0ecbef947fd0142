import { Buffer } from 'node:buffer';
import { posix } from 'node:path';
import { Command, Secret, raw, sh } from '../command/command.ts';
import type { Stdin } from '../connection/connection.ts';
import { TEMP, receiveWhole, replaceScript, type ContentDigest } from '../connection/replace.ts';
import { defineOperation, type Change, type CommonOptions, type Operation } from './operation.ts';
import { CONTENT_LIMIT, pathInfo, sha256Hex, type Ownership, type PathInfo } from '../facts/files.ts';
import { diffNote, fileDiff } from './diff.ts';
import { refuse } from './refuse.ts';

/** A file mode: octal digits ('0644', '644', '0o644'), a number (0o644) or absolute symbolic ('u=rw,g=r,o=r'). */
export type Mode = string | number;

/** Mode and ownership to ensure; owner and group are names or numeric ids. */
export interface Metadata {
  mode?: Mode;
  owner?: string;
  group?: string;
}

export interface FileOptions extends CommonOptions, Metadata {
  path: string;
  /** The whole content; without it only the metadata of an existing file is ensured. */
  content?: string | Buffer | Secret;
  /** A check of the new file before it replaces the old one, e.g. `visudo -cf %s`; `%s` is the temporary file. */
  validate?: string;
  /** Keep the previous version as `path.YYYYmmddHHMMSS~` when the content changes. */
  backup?: boolean;
  /** Replace a symlink at `path` with a regular file (by default a symlink there is refused). */
  force?: boolean;
  state?: 'present' | 'absent';
}

export interface DirectoryOptions extends CommonOptions, Metadata {
  path: string;
  state?: 'present' | 'absent';
  /** With state 'absent', remove the directory and everything in it (otherwise only an empty one). */
  recursive?: boolean;
}

export type LinkOptions = CommonOptions & {
  path: string;
  /** Replace a file (or an empty directory) at `path` with the link. */
  force?: boolean;
} & ({ state?: 'present'; target: string } | { state: 'absent'; target?: string });

export type LineOptions = CommonOptions & {
  path: string;
  /** A regex for the line to replace: the last matching line is replaced, or `line` is appended. */
  match?: RegExp | string;
  /** Create the file (mode 0644) when it is missing; otherwise a missing file fails the step. */
  create?: boolean;
  validate?: string;
  backup?: boolean;
} & ({ state?: 'present'; line: string } | { state: 'absent'; line?: string });

// ---------------------------------------------------------------- argument checks

function checkPath(path: unknown, op: string): string {
  if (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0')) {
    throw refuse(op, `path must be an absolute path without NUL bytes, got ${JSON.stringify(path)}`);
  }
  const normal = posix.normalize(path);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

/** The path as shown in step names, summaries and diffs: control characters escaped. */
function show(path: string): string {
  return path.replace(/[\x00-\x1f\x7f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

const SYMBOLIC = /^[ugoa]+=[rwx]*(?:,[ugoa]+=[rwx]*)*$/;

/** Normalises a mode to four octal digits; refuses anything ambiguous. */
function parseMode(mode: Mode, op: string): string {
  if (typeof mode === 'number') {
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw refuse(op, `mode ${mode} is not a file mode (0 to 0o7777)`);
    // 644 written as a decimal number is 0o1204: almost surely meant as 0o644.
    if (mode >= 0o1000 && mode <= 777 && /^[0-7]+$/.test(String(mode))) {
      throw refuse(op, `mode ${mode} is a decimal number; write 0o${mode} or '${mode}'`);
    }
    return mode.toString(8).padStart(4, '0');
  }
  const text = typeof mode === 'string' ? mode.trim() : '';
  const octal = /^(?:0o)?([0-7]{3,5})$/.exec(text);
  if (octal?.[1] && parseInt(octal[1], 8) <= 0o7777) return parseInt(octal[1], 8).toString(8).padStart(4, '0');
  if (SYMBOLIC.test(text)) {
    // Only absolute symbolic modes: `u=rw` alone would leave g and o as they happen to be.
    let bits = 0;
    const seen = new Set<string>();
    for (const clause of text.split(',')) {
      const [who = '', perms = ''] = clause.split('=');
      const value = (perms.includes('r') ? 4 : 0) | (perms.includes('w') ? 2 : 0) | (perms.includes('x') ? 1 : 0);
      for (const c of who === 'a' || who.includes('a') ? 'ugo' : who) {
        seen.add(c);
        const shift = c === 'u' ? 6 : c === 'g' ? 3 : 0;
        bits = (bits & ~(7 << shift)) | (value << shift);
      }
    }
    if (seen.size === 3) return bits.toString(8).padStart(4, '0');
  }
  throw refuse(op, `mode ${JSON.stringify(mode)} is not understood; give octal ('0644', 0o644) or an absolute symbolic mode naming u, g and o ('u=rw,g=r,o=r')`);
}

interface Wanted {
  mode?: string;
  owner?: string;
  group?: string;
}

function wantedMetadata(opts: Metadata, op: string): Wanted {
  for (const key of ['owner', 'group'] as const) {
    const v = opts[key];
    if (v !== undefined && (typeof v !== 'string' || !/^[^\s:]+$/.test(v))) throw refuse(op, `${key} must be a user or group name or id, got ${JSON.stringify(v)}`);
  }
  return {
    ...(opts.mode === undefined ? {} : { mode: parseMode(opts.mode, op) }),
    ...(opts.owner === undefined ? {} : { owner: opts.owner }),
    ...(opts.group === undefined ? {} : { group: opts.group }),
  };
}

function checkValidate(validate: unknown, op: string): string | undefined {
  if (validate === undefined) return undefined;
  // Without %s a validator checks the file already in place, not the new one.
  if (typeof validate !== 'string' || !validate.includes('%s')) throw refuse(op, `validate must be a command containing %s (the new file), got ${JSON.stringify(validate)}`);
  return validate;
}

// ---------------------------------------------------------------- metadata

function sameId(want: string, name: string, id: number): boolean {
  return /^\d+$/.test(want) ? Number(want) === id : want === name;
}

/** Descriptions of what differs, e.g. `mode 0644 → 0600`; empty when all is as wanted. */
function metadataChanges(current: Ownership, want: Wanted): string[] {
  const out: string[] = [];
  if (want.owner !== undefined && !sameId(want.owner, current.owner, current.uid)) out.push(`owner ${current.owner} → ${want.owner}`);
  if (want.group !== undefined && !sameId(want.group, current.group, current.gid)) out.push(`group ${current.group} → ${want.group}`);
  if (want.mode !== undefined && want.mode !== current.mode) out.push(`mode ${current.mode} → ${want.mode}`);
  return out;
}

function chownSpec(owner: string | undefined, group: string | undefined): string | undefined {
  if (owner === undefined && group === undefined) return undefined;
  return `${owner ?? ''}${group === undefined ? '' : `:${group}`}`;
}

/** The change that fixes only mode and ownership, or undefined when they are as wanted. */
function metadataChange(path: string, current: Ownership, want: Wanted): Change | undefined {
  const changes = metadataChanges(current, want);
  if (changes.length === 0) return undefined;
  const after = { ...current, kind: 'file' as const, mode: want.mode ?? current.mode, ...ownedAfter(current, want) };
  return {
    summary: `set ${changes.join(', ')} on ${show(path)}`,
    actions: [{ command: Command.join(metadataCommands(path, want, current), ' && ') }],
    ...('sha256' in current ? { effects: fileEffects(path, after as PathInfo) } : {}),
  };
}

/**
 * chown, then chmod: a chown clears setuid/setgid bits, so the mode is applied
 * after it (and re-applied when only the owner changes).
 */
function metadataCommands(target: Command | string, want: Wanted, current: Ownership | undefined): Command[] {
  const owner = current && want.owner !== undefined && sameId(want.owner, current.owner, current.uid) ? undefined : want.owner;
  const group = current && want.group !== undefined && sameId(want.group, current.group, current.gid) ? undefined : want.group;
  const chown = chownSpec(owner, group);
  const mode = want.mode !== undefined && want.mode !== current?.mode ? want.mode : chown !== undefined ? (want.mode ?? current?.mode) : undefined;
  return [...(chown === undefined ? [] : [sh`chown -- ${chown} ${target}`]), ...(mode === undefined ? [] : [sh`chmod -- ${mode} ${target}`])];
}

// ---------------------------------------------------------------- the write script

/**
 * Replaces each `%s` in a validator with the temporary file, quoted for where it
 * stands: `"${tackle_tmp}"` outside quotes, `${tackle_tmp}` inside double quotes,
 * and `'"${tackle_tmp}"'` inside single quotes (close, insert, reopen).
 */
function substituteTemp(validate: string): string {
  let out = '';
  let quote: '' | "'" | '"' = '';
  for (let i = 0; i < validate.length; i++) {
    const c = validate[i] as string;
    if (c === '%' && validate[i + 1] === 's') {
      out += quote === "'" ? `'"\${tackle_tmp}"'` : quote === '"' ? '${tackle_tmp}' : '"${tackle_tmp}"';
      i++;
      continue;
    }
    out += c;
    if (c === '\\' && quote !== "'" && i + 1 < validate.length) out += validate[++i];
    else if (c === "'" && quote !== '"') quote = quote === "'" ? '' : "'";
    else if (c === '"' && quote !== "'") quote = quote === '"' ? '' : '"';
  }
  return out;
}

interface Write {
  path: string;
  content: ContentDigest;
  mode: string;
  owner: string | undefined;
  group: string | undefined;
  validate: string | undefined;
  backup: boolean;
}

function writeCommand(w: Write): Command {
  const body = [receiveWhole(TEMP, w.content), ...metadataCommands(TEMP, { mode: w.mode, owner: w.owner, group: w.group }, undefined)];
  if (w.validate !== undefined) {
    // A secret's validator is silenced: it may echo the content.
    const output = raw(w.content.secret ? '>/dev/null 2>&1' : '1>&2');
    const what = w.content.secret ? 'its output is hidden because the content is secret' : w.validate;
    // The newline before `)` ends a trailing comment in the validator.
    body.push(
      sh`( ${raw(substituteTemp(w.validate))}\n) </dev/null ${output} || { tackle_rc=$?; printf 'tackle: validation failed (exit %s): %s\\n' "$tackle_rc" ${what} >&2; exit 1; }`,
    );
  }
  if (w.backup) {
    // Like Ansible's backup: the previous version, mode and owner kept (cp -p), before it is replaced.
    const stamp = raw(`.$(date +%Y%m%d%H%M%S)`);
    body.push(
      sh`if [ -f ${w.path} ] && [ ! -L ${w.path} ]; then tackle_bak=${w.path}${stamp}'~'; [ ! -e "$tackle_bak" ] || tackle_bak=${w.path}${stamp}.$$'~'; cp -p -- ${w.path} "$tackle_bak"; fi`,
    );
  }
  return replaceScript(w.path, body);
}

// ---------------------------------------------------------------- content and diffs

interface Content extends ContentDigest {
  stdin: Stdin;
  /** The text for diffs; undefined for binary, large or secret content. */
  text: string | undefined;
}

/** UTF-8 text without NUL bytes, or undefined for anything that is better not diffed. */
function decodeText(data: Buffer): string | undefined {
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(data);
    return text.includes('\0') ? undefined : text;
  } catch {
    return undefined;
  }
}

function contentOf(value: string | Buffer | Secret, op: string): Content {
  if (value instanceof Secret) {
    const bytes = Buffer.from(value.reveal());
    return { stdin: value, sha256: sha256Hex(bytes), size: bytes.length, text: undefined, secret: true };
  }
  if (typeof value === 'string') return { stdin: value, sha256: sha256Hex(value), size: Buffer.byteLength(value), text: value, secret: false };
  // Content too large to diff is not decoded: a 300 MB buffer would become a 300 MB string.
  if (Buffer.isBuffer(value)) return { stdin: value, sha256: sha256Hex(value), size: value.length, text: value.length > CONTENT_LIMIT ? undefined : decodeText(value), secret: false };
  throw refuse(op, `content must be a string, Buffer or secret(), got ${typeof value}`);
}

type FileInfo = Extract<PathInfo, { kind: 'file' }>;

function contentDiff(path: string, current: FileInfo | undefined, next: Content): string {
  const name = show(path);
  if (next.secret) return diffNote(name, `secret content ${current ? 'changed' : 'created'} (not shown)`);
  const describe = (side: string, size: number) => diffNote(name, `${side} content is binary or over ${CONTENT_LIMIT / 1024} KiB (${size} bytes); no diff shown`);
  const old = current === undefined ? '' : current.content === undefined ? undefined : decodeText(Buffer.from(current.content, 'base64'));
  if (old === undefined) return describe('current', current?.size ?? 0);
  if (next.text === undefined || next.size > CONTENT_LIMIT) return describe('new', next.size);
  return fileDiff(path, current ? old : undefined, next.text);
}

/**
 * The shared planner of files.file and files.line: writes `next` atomically
 * unless the file already holds it, and otherwise fixes only what differs.
 * The mode and owner of an existing file are kept unless `want` says otherwise.
 */
function planWrite(path: string, info: PathInfo, next: Content, want: Wanted, opts: { validate?: string; backup?: boolean }): Change | undefined {
  const current = info.kind === 'file' ? info : undefined;
  const changes = current ? metadataChanges(current, want) : [];
  if (current && current.sha256 === next.sha256) return metadataChange(path, current, want);
  // A new file gets 0644, or 0600 when its content is secret; chown only when asked or to keep the old owner.
  const mode = want.mode ?? current?.mode ?? (next.secret ? '0600' : '0644');
  const owner = want.owner ?? (current ? String(current.uid) : undefined);
  const group = want.group ?? (current ? String(current.gid) : undefined);
  const backup = opts.backup === true && current !== undefined;
  const command = writeCommand({ path, content: next, mode, owner, group, validate: opts.validate, backup });
  const size = next.secret ? 'secret content' : `${next.size} bytes`;
  const what =
    info.kind === 'link'
      ? `replace symlink ${show(path)} → ${show(info.target)} with a file (${size}, mode ${mode})`
      : current
        ? `update ${show(path)} (${[size, ...changes].join(', ')}${backup ? ', backup kept' : ''})`
        : `create ${show(path)} (${size}, mode ${mode}${want.owner ? `, owner ${want.owner}` : ''}${want.group ? `, group ${want.group}` : ''})`;
  const after = { mode, ...ownedAfter(current, want), size: next.size, sha256: next.sha256, ...contentFact(next) };
  return { summary: what, actions: [{ command, stdin: next.stdin }], diff: contentDiff(path, current, next), effects: fileEffects(path, { kind: 'file', ...after }) };
}

// Owner and group as a write leaves them; a name given without its id keeps the id unknown (-1):
// later planners compare by name (sameId).
function ownedAfter(current: Ownership | undefined, want: Wanted): Omit<Ownership, 'mode'> {
  const owner = want.owner === undefined || (current && sameId(want.owner, current.owner, current.uid)) ? { owner: current?.owner ?? 'root', uid: current?.uid ?? 0 } : { owner: want.owner, uid: -1 };
  const group = want.group === undefined || (current && sameId(want.group, current.group, current.gid)) ? { group: current?.group ?? 'root', gid: current?.gid ?? 0 } : { group: want.group, gid: -1 };
  return { ...owner, ...group };
}

// The content as the path fact carries it (base64, up to its limit; never a secret's).
function contentFact(next: Content): { content?: string } {
  if (typeof next.stdin === 'string' || Buffer.isBuffer(next.stdin)) return next.size > CONTENT_LIMIT ? {} : { content: Buffer.from(next.stdin).toString('base64') };
  return {};
}

// A write says what the path holds after it, so the steps after it that read it stay planned.
function fileEffects(path: string, after: PathInfo): Change['effects'] {
  return { facts: { [pathInfo(path).key]: after }, writes: [path] };
}

// ---------------------------------------------------------------- operations

/** Every files op asks one question, what is at `path`, and is named after it. */
function pathOperation(op: string, path: string, opts: CommonOptions, plan: (info: PathInfo) => Change | undefined): Operation {
  return defineOperation({ name: `${op} ${show(path)}`, facts: { info: pathInfo(path) }, options: opts, plan: ({ info }) => writing(path, plan(info)) });
}

// What a change at `path` does for the steps after it: what reads the path is unknown until it ran.
function writing(path: string, change: Change | undefined): Change | undefined {
  return change && { ...change, effects: change.effects ?? { writes: [path] } };
}

/**
 * Ensures a regular file: its whole content (written atomically, optionally
 * validated and backed up), mode and ownership; or that it is absent.
 * A directory at `path` is refused; so is a symlink unless `force` is set.
 *
 * @example
 * files.file({ path: '/etc/sudoers.d/deploy', content: 'deploy ALL=(ALL) NOPASSWD: ALL\n', mode: '0440', validate: 'visudo -cf %s' })
 * files.file({ path: '/etc/app/token', content: secret(env.TOKEN), owner: 'app' })
 */
function file(opts: FileOptions): Operation {
  const op = 'files.file';
  const path = checkPath(opts.path, op);
  const want = wantedMetadata(opts, op);
  const validate = checkValidate(opts.validate, op);
  const next = opts.content === undefined ? undefined : contentOf(opts.content, op);
  const absent = opts.state === 'absent';
  if (absent && (next || Object.keys(want).length > 0)) throw refuse(op, `content, mode, owner and group make no sense with state 'absent'`);
  if (!absent && !next && Object.keys(want).length === 0) throw refuse(op, 'give content, or mode/owner/group to ensure on an existing file');
  return pathOperation(op, path, opts, (info) => {
    if (info.kind === 'directory') throw refuse(op, `${show(path)} is a directory, not a regular file (use files.directory)`);
    if (absent) {
      if (info.kind === 'missing') return undefined;
      return { summary: `remove ${show(path)}${info.kind === 'link' ? ` (symlink → ${show(info.target)})` : ''}`, actions: [{ command: sh`rm -f -- ${path}` }] };
    }
    if (info.kind === 'other') throw refuse(op, `${show(path)} is a ${info.type}, not a regular file`);
    if (info.kind === 'link' && !(opts.force && next)) {
      throw refuse(op, `${show(path)} is a symlink to ${show(info.target)}; links are not written through (manage the target, or give content and force: true to replace the link)`);
    }
    if (next) return planWrite(path, info, next, want, { ...(validate ? { validate } : {}), backup: opts.backup === true });
    if (info.kind === 'file') return metadataChange(path, info, want);
    // Missing as the earlier steps leave it: the host's check fails the step.
    return {
      summary: `set ${Object.entries(want).map(([k, v]) => `${k} ${v}`).join(', ')} on ${show(path)} (missing: this fails)`,
      actions: [{ command: Command.join([missingCheck(path, 'and no content was given'), ...metadataCommands(path, want, undefined)], ' && ') }],
    };
  });
}

function missingCheck(path: string, why: string): Command {
  return sh`{ [ -f ${path} ] || { printf 'tackle: %s does not exist %s\\n' ${path} ${why} >&2; exit 1; }; }`;
}

/**
 * Ensures a directory (with its parents, `mkdir -p`) and its mode and ownership,
 * or that it is absent (`recursive` to remove a non-empty one).
 *
 * @example
 * files.directory({ path: '/srv/app/releases', owner: 'app', group: 'app', mode: '0750' })
 * files.directory({ path: '/srv/old', state: 'absent', recursive: true })
 */
function directory(opts: DirectoryOptions): Operation {
  const op = 'files.directory';
  const path = checkPath(opts.path, op);
  const want = wantedMetadata(opts, op);
  const absent = opts.state === 'absent';
  if (absent && path === '/') throw refuse(op, 'refusing to remove /');
  return pathOperation(op, path, opts, (info) => {
    if (info.kind === 'missing') {
      if (absent) return undefined;
      return {
        summary: `create directory ${show(path)}${want.mode ? ` (mode ${want.mode})` : ''}`,
        actions: [{ command: Command.join([sh`mkdir -p -- ${path}`, ...metadataCommands(path, want, undefined)], ' && ') }],
        // mkdir -p may create its parents too; what is inside stays as it was (missing).
        effects: { writes: path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/')).filter((p) => p !== '') },
      };
    }
    if (info.kind !== 'directory') {
      const what = info.kind === 'link' ? `a symlink to ${show(info.target)}` : info.kind === 'file' ? 'a file' : `a ${info.type}`;
      throw refuse(op, `${show(path)} is ${what}, not a directory, and is not replaced`);
    }
    if (absent) {
      return opts.recursive
        ? { summary: `remove directory ${show(path)} and its contents`, actions: [{ command: sh`rm -rf -- ${path}` }], effects: { writes: [`${path}/`] } }
        : { summary: `remove empty directory ${show(path)}`, actions: [{ command: sh`rmdir -- ${path}` }] };
    }
    return metadataChange(path, info, want);
  });
}

/**
 * Ensures a symlink at `path` pointing to `target` (compared as written, not
 * resolved), replaced atomically when it pointed elsewhere; or that it is absent.
 *
 * @example
 * files.link({ path: '/etc/nginx/sites-enabled/app', target: '/etc/nginx/sites-available/app' })
 */
function link(opts: LinkOptions): Operation {
  const op = 'files.link';
  const path = checkPath(opts.path, op);
  const absent = opts.state === 'absent';
  const target = opts.target;
  if (!absent && (typeof target !== 'string' || target === '' || target.includes('\0'))) throw refuse(op, `target must be a non-empty string, got ${JSON.stringify(target)}`);
  return pathOperation(op, path, opts, (info) => {
    if (absent || target === undefined) {
      if (info.kind === 'missing') return undefined;
      if (info.kind !== 'link') throw refuse(op, `${show(path)} is a ${info.kind === 'other' ? info.type : info.kind}, not a symlink; only links are removed`);
      return { summary: `remove symlink ${show(path)} → ${show(info.target)}`, actions: [{ command: sh`rm -f -- ${path}` }] };
    }
    if (info.kind === 'link' && info.target === target) return undefined;
    if (info.kind !== 'link' && info.kind !== 'missing' && !opts.force) {
      throw refuse(op, `${show(path)} is a ${info.kind === 'other' ? info.type : info.kind}, not a symlink; pass force: true to replace it with the link`);
    }
    // rename(2) cannot put a link over a directory: remove it first (rmdir: only if empty).
    const body = [sh`ln -sfn -- ${target} ${TEMP}`, ...(info.kind === 'directory' ? [sh`rmdir -- ${path}`] : [])];
    const summary =
      info.kind === 'link'
        ? `retarget symlink ${show(path)}: ${show(info.target)} → ${show(target)}`
        : `${info.kind === 'missing' ? 'create' : `replace ${info.kind} with`} symlink ${show(path)} → ${show(target)}`;
    return { summary, actions: [{ command: replaceScript(path, body) }] };
  });
}

function regexOf(match: RegExp | string, op: string): RegExp {
  if (match instanceof RegExp) return new RegExp(match.source, match.flags.replace(/[gy]/g, '')); // g/y make test() stateful
  try {
    return new RegExp(match);
  } catch (cause) {
    throw refuse(op, `match is not a valid regular expression: ${(cause as Error).message}`);
  }
}

interface LineEdit {
  line: string | undefined;
  match: RegExp | undefined;
  absent: boolean;
}

/** Pure: the text after the edit (the same string when nothing changes). */
function editLines(text: string, edit: LineEdit): string {
  const finalNewline = text.endsWith('\n');
  const lines = text === '' ? [] : (finalNewline ? text.slice(0, -1) : text).split('\n');
  const bare = (l: string) => (l.endsWith('\r') ? l.slice(0, -1) : l);
  const join = (ls: readonly string[]) => (ls.length === 0 ? '' : ls.join('\n') + (finalNewline ? '\n' : ''));
  const hit = (l: string) => (edit.match?.test(bare(l)) ?? false) || bare(l) === edit.line;
  if (edit.absent) {
    const kept = lines.filter((l) => !hit(l));
    return kept.length === lines.length ? text : join(kept);
  }
  const line = edit.line as string;
  let index = -1;
  for (let i = lines.length - 1; i >= 0 && edit.match && index < 0; i--) if (edit.match.test(bare(lines[i] as string))) index = i;
  if (index >= 0) {
    const old = lines[index] as string;
    if (bare(old) === line) return text;
    lines[index] = line + (old.endsWith('\r') ? '\r' : '');
    return join(lines);
  }
  // The exact line anywhere counts as present, so a `match` that does not match `line` stays idempotent.
  if (lines.some((l) => bare(l) === line)) return text;
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  // A last line without its newline gets one first, so the new line does not join it.
  return `${text}${text === '' || finalNewline ? '' : eol}${line}${eol}`;
}

/**
 * Ensures one line in a text file: replaces the last line matching `match`
 * (or appends `line` when none does), or removes every line matching `match`
 * or equal to `line`. The new content is planned from the file's current content,
 * so the diff is exact, and written atomically keeping the file's mode and owner.
 *
 * @example
 * files.line({ path: '/etc/ssh/sshd_config', match: /^#?PasswordAuthentication\b/, line: 'PasswordAuthentication no', validate: 'sshd -t -f %s' })
 * files.line({ path: '/etc/hosts', match: '\\sold-name$', state: 'absent' })
 */
function line(opts: LineOptions): Operation {
  const op = 'files.line';
  const path = checkPath(opts.path, op);
  const absent = opts.state === 'absent';
  const validate = checkValidate(opts.validate, op);
  const match = opts.match === undefined ? undefined : regexOf(opts.match, op);
  if (opts.line !== undefined && (typeof opts.line !== 'string' || /[\n\0]/.test(opts.line))) throw refuse(op, `line must be one line of text, got ${JSON.stringify(opts.line)}`);
  if (!absent && opts.line === undefined) throw refuse(op, `line is required with state 'present'`);
  if (absent && opts.line === undefined && !match) throw refuse(op, `state 'absent' needs line or match`);
  const edit: LineEdit = { line: opts.line, match, absent };
  const write = { ...(validate ? { validate } : {}), backup: opts.backup === true };
  return pathOperation(op, path, opts, (info) => {
    if (info.kind === 'missing') {
      if (absent) return undefined;
      if (opts.create) return planWrite(path, info, contentOf(editLines('', edit), op), {}, write);
      return {
        summary: `edit ${show(path)} (missing: this fails; create: true would create it)`,
        actions: [{ command: missingCheck(path, '(pass create: true to create it)') }],
      };
    }
    if (info.kind === 'link') throw refuse(op, `${show(path)} is a symlink to ${show(info.target)}; only regular files are edited (point it at the target)`);
    if (info.kind !== 'file') throw refuse(op, `${show(path)} is a ${info.kind === 'other' ? info.type : info.kind}, not a regular file`);
    const text = info.content === undefined ? undefined : decodeText(Buffer.from(info.content, 'base64'));
    if (text === undefined) throw refuse(op, `${show(path)} is not UTF-8 text of at most ${CONTENT_LIMIT / 1024} KiB (${info.size} bytes); it cannot be edited`);
    const next = editLines(text, edit);
    return next === text ? undefined : planWrite(path, info, contentOf(next, op), {}, write);
  });
}

/**
 * Operations on files, directories, symlinks and lines in files.
 *
 * @example
 * await host.run(files.directory({ path: '/etc/app', mode: '0755' }));
 * await host.run(files.file({ path: '/etc/app/app.conf', content: render(vars), notify: handler('restart app') }));
 */
export const files = { file, directory, link, line };
