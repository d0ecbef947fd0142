import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactGroup, type FactOutput } from './fact.ts';

/** Files up to this size come back with their content, so that a change can show a diff. */
export const CONTENT_LIMIT = 256 * 1024;

/** Who owns a file or directory, and its permission bits as four octal digits ('0644', '4755'). */
export interface Ownership {
  mode: string;
  owner: string;
  group: string;
  uid: number;
  gid: number;
}

/** What is at a path, without following a symlink there. */
export type PathInfo =
  | { kind: 'missing' }
  /** `content` is base64, present only up to {@link CONTENT_LIMIT} bytes. */
  | ({ kind: 'file'; size: number; sha256: string; content?: string } & Ownership)
  | ({ kind: 'directory' } & Ownership)
  | { kind: 'link'; target: string }
  /** A fifo, socket or device; `type` is stat's word for it ('fifo', 'socket', …). */
  | { kind: 'other'; type: string };

// One read-only script for every kind, so a step costs one entry in the fact batch.
// Each kind prints its name on the first line; link targets go through base64
// because they may hold newlines. `[ -L ]` comes first: a link is reported, not followed.
// A file costs two processes, the fewest that read it (a converged run reads dozens): one stat
// for ownership and size, then its content when small (its sha256 is computed from the very
// bytes read), else sha256sum.
const SCRIPT = `if [ -L "$p" ]; then
  echo link && readlink -n -- "$p" | base64 -w0
elif [ -d "$p" ]; then
  echo directory && stat --printf '%a\\n%U\\n%G\\n%u\\n%g\\n' -- "$p"
elif [ -f "$p" ]; then
  set -f && set -- $(stat --printf '%a %U %G %u %g %s' -- "$p") && [ $# = 6 ] &&
  printf 'file\\n%s\\n%s\\n%s\\n%s\\n%s\\n%s\\n' "$@" &&
  if [ "$6" -le ${CONTENT_LIMIT} ]; then echo content && base64 -w0 < "$p"; else sha256sum < "$p"; fi
elif [ -e "$p" ]; then
  echo other && stat -c %F -- "$p"
else
  echo missing
fi`;

/**
 * What is at `path`: missing, a file (with sha256 and, when small, its content),
 * a directory, a symlink (not followed) or something else.
 *
 * @example
 * const info = await host.fact(pathInfo('/etc/nginx/nginx.conf'));
 * if (info.kind === 'file') console.log(info.mode, info.sha256);
 */
export function pathInfo(path: string): Fact<PathInfo> {
  // A path holding a newline is read on its own: the group lists paths one per line.
  const group = path.includes('\n') ? {} : { group: { of: PATHS, item: path } };
  return defineFact(`files.path:${path}`, sh`p=${path}\n${raw(SCRIPT)}`, parsePathInfo, { reads: [path], ...group });
}

// Several paths in one batch cost a few processes in all (a converged provisioning reads a dozen
// paths, and on the host a process costs about what reading costs): their kinds from the shell's
// own tests, one stat for every file and directory, one readlink for every link, and one cat for
// the content of every small file, cut by the sizes stat gave. Output: a kind line per path, `--`,
// stat's lines, `--`, the links' targets (NUL-ended, base64), `--`, the small files' bytes
// (base64), then `h SHA256` for each larger file.
const PATHS_LOOP = `  if [ -L "$p" ]; then echo link; l="$l$p$nl"
  elif [ -d "$p" ]; then echo directory; set -- "$@" "$p"
  elif [ -f "$p" ]; then echo file; set -- "$@" "$p"
  elif [ -e "$p" ]; then echo "other $(stat -c %F -- "$p")"
  else echo missing; fi
done
m=
[ $# = 0 ] || m=$(stat --printf '%a %U %G %u %g %s %F\\n' -- "$@")
echo --
[ -z "$m" ] || printf '%s\\n' "$m"
echo --
IFS=$nl
[ -z "$l" ] || readlink -z -- $l | base64 -w0
echo; echo --
small= big=
[ -z "$m" ] || while IFS=' ' read -r a u g ui gi s f; do
  [ $# -gt 0 ] || break
  case $f in directory) ;; *) if [ "$s" -le ${CONTENT_LIMIT} ]; then small="$small$1$nl"; else big="$big$1$nl"; fi ;; esac
  shift
done <<EOF
$m
EOF
[ -z "$small" ] || cat -- $small | base64 -w0
echo
for p in $big; do printf 'h '; sha256sum < "$p" || echo; done
`;

const PATHS: FactGroup = {
  id: 'files.path',
  command: (paths) => sh`set -f; set --; l=; nl='\n'\nfor p in ${[...paths]}; do\n${raw(PATHS_LOOP)}`,
  split: splitPaths,
};

/**
 * Pure parser of the {@link pathInfo} script's output.
 *
 * @example parsePathInfo({ stdout: 'missing\n', stderr: '', exitCode: 0 }) // { kind: 'missing' }
 */
export function parsePathInfo({ stdout, stderr, exitCode }: FactOutput): PathInfo {
  if (exitCode !== 0) throw new Error(`cannot inspect the path (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  const lines = stdout.split('\n');
  const kind = lines[0];
  switch (kind) {
    case 'missing':
      return { kind: 'missing' };
    case 'link':
      return { kind: 'link', target: Buffer.from(lines[1] ?? '', 'base64').toString() };
    case 'other':
      return { kind: 'other', type: field(lines, 1, 'file type') };
    case 'directory':
      return { kind: 'directory', ...ownership(lines) };
    case 'file': {
      const size = Number(field(lines, 6, 'size'));
      if (!Number.isInteger(size)) throw new Error(`unexpected file output: ${JSON.stringify(stdout.slice(0, 200))}`);
      if (lines[7] === 'content') {
        // The bytes read are the truth: a file that changed after stat is described as read.
        const bytes = Buffer.from(lines[8] ?? '', 'base64');
        return { kind: 'file', ...ownership(lines), size: bytes.length, sha256: sha256Hex(bytes), content: bytes.toString('base64') };
      }
      const sha256 = field(lines, 7, 'sha256').slice(0, 64);
      if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`unexpected file output: ${JSON.stringify(stdout.slice(0, 200))}`);
      return { kind: 'file', ...ownership(lines), size, sha256 };
    }
    default:
      throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
}

/**
 * Pure: the group's output (see PATHS_LOOP) as each path's own script would have printed it, so
 * that {@link parsePathInfo} reads both. A path that changed while it was read fails them all.
 */
export function splitPaths({ stdout, stderr }: FactOutput, paths: readonly string[]): FactOutput[] {
  const lines = stdout.split('\n');
  const kinds = lines.slice(0, paths.length);
  const metaEnd = lines.indexOf('--', paths.length + 1);
  if (lines[paths.length] !== '--' || metaEnd < 0 || lines[metaEnd + 2] !== '--') throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const meta = lines.slice(paths.length + 1, metaEnd);
  const targets = Buffer.from(lines[metaEnd + 1] as string, 'base64').toString().split('\0');
  const [small = '', ...big] = lines.slice(metaEnd + 3);
  const bytes = Buffer.from(small, 'base64');
  let at = 0;
  const ok = (out: string): FactOutput => ({ stdout: out, stderr: '', exitCode: 0 });
  const outputs = kinds.map((line, i) => {
    const [kind = '', rest = ''] = splitOnce(line, ' ');
    if (kind === 'missing') return ok('missing\n');
    if (kind === 'link') return ok(`link\n${Buffer.from(targets.shift() ?? '').toString('base64')}`);
    if (kind === 'other') return ok(`other\n${rest}\n`);
    if (kind !== 'file' && kind !== 'directory') throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
    const fields = (meta.shift() ?? '').split(' ');
    const type = fields.slice(6).join(' ');
    if ((kind === 'directory') !== (type === 'directory') || (kind === 'file' && !type.startsWith('regular'))) {
      throw new Error(`${paths[i]} changed while it was read (${kind}, then ${type || 'gone'}) ${stderr.trim()}`.trim());
    }
    if (kind === 'directory') return ok(`directory\n${fields.slice(0, 5).join('\n')}\n`);
    const head = `file\n${fields.slice(0, 6).join('\n')}\n`;
    const size = Number(fields[5]);
    if (size > CONTENT_LIMIT) return ok(`${head}${(big.shift() ?? '').replace(/^h /, '')}\n`);
    const content = bytes.subarray(at, at + size);
    at += size;
    return ok(`${head}content\n${content.toString('base64')}`);
  });
  if (at !== bytes.length) {
    throw new Error(`the files gave ${bytes.length} bytes for sizes adding up to ${at}: one changed or could not be read ${stderr.trim()}`.trim());
  }
  return outputs;
}

function splitOnce(text: string, separator: string): [string, string?] {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + separator.length)];
}

function field(lines: readonly string[], index: number, name: string): string {
  const value = lines[index];
  if (value === undefined || value === '') throw new Error(`no ${name} in the output`);
  return value;
}

function ownership(lines: readonly string[]): Ownership {
  const mode = field(lines, 1, 'mode');
  if (!/^[0-7]{1,4}$/.test(mode)) throw new Error(`unexpected mode ${JSON.stringify(mode)}`);
  return {
    mode: mode.padStart(4, '0'),
    owner: field(lines, 2, 'owner'),
    group: field(lines, 3, 'group'),
    uid: Number(field(lines, 4, 'uid')),
    gid: Number(field(lines, 5, 'gid')),
  };
}

/**
 * Hex sha256 of some bytes, as `sha256sum` prints it.
 *
 * @example sha256Hex(Buffer.from('')) // 'e3b0c442…'
 */
export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** One file of a listing: its name (no directory), size in bytes and modification time (ms since epoch). */
export interface StoredFile {
  name: string;
  size: number;
  mtimeMs: number;
}
