import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { Command, Secret, raw, secret, sh } from '../command/command.ts';
import type { Stdin } from './connection.ts';

/** What the host must receive on stdin before anything is installed: its size and sha256. */
export interface ContentDigest {
  size: number;
  sha256: string;
  /** The digest of a secret is masked in commands (a short secret could be found from it). */
  secret: boolean;
}

/**
 * Size and sha256 of content sent on stdin, computed on the controller when planning.
 *
 * @example
 * digestOf('a=1\n') // { size: 4, sha256: '…', secret: false }
 */
export function digestOf(data: Stdin): ContentDigest {
  const bytes = data instanceof Secret ? data.reveal() : data;
  return { size: Buffer.byteLength(bytes), sha256: createHash('sha256').update(bytes).digest('hex'), secret: data instanceof Secret };
}

/**
 * Copies stdin into `target`, then exits 1 unless exactly the planned bytes arrived (size, then
 * sha256). A channel closed mid-transfer (the controller killed, a second Ctrl-C) ends `cat` just
 * like the end of the content, so without this check a script goes on to install the part it got.
 * The calling script's EXIT trap removes `target`.
 *
 * @example
 * receiveWhole(TEMP, digestOf(content)) // then chmod, validate, mv
 */
export function receiveWhole(target: Command, want: ContentDigest): Command {
  const sum = `${want.sha256}  -`;
  return sh`{ cat > ${target} || exit 1; tackle_got=$(wc -c < ${target}); [ "$tackle_got" -eq ${want.size} ] || { printf 'tackle: only %s of %s bytes arrived; nothing is installed\\n' "$tackle_got" ${want.size} >&2; exit 1; }; [ "$(sha256sum < ${target})" = ${want.secret ? secret(sum) : sum} ] || { printf 'tackle: the %s bytes that arrived are not the planned content (sha256 differs); nothing is installed\\n' ${want.size} >&2; exit 1; }; }`;
}

/**
 * Temporary names for writing `path`: `.tackle-HASH-XXXXXX` beside it (same filesystem, so the
 * final rename is atomic; the dot keeps it out of `*.conf` includes), HASH naming the path. A
 * writer killed outright (SIGKILL, power cut) runs no trap; the next writer of the same path
 * removes what it left (`removeStale`) without touching temporary files of other paths.
 * The extension is kept for validators that look at it (systemd-analyze verify x.service), unless
 * `keepExtension` is false: for a directory whose reader globs by extension (node_exporter's `*.prom`).
 *
 * @example
 * const temp = tempFiles('/etc/app.conf');
 * Command.join([temp.removeStale, sh`t=$(${temp.create})`], '\n')
 */
export function tempFiles(path: string, keepExtension = true): { create: Command; removeStale: Command } {
  const ext = keepExtension ? posix.extname(path) : '';
  const suffix = ext.length > 1 && ext.length <= 32 ? ext : '';
  const stem = posix.join(posix.dirname(path), `.tackle-${createHash('sha256').update(path).digest('hex').slice(0, 8)}-`);
  return {
    create: sh`mktemp${suffix ? sh` --suffix=${suffix}` : sh``} ${`${stem}XXXXXX`}`,
    removeStale: sh`rm -f -- ${stem}${raw('??????')}${suffix}`,
  };
}

/** The temporary file of a {@link replaceScript}, as its body refers to it. */
export const TEMP = sh`"$tackle_tmp"`;

/**
 * One script that builds the new entry at a temporary name next to `path` (see {@link tempFiles})
 * with `body` and renames it over `path`. The trap removes the temporary name on any failure or
 * signal (SIGPIPE too: the controller gone, a message to stderr would kill the shell before its
 * trap); `mv -T` fails instead of moving into a directory that appeared at `path`.
 *
 * @example
 * replaceScript('/etc/motd', [receiveWhole(TEMP, digestOf(text)), sh`chmod 0644 ${TEMP}`])
 */
export function replaceScript(path: string, body: readonly Command[], opts: { keepExtension?: boolean } = {}): Command {
  const dir = posix.dirname(path);
  const temp = tempFiles(path, opts.keepExtension);
  return Command.join(
    [
      sh`set -e`,
      sh`tackle_tmp=`,
      sh`trap '[ -z "$tackle_tmp" ] || rm -f -- "$tackle_tmp"' EXIT`,
      sh`trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM`,
      sh`[ -d ${dir} ] || { printf 'tackle: directory %s does not exist\\n' ${dir} >&2; exit 1; }`,
      temp.removeStale,
      sh`tackle_tmp=$(${temp.create})`,
      ...body,
      sh`mv -fT -- ${TEMP} ${path}`,
      sh`tackle_tmp=`,
    ],
    '\n',
  );
}
