import { posix } from 'node:path';
import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** One release directory under `releases/`, with what its marker file says about it. */
export interface Release {
  id: string;
  /** The git ref it was made from, as asked (`main`, `v1.2`). */
  ref?: string;
  commit?: string;
  /** The image tag written into its compose env file. */
  image?: string;
  createdAt?: string;
}

/** What the `current` link points at. */
export type CurrentRelease =
  | { kind: 'none' }
  /** A link into `releases/`; `exists` is false when that directory is gone. */
  | { kind: 'release'; id: string; exists: boolean }
  /** A directory, a file, or a link elsewhere: not made by tackle, and not replaced by it. */
  | { kind: 'other'; target: string };

export type ReleaseResult = 'ok' | 'rolled-back' | 'failed';

/** The two colors of a blue/green app: blue runs on the first of its two ports, green on the second. */
export type Color = 'blue' | 'green';

/** A blue/green app's `current-PORT` link: the release the color on PORT runs. */
export interface Slot {
  port: number;
  id: string;
}

/** One line of `releases.jsonl`: what happened to the host, newest last. */
export interface ReleaseRecord {
  time: string;
  action: 'deploy' | 'rollback';
  release: string;
  result: ReleaseResult;
  ref?: string;
  commit?: string;
  image?: string;
  /** The release that was current before. */
  previous?: string;
  reason?: string;
  /** Blue/green: the port (and color) the release was started on. */
  port?: number;
  color?: Color;
}

/** `slots`: the `current-PORT` links of a blue/green app that name a release (none otherwise). */
export type ReleasesState = { kind: 'missing' } | { kind: 'present'; current: CurrentRelease; releases: Release[]; records: ReleaseRecord[]; slots: Slot[] };

/** Names tackle gives releases: a UTC timestamp, then the ref or tag. @example RELEASE_ID.test('20250304T050607Z-v1.2') // true */
export const RELEASE_ID = /^\d{8}T\d{6}Z-[A-Za-z0-9._-]+$/;
/** The marker file in each release directory (one JSON line). @example posix.join(releaseDir, MARKER) */
export const MARKER = '.tackle-release';
/** How many records the fact reads back (the file itself keeps everything). @example state.records.length <= RECORDS_READ */
export const RECORDS_READ = 100;

// `releases/*/` matches directories only; each marker is one JSON line (or nothing).
const SCRIPT = `if [ ! -e "$d" ]; then echo missing; exit 0; fi
echo present
if [ -L "$d/current" ]; then printf 'current link %s\\n' "$(readlink -- "$d/current")"
elif [ -e "$d/current" ]; then echo 'current other'
else echo 'current none'; fi
for l in "$d"/current-*; do
  [ -L "$l" ] && printf 'slot %s %s\\n' "\${l##*/current-}" "$(readlink -- "$l")"
done
for r in "$d"/releases/*/; do
  [ -d "$r" ] || continue
  r=\${r%/}
  m=$(head -n 1 -- "$r/${MARKER}" 2>/dev/null || :)
  printf 'release %s %s\\n' "\${r##*/}" "$m"
done
echo records
tail -n ${RECORDS_READ} -- "$d/releases.jsonl" 2>/dev/null || :`;

/**
 * The releases of an app under `dir` (e.g. /srv/app): where `current` points, every release
 * directory with its marker, and the last {@link RECORDS_READ} records of `releases.jsonl`.
 *
 * @example
 * const state = await host.fact(releasesState('/srv/app'));
 * if (state.kind === 'present' && state.current.kind === 'release') console.log(state.current.id);
 */
export function releasesState(dir: string): Fact<ReleasesState> {
  return defineFact(`deploy.releases ${dir}`, sh`d=${dir}\n${raw(SCRIPT)}`, (out) => parseReleasesState(out, dir), { reads: [`${dir}/`] });
}

function optionalStrings<K extends string>(value: Record<string, unknown>, keys: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) if (typeof value[k] === 'string') out[k] = value[k] as string;
  return out;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The release id a `current` link target names: `releases/ID`, `./releases/ID` or an absolute
 * path to it; undefined for anything else.
 *
 * @example releaseIdOfTarget('releases/20250101T120000Z-v1', '/srv/app') // '20250101T120000Z-v1'
 */
export function releaseIdOfTarget(target: string, dir: string): string | undefined {
  const abs = posix.resolve(dir, target);
  const parent = posix.join(dir, 'releases');
  return posix.dirname(abs) === parent ? posix.basename(abs) : undefined;
}

/**
 * Pure parser of {@link releasesState}'s script. Releases come sorted by id, which for tackle's
 * ids is the order they were made in; unreadable record lines are skipped.
 *
 * @example parseReleasesState({ stdout: 'missing\n', stderr: '', exitCode: 0 }, '/srv/app') // { kind: 'missing' }
 */
export function parseReleasesState({ stdout, stderr, exitCode }: FactOutput, dir = '/'): ReleasesState {
  if (exitCode !== 0) throw new Error(`cannot read the releases (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  const lines = stdout.split('\n');
  if (lines[0] === 'missing') return { kind: 'missing' };
  if (lines[0] !== 'present') throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const end = lines.indexOf('records');
  if (end < 0) throw new Error('the releases listing ended early');
  const releases: Release[] = [];
  const slots: Slot[] = [];
  let current: CurrentRelease = { kind: 'none' };
  for (const line of lines.slice(1, end)) {
    if (line === 'current other') current = { kind: 'other', target: '(not a symlink)' };
    else if (line.startsWith('current link ')) {
      const target = line.slice('current link '.length);
      const id = releaseIdOfTarget(target, dir);
      current = id === undefined ? { kind: 'other', target } : { kind: 'release', id, exists: false };
    } else if (line.startsWith('slot ')) {
      const [port = '', target = ''] = line.slice('slot '.length).split(' ');
      const id = releaseIdOfTarget(target, dir);
      if (/^\d{1,5}$/.test(port) && id !== undefined) slots.push({ port: Number(port), id });
    } else if (line.startsWith('release ')) {
      const rest = line.slice('release '.length);
      const space = rest.indexOf(' ');
      const id = space < 0 ? rest : rest.slice(0, space);
      const marker = parseJson(space < 0 ? '' : rest.slice(space + 1)) ?? {};
      releases.push({ id, ...optionalStrings(marker, ['ref', 'commit', 'image', 'createdAt'] as const) });
    }
  }
  releases.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (current.kind === 'release') {
    const id = current.id;
    current = { kind: 'release', id, exists: releases.some((r) => r.id === id) };
  }
  const records = lines
    .slice(end + 1)
    .map(parseJson)
    .flatMap((r): ReleaseRecord[] => {
      if (!r || typeof r.time !== 'string' || typeof r.release !== 'string') return [];
      const result = r.result === 'ok' || r.result === 'rolled-back' || r.result === 'failed' ? r.result : 'failed';
      const port = typeof r.port === 'number' && Number.isInteger(r.port) ? { port: r.port } : {};
      const color = r.color === 'blue' || r.color === 'green' ? { color: r.color as Color } : {};
      return [{ time: r.time, action: r.action === 'rollback' ? 'rollback' : 'deploy', release: r.release, result, ...optionalStrings(r, ['ref', 'commit', 'image', 'previous', 'reason'] as const), ...port, ...color }];
    });
  return { kind: 'present', current, releases, records, slots };
}

/** What a git ref names in a remote repository right now. */
export type GitRef =
  | { kind: 'commit'; commit: string; name: string }
  | { kind: 'not-found' }
  /** Not installed on the host yet: the release resolves the ref once git is there. */
  | { kind: 'no-git' }
  /** The repository could not be read. */
  | { kind: 'unavailable'; reason: string };

/**
 * Environment for git on a host: no prompt can ever wait for an answer (no terminal for https
 * credentials, BatchMode for ssh). @example sh`${GIT_ENV} git fetch`
 */
export const GIT_ENV = sh`GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes'`;

/**
 * The commit `ref` (a branch, a tag, HEAD or `refs/...`) names in `repo`, asked from the host
 * with `git ls-remote` (so with the host's own network and credentials).
 *
 * @example
 * const r = await host.fact(gitRemoteRef('https://git.example.com/app.git', 'v1.2'));
 * if (r.kind === 'commit') console.log(r.commit);
 */
export function gitRemoteRef(repo: string, ref: string): Fact<GitRef> {
  const command = sh`command -v git >/dev/null 2>&1 || { echo 'git is not installed'; exit 0; }
${GIT_ENV} timeout 60 git ls-remote -- ${repo} ${ref} ${`${ref}^{}`}`;
  // It reads the remote, nothing on the host's disk: installing git leaves the planned answer
  // `no-git`, which the release plans as "resolve the ref when it runs", as the real run then does.
  return defineFact(`deploy.gitRef ${repo} ${ref}`, command, (out) => parseLsRemote(ref, out), { reads: [] });
}

/**
 * Pure parser of `git ls-remote REPO REF REF^{}`. It matches ref names by their tail, so it is
 * resolved here the way `git rev-parse` would: REF, refs/REF, refs/tags/REF, refs/heads/REF, an
 * annotated tag to the commit it points at.
 *
 * @example parseLsRemote('v1', { stdout: 'aaa…\trefs/tags/v1\nbbb…\trefs/tags/v1^{}\n', stderr: '', exitCode: 0 }) // { kind: 'commit', commit: 'bbb…', name: 'refs/tags/v1' }
 */
export function parseLsRemote(ref: string, { stdout, stderr, exitCode }: FactOutput): GitRef {
  if (stdout.trim() === 'git is not installed') return { kind: 'no-git' };
  if (exitCode !== 0) return { kind: 'unavailable', reason: stderr.trim().split('\n')[0] || `git ls-remote exited with code ${exitCode}` };
  const refs = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name && /^[0-9a-f]{40,64}$/.test(sha)) refs.set(name, sha);
  }
  for (const name of [ref, `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`, `refs/remotes/${ref}`]) {
    const commit = refs.get(`${name}^{}`) ?? refs.get(name);
    if (commit) return { kind: 'commit', commit, name };
  }
  return { kind: 'not-found' };
}

/**
 * Why a compose project has stopped for good, or undefined while it may still come up: one of
 * its containers exited with a non-zero code (a restart policy would show it `Restarting`
 * instead) or is dead. A container that exited 0 is a one-shot job (a migration), not a failure.
 *
 * @example
 * const why = await host.fact(composeStopped('shop')); // 'container of web exited with code 1'
 */
export function composeStopped(project: string): Fact<string | undefined> {
  const format = '{{.Label "com.docker.compose.service"}}\t{{.Status}}';
  return defineFact(`deploy.composeStopped ${project}`, sh`docker ps -a --filter ${`label=com.docker.compose.project=${project}`} --format ${format}`, parseComposeStopped);
}

/**
 * Pure parser of {@link composeStopped}'s `SERVICE<TAB>STATUS` lines. Without docker (or its
 * daemon) it says nothing: the health probes report what is wrong.
 *
 * @example parseComposeStopped({ stdout: 'web\tExited (1) 2 seconds ago\ndb\tUp 3 minutes\n', stderr: '', exitCode: 0 }) // 'container of web exited with code 1'
 */
export function parseComposeStopped({ stdout, exitCode }: FactOutput): string | undefined {
  if (exitCode !== 0) return undefined;
  const stopped = stdout.split('\n').flatMap((line) => {
    const [service = '', status = ''] = line.split('\t');
    const exited = /^Exited \((\d+)\)/.exec(status);
    if (exited && exited[1] !== '0') return [`container of ${service || '(no service)'} exited with code ${exited[1]}`];
    return /^Dead\b/.test(status) ? [`container of ${service || '(no service)'} is dead`] : [];
  });
  return stopped.length ? stopped.join('; ') : undefined;
}

/** Which port an nginx upstream file written by a blue/green deploy sends traffic to. */
export type LiveUpstream = { kind: 'missing' } | { kind: 'port'; port: number } | { kind: 'other'; reason: string };

/**
 * The live port of a blue/green app: the one `server 127.0.0.1:PORT;` of the upstream file
 * its deploys write (see deploy.release's `blueGreen`).
 *
 * @example
 * const up = await host.fact(liveUpstream('/etc/nginx/conf.d/upstream-app.conf'));
 * if (up.kind === 'port') console.log(up.port);
 */
export function liveUpstream(file: string): Fact<LiveUpstream> {
  return defineFact(`deploy.liveUpstream ${file}`, sh`if [ -e ${file} ]; then echo file; cat -- ${file}; else echo missing; fi`, parseLiveUpstream, { reads: [file] });
}

/**
 * Pure parser of {@link liveUpstream}: exactly one `server 127.0.0.1:PORT;` line, or `other`
 * with why (a file tackle did not write, or one edited by hand).
 *
 * @example parseLiveUpstream({ stdout: 'file\nupstream app {\n    server 127.0.0.1:3002;\n}\n', stderr: '', exitCode: 0 }) // { kind: 'port', port: 3002 }
 */
export function parseLiveUpstream({ stdout, stderr, exitCode }: FactOutput): LiveUpstream {
  if (exitCode !== 0) throw new Error(`cannot read the upstream file (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  if (stdout === 'missing\n') return { kind: 'missing' };
  const servers = [...stdout.replace(/#.*$/gm, '').matchAll(/\bserver\s+([^\s;]+)[^;]*;/g)].map((m) => m[1] ?? '');
  const port = /^127\.0\.0\.1:(\d{1,5})$/.exec(servers[0] ?? '')?.[1];
  if (servers.length !== 1 || port === undefined) return { kind: 'other', reason: `it names ${servers.length ? servers.join(', ') : 'no server'}, not one 127.0.0.1:PORT` };
  return { kind: 'port', port: Number(port) };
}
