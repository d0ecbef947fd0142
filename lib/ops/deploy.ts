import { posix } from 'node:path';
import { Command, mask, sh } from '../command/command.ts';
import { assertOk, type Connection } from '../connection/connection.ts';
import { defineOperation, type Change, type Check, type CommonOptions, type Operation } from '../engine/operation.ts';
import { TackleError, tail } from '../errors.ts';
import {
  GIT_ENV,
  MARKER,
  RELEASE_ID,
  composeStopped,
  gitRemoteRef,
  releasesState,
  type GitRef,
  type Release,
  type ReleaseRecord,
  type ReleaseResult,
  type ReleasesState,
} from '../facts/deploy.ts';
import type { Fact } from '../facts/fact.ts';
import { inContext } from '../facts/shell.ts';
import { describeHealth, describeUnhealthy, unitStop, waitForHealth, type Probe, type StopSign, type WaitOptions } from './health.ts';

/** Where an app's releases live on the host. */
export interface ReleaseLayout {
  app: string;
  /** `/srv/APP` */
  dir: string;
  /** `/srv/APP/releases`: one directory per release. */
  releases: string;
  /** `/srv/APP/current`: a symlink to `releases/ID`, switched atomically. */
  current: string;
  /** `/srv/APP/releases.jsonl`: one JSON line per deploy or rollback, newest last. */
  records: string;
  /** `/srv/APP/repo`: a bare mirror of the git repository, fetched on each deploy. */
  repo: string;
}

const APP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The directories and files of an app's releases under `root` (default /srv).
 *
 * @example releaseLayout('shop').current // '/srv/shop/current'
 */
export function releaseLayout(app: string, root = '/srv'): ReleaseLayout {
  if (typeof app !== 'string' || !APP_NAME.test(app)) throw new TypeError(`deploy: app must be a name of letters, digits, '.', '_' and '-', got ${JSON.stringify(app)}`);
  if (typeof root !== 'string' || !root.startsWith('/') || root.includes('\0')) throw new TypeError(`deploy ${app}: root must be an absolute path, got ${JSON.stringify(root)}`);
  const dir = posix.join(root, app);
  return { app, dir, releases: posix.join(dir, 'releases'), current: posix.join(dir, 'current'), records: posix.join(dir, 'releases.jsonl'), repo: posix.join(dir, 'repo') };
}

/** What a release is made of: a git ref checked out (as files, no .git), or an image tag written into a compose env file. */
export type ReleaseSource =
  | { git: { repo: string; ref: string } }
  | {
      image: {
        tag: string;
        /** The env file in the release, relative to it; default `.env` (compose reads it for `${IMAGE_TAG}`). */
        envFile?: string;
        /** Default `IMAGE_TAG`. */
        variable?: string;
        /** A directory to copy the first release from; later releases copy the current one. */
        template?: string;
      };
    };

/** How the service picks up a release; each runs in the (real, not symlinked) release directory. */
export type Restart =
  | { systemd: string }
  /** `docker compose up -d` with a fixed project name: compose would otherwise name the project after each release directory. */
  | { compose: { project?: string } }
  /** Any command; it gets RELEASE_DIR in its environment. */
  | { command: Command };

interface ServiceOptions {
  app: string;
  /** Default /srv. */
  root?: string;
  restart?: Restart;
  /** Probes that must pass after the restart (see `health`); none means a restart that exits 0 is enough. */
  health?: readonly Probe[];
  wait?: WaitOptions;
}

export interface ReleaseOptions extends CommonOptions, ServiceOptions {
  source: ReleaseSource;
  /** Releases kept, counting the new one (default 5); the current and the previous one are never removed. */
  keep?: number;
  /** Run in the new release directory before it goes live (a migration, a backup); failing stops the deploy. Gets RELEASE_DIR, APP_DIR, PREVIOUS_RELEASE_DIR. */
  hook?: Command;
  /** `user` or `user:group` to own the release's files. */
  owner?: string;
  /** The time in the release id; default now. */
  now?: Date;
}

export interface RollbackOptions extends CommonOptions, ServiceOptions {
  /** The release to go back to; default the one before the current one. */
  to?: string;
}

type Source = { kind: 'git'; repo: string; ref: string } | { kind: 'image'; tag: string; envFile: string; variable: string; template: string | undefined };

/** The app, its layout and how it restarts and proves healthy: what deploy and rollback share. */
export interface Service {
  layout: ReleaseLayout;
  restart: Restart | undefined;
  health: readonly Probe[];
  wait: WaitOptions;
}

/** A release as planned, with everything its script and check need. */
export interface DesiredRelease extends Service {
  source: Source;
  keep: number;
  hook: Command | undefined;
  owner: string | undefined;
  now: Date;
}

// ---------------------------------------------------------------- argument checks

function checkRef(ref: unknown, op: string): string {
  // What git check-ref-format refuses, plus a leading '-' (an option to git) and HEAD@{…} forms.
  if (typeof ref !== 'string' || ref === '' || ref.startsWith('-') || /[\s\x00-\x1f\x7f~^:?*[\\]|\.\.|@\{|\/\/|\/$|\.lock$|^\//.test(ref)) {
    throw new TypeError(`${op}: ${JSON.stringify(ref)} is not a git branch, tag or commit`);
  }
  return ref;
}

function checkService(o: ServiceOptions, op: string): Service {
  const layout = releaseLayout(o.app, o.root);
  const r = o.restart;
  if (r !== undefined) {
    if ('systemd' in r && !/^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$/.test(r.systemd)) throw new TypeError(`${op}: restart.systemd ${JSON.stringify(r.systemd)} is not a unit name`);
    if ('compose' in r && r.compose.project !== undefined && !/^[a-z0-9][a-z0-9_-]*$/.test(r.compose.project)) {
      throw new TypeError(`${op}: compose project names are lower-case letters, digits, '_' and '-', got ${JSON.stringify(r.compose.project)}`);
    }
    if ('command' in r && !(r.command instanceof Command)) throw new TypeError(`${op}: restart.command must be built with sh\`…\``);
  }
  return { layout, restart: r, health: [...(o.health ?? [])], wait: o.wait ?? {} };
}

function checkSource(source: ReleaseSource, op: string): Source {
  if (typeof source !== 'object' || source === null) throw new TypeError(`${op}: source must be { git: { repo, ref } } or { image: { tag } }`);
  if ('git' in source) {
    const { repo, ref } = source.git;
    if (typeof repo !== 'string' || repo === '' || repo.startsWith('-') || /\s/.test(repo)) throw new TypeError(`${op}: git repo must be a URL or path, got ${JSON.stringify(repo)}`);
    return { kind: 'git', repo, ref: checkRef(ref, op) };
  }
  if ('image' in source) {
    const { tag, envFile = '.env', variable = 'IMAGE_TAG', template } = source.image;
    if (typeof tag !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new TypeError(`${op}: ${JSON.stringify(tag)} is not an image tag`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw new TypeError(`${op}: ${JSON.stringify(variable)} is not a variable name`);
    if (envFile.startsWith('/') || envFile.split('/').includes('..') || envFile === '') throw new TypeError(`${op}: envFile must be a path inside the release, got ${JSON.stringify(envFile)}`);
    if (template !== undefined && !template.startsWith('/')) throw new TypeError(`${op}: template must be an absolute path, got ${JSON.stringify(template)}`);
    return { kind: 'image', tag, envFile, variable, template };
  }
  throw new TypeError(`${op}: source must be { git: { repo, ref } } or { image: { tag } }`);
}

function refuse(reason: string): TackleError {
  return new TackleError({ phase: 'operation', reason });
}

// ---------------------------------------------------------------- commands

/**
 * The `current` link switched atomically: a new link beside it, renamed over it.
 * @example switchCommand(releaseLayout('shop'), '20250304T050607Z-v2')
 */
export function switchCommand(layout: ReleaseLayout, id: string): Command {
  const tmp = posix.join(layout.dir, '.current.tmp');
  return sh`rm -rf -- ${tmp} && ln -s -- ${posix.join('releases', id)} ${tmp} && mv -T -- ${tmp} ${layout.current}`;
}

/**
 * The command that makes the service run the release in `dir`.
 * @example restartCommand({ systemd: 'shop.service' }, dir, 'shop').toString() // 'systemctl reset-failed shop.service 2>/dev/null; systemctl restart shop.service'
 */
export function restartCommand(restart: Restart, dir: string, app: string): Command {
  // A unit that hit its start limit (a release that crashed at once) refuses a restart until reset.
  if ('systemd' in restart) return sh`systemctl reset-failed ${restart.systemd} 2>/dev/null; systemctl restart ${restart.systemd}`;
  if ('compose' in restart) return sh`cd ${dir} && ${composeCli(['--project-name', composeProject(restart.compose, app), 'up', '-d', '--remove-orphans'])}`;
  return inContext(restart.command, { cwd: dir, env: { RELEASE_DIR: dir } });
}

/**
 * `docker compose ARGS` where the host has the v2 plugin, else `docker-compose ARGS`: Debian 12
 * packages only the v1 `docker-compose` (no `docker-compose-plugin`), and both take these arguments.
 */
function composeCli(args: readonly string[]): Command {
  return sh`if docker compose version >/dev/null 2>&1; then docker compose ${args}; else docker-compose ${args}; fi`;
}

function composeProject(compose: { project?: string }, app: string): string {
  return compose.project ?? app.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
}

/**
 * What tells that the restarted service has stopped for good, so the health wait ends at once:
 * its unit `failed` (unless a unit probe already watches it), or a compose container exited.
 *
 * @example restartStops({ systemd: 'shop.service' }, [], 'shop') // [unitStop('shop.service')]
 */
export function restartStops(restart: Restart | undefined, probes: readonly Probe[], app: string): StopSign[] {
  if (restart === undefined || 'command' in restart) return [];
  if ('compose' in restart) return [composeStopped(composeProject(restart.compose, app))];
  return probes.some((p) => p.kind === 'unit' && p.unit === restart.systemd) ? [] : [unitStop(restart.systemd)];
}

function appendRecord(layout: ReleaseLayout, record: ReleaseRecord): Command {
  // One short line per write(2) on an O_APPEND file: concurrent appends never interleave.
  return sh`printf '%s\\n' ${JSON.stringify(record)} >> ${layout.records}`;
}

/**
 * Release ids: UTC time to the second, then the ref or tag made safe for a file name.
 * @example releaseId(new Date('2025-03-04T05:06:07Z'), 'v2') // '20250304T050607Z-v2'
 */
export function releaseId(now: Date, name: string, taken: readonly string[] = []): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const slug = name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[.-]+/, '').slice(0, 40) || 'release';
  let id = `${stamp}-${slug}`;
  for (let n = 2; taken.includes(id); n++) id = `${stamp}-${slug}-${n}`;
  return id;
}

function prepareScript(d: DesiredRelease, id: string, live: Release | undefined, prune: readonly string[], commit: string | undefined): Command {
  const L = d.layout;
  const rel = posix.join(L.releases, id);
  const tmp = posix.join(L.releases, `.${id}.tmp`);
  const tar = posix.join(L.releases, `.${id}.tar`);
  const source = d.source;
  const failed: ReleaseRecord = {
    time: d.now.toISOString(),
    action: 'deploy',
    release: id,
    result: 'failed',
    ...(source.kind === 'git' ? { ref: source.ref } : { image: source.tag }),
    ...(live ? { previous: live.id } : {}),
    reason: 'preparing the release failed (see the step error)',
  };
  const marker = { id, ...(source.kind === 'git' ? { ref: source.ref } : { image: source.tag }), createdAt: d.now.toISOString() };
  const lines: Command[] = [
    sh`set -e`,
    sh`umask 022`,
    sh`tackle_new=`,
    // On any failure: no half-made release stays behind, and the record says it failed.
    sh`tackle_exit() { rc=$?; rm -f -- ${tar}; if [ "$rc" -ne 0 ]; then [ -z "$tackle_new" ] || rm -rf -- "$tackle_new"; ${appendRecord(L, failed)} || :; fi; }`,
    sh`trap tackle_exit EXIT; trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM`,
    sh`mkdir -p -- ${L.releases}`,
  ];
  if (source.kind === 'git') {
    const repoTmp = `${L.repo}.tmp`;
    lines.push(
      sh`if [ -d ${L.repo} ]; then`,
      sh`  git --git-dir=${L.repo} remote set-url origin ${source.repo}`,
      sh`  ${GIT_ENV} timeout 900 git --git-dir=${L.repo} fetch --quiet --prune --force origin`,
      sh`else`,
      sh`  rm -rf -- ${repoTmp}`,
      sh`  ${GIT_ENV} timeout 900 git clone --quiet --mirror -- ${source.repo} ${repoTmp}`,
      sh`  mv -T -- ${repoTmp} ${L.repo}`,
      sh`fi`,
      // The commit planned from ls-remote, so a dry-run said what is deployed; resolved here when it could not be.
      commit
        ? sh`commit=${commit}; git --git-dir=${L.repo} cat-file -e ${`${commit}^{commit}`} || { printf 'tackle: commit %s (%s) is not in %s any more\\n' ${commit} ${source.ref} ${source.repo} >&2; exit 1; }`
        : sh`commit=$(git --git-dir=${L.repo} rev-parse --verify --quiet ${`${source.ref}^{commit}`}) || { printf 'tackle: %s is not a branch, tag or commit of %s\\n' ${source.ref} ${source.repo} >&2; exit 1; }`,
      sh`tackle_new=${tmp}; rm -rf -- ${tmp}; mkdir -- ${tmp}`,
      sh`git --git-dir=${L.repo} archive --format=tar -o ${tar} "$commit"`,
      sh`tar -x -f ${tar} -C ${tmp}`,
      // The marker is JSON written around the commit only known here: `{…,"commit":"` + commit + `"}`.
      sh`printf '%s%s%s\\n' ${`${JSON.stringify(marker).slice(0, -1)},"commit":"`} "$commit" '"}' > ${posix.join(tmp, MARKER)}`,
    );
  } else {
    const from = source.template ?? (live ? posix.join(L.releases, live.id) : undefined);
    if (!from) throw refuse(`${L.app}: an image release copies the current release, and there is none yet; give image.template (a directory with the compose file) for the first one`);
    const env = posix.join(tmp, source.envFile);
    lines.push(
      sh`tackle_new=${tmp}; rm -rf -- ${tmp}; mkdir -- ${tmp}`,
      sh`cp -a -- ${`${from}/.`} ${tmp}`,
      sh`rm -f -- ${posix.join(tmp, MARKER)}`,
      sh`{ if [ -f ${env} ]; then grep -v -e ${`^${source.variable}=`} -- ${env} || :; fi; printf '%s=%s\\n' ${source.variable} ${source.tag}; } > ${`${env}.tackle-tmp`}`,
      sh`mv -f -- ${`${env}.tackle-tmp`} ${env}`,
      sh`printf '%s\\n' ${JSON.stringify(marker)} > ${posix.join(tmp, MARKER)}`,
    );
  }
  if (d.owner) lines.push(sh`chown -R -- ${d.owner} ${tmp}`);
  lines.push(sh`mv -T -- ${tmp} ${rel}; tackle_new=${rel}`);
  if (d.hook) {
    const env = { RELEASE_DIR: rel, APP_DIR: L.dir, ...(live ? { PREVIOUS_RELEASE_DIR: posix.join(L.releases, live.id) } : {}) };
    lines.push(sh`${inContext(d.hook, { cwd: rel, env })} || { rc=$?; printf 'tackle: the pre-deploy hook failed (exit %s)\\n' "$rc" >&2; exit 1; }`);
  }
  lines.push(switchCommand(L, id), sh`tackle_new=`);
  if (prune.length) lines.push(sh`rm -rf -- ${prune.map((p) => posix.join(L.releases, p))}`);
  return Command.join(lines, '\n');
}

// ---------------------------------------------------------------- restart, health, rollback (on the controller)

/** Restarts the service on `id` and waits for health; resolves with why it is not healthy, or undefined. */
async function restartAndWait(conn: Connection, s: Service, id: string): Promise<string | undefined> {
  if (s.restart) {
    const r = await conn.exec(restartCommand(s.restart, posix.join(s.layout.releases, id), s.layout.app));
    if (r.exitCode !== 0) return `restart failed (${r.command.toString()} exited with code ${r.exitCode}): ${mask(tail(r.stderr || r.stdout, 3), r.command.secrets())}`;
  }
  if (s.health.length === 0) return undefined;
  const outcome = await waitForHealth(conn, s.health, s.wait, { stops: restartStops(s.restart, s.health, s.layout.app) });
  return outcome.kind === 'healthy' ? undefined : describeUnhealthy(outcome);
}

/** Points `current` back at `id` and restarts it; resolves with why it is not healthy, or undefined. */
async function switchBack(conn: Connection, s: Service, id: string): Promise<string | undefined> {
  assertOk(await conn.exec(switchCommand(s.layout, id)), conn.host, `could not switch back to ${id}`);
  return restartAndWait(conn, s, id);
}

function describeRestart(s: Service, id: string): string {
  const restart = s.restart ? `restart (${restartCommand(s.restart, posix.join(s.layout.releases, id), s.layout.app).toString()})` : 'no restart';
  return s.health.length ? `${restart}, then wait until healthy: ${describeHealth(s.health, s.wait)}` : restart;
}

async function record(conn: Connection, layout: ReleaseLayout, entry: Omit<ReleaseRecord, 'time'>): Promise<void> {
  assertOk(await conn.exec(appendRecord(layout, { time: new Date().toISOString(), ...entry })), conn.host, `could not append to ${layout.records}`);
}

function activateCheck(d: DesiredRelease, id: string, previous: string | undefined, what: Pick<ReleaseRecord, 'ref' | 'image'>): Check {
  const fallback = previous ? `; if not, switch back to ${previous}, restart it and check again` : '; there is no previous release to go back to';
  return {
    describe: `${describeRestart(d, id)}${fallback}`,
    run: async ({ connection }) => {
      const base = { action: 'deploy' as const, release: id, ...what, ...(previous ? { previous } : {}) };
      const why = await restartAndWait(connection, d, id);
      if (why === undefined) return record(connection, d.layout, { ...base, result: 'ok' });
      if (!previous) {
        await record(connection, d.layout, { ...base, result: 'failed', reason: why }).catch(() => {});
        throw refuse(`${why}; there is no previous release to roll back to`);
      }
      const again = await switchBack(connection, d, previous);
      await record(connection, d.layout, { ...base, result: 'rolled-back', reason: why }).catch(() => {});
      // The JSON status stays `failed`; the reason says the host is back on the previous release.
      throw refuse(`failed (rolled back): rolled back to ${previous}: ${why}${again ? `; and ${previous} is not healthy either: ${again}` : ''}`);
    },
  };
}

// ---------------------------------------------------------------- planning (pure)

function sameRelease(live: Release, source: Source, ref: GitRef | undefined): boolean {
  if (source.kind === 'image') return live.image === source.tag;
  if (ref?.kind === 'commit') return live.commit === ref.commit;
  // A commit id needs no lookup; a short one matches by prefix, as git would.
  return /^[0-9a-f]{7,64}$/.test(source.ref) && live.commit !== undefined && live.commit.startsWith(source.ref);
}

/**
 * Pure: from the host's releases (and, for git, what the ref names now), the release to make,
 * or undefined when the current release already is that commit or tag.
 *
 * @example
 * planRelease(desired, { kind: 'missing' }, { kind: 'commit', commit: 'ab…', name: 'refs/tags/v1' })
 * // { summary: 'release 20250101T120000Z-v1 (v1 = ab12cd3), the first', actions: [...], checks: [...] }
 */
export function planRelease(d: DesiredRelease, state: ReleasesState, ref: GitRef | undefined): Change | undefined {
  const L = d.layout;
  const releases = state.kind === 'present' ? state.releases : [];
  const current = state.kind === 'present' ? state.current : ({ kind: 'none' } as const);
  if (current.kind === 'other') {
    throw refuse(`${L.current} is ${current.target === '(not a symlink)' ? 'not a symlink' : `a link to ${current.target}`}, not a link into ${L.releases}; tackle will not replace it (move it aside, or point it at a release)`);
  }
  const source = d.source;
  if (source.kind === 'git' && ref?.kind === 'not-found' && !/^[0-9a-f]{7,64}$/.test(source.ref)) {
    throw refuse(`${source.ref} is not a branch or tag of ${source.repo}`);
  }
  const live = current.kind === 'release' ? releases.find((r) => r.id === current.id) : undefined;
  if (live && sameRelease(live, source, ref)) return undefined;

  const name = source.kind === 'git' ? source.ref : source.tag;
  const id = releaseId(d.now, name, releases.map((r) => r.id));
  // The newest `keep` (the new one included) stay, and so does the live one: it is the way back.
  const managed = releases.filter((r) => RELEASE_ID.test(r.id)).map((r) => r.id);
  const kept = new Set([...managed, id].sort().slice(-d.keep));
  const prune = managed.filter((r) => !kept.has(r) && r !== live?.id && !(current.kind === 'release' && r === current.id));
  const commit = source.kind === 'git' ? (ref?.kind === 'commit' ? ref.commit : /^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(source.ref) ? source.ref : undefined) : undefined;

  const what = source.kind === 'git' ? `${source.ref}${commit ? ` = ${commit.slice(0, 7)}` : ref?.kind === 'unavailable' ? `, not resolved now: ${ref.reason}` : ''}` : `image ${source.tag}`;
  const replacing = live ? `replacing ${live.id}` : current.kind === 'release' ? `replacing the missing ${current.id}` : 'the first';
  const summary = `release ${id} (${what}), ${replacing}${d.hook ? ', pre-deploy hook' : ''}${prune.length ? `, prune ${prune.length} old` : ''}`;
  return {
    summary,
    actions: [{ command: prepareScript(d, id, live, prune, commit) }],
    checks: [activateCheck(d, id, live?.id, source.kind === 'git' ? { ref: source.ref, ...(commit ? { commit } : {}) } : { image: source.tag })],
  };
}

/**
 * Pure: the release before `id` in the order they were made (tackle's ids sort by time).
 *
 * @example previousRelease(state.releases, '20250102T000000Z-v2') // the v1 release, if any
 */
export function previousRelease(releases: readonly Release[], id: string): Release | undefined {
  return releases.filter((r) => RELEASE_ID.test(r.id) && r.id < id).at(-1);
}

/** Pure: how a release last ran, from its newest record (undefined when none is left). */
function lastResult(records: readonly ReleaseRecord[], id: string): ReleaseResult | undefined {
  return records.findLast((r) => r.release === id)?.result;
}

/**
 * Pure: the release a plain rollback from `id` goes to: the one that was live when `id` was
 * deployed (the `previous` of its deploy record; by id order when no record says), passing over
 * releases whose newest record is `failed` or `rolled-back` and those no longer on disk.
 * `skipped` lists those passed over, with why.
 *
 * @example rollbackTarget(state, '20250104T000000Z-v2').target?.id // '20250101T000000Z-v1', not the rolled-back v3
 */
export function rollbackTarget(state: ReleasesState & { kind: 'present' }, id: string): { target: Release | undefined; skipped: string[] } {
  const skipped: string[] = [];
  const seen = new Set([id]);
  for (let from = id; ; ) {
    const next = state.records.findLast((r) => r.action === 'deploy' && r.release === from && r.previous !== undefined)?.previous ?? previousRelease(state.releases, from)?.id;
    // Records that loop (edited by hand) end the walk instead of going round.
    if (next === undefined || seen.has(next)) return { target: undefined, skipped };
    seen.add(next);
    const release = state.releases.find((r) => r.id === next);
    const result = lastResult(state.records, next);
    if (release && (result === undefined || result === 'ok')) return { target: release, skipped };
    skipped.push(`${next}: ${release ? `its last record is ${result}` : 'removed'}`);
    from = next;
  }
}

/**
 * Pure: the switch back to `to` (or to the release that ran healthily before the current one,
 * see {@link rollbackTarget}), or undefined when it is current already. When the release
 * switched to is not healthy, `current` goes back to where it was and the step fails.
 *
 * @example planRollback(service, state, undefined)
 */
export function planRollback(s: Service, state: ReleasesState, to: string | undefined): Change | undefined {
  const L = s.layout;
  if (state.kind === 'missing') throw refuse(`${L.dir} does not exist: nothing of ${L.app} was deployed here`);
  const current = state.current;
  if (current.kind === 'other') throw refuse(`${L.current} is not a link into ${L.releases}; tackle will not replace it`);
  const ids = state.releases.map((r) => r.id);
  let target: Release | undefined;
  let note = '';
  if (to !== undefined) {
    target = state.releases.find((r) => r.id === to);
    if (!target) throw refuse(`there is no release ${to} in ${L.releases} (there are: ${ids.join(', ') || 'none'})`);
    const result = lastResult(state.records, to);
    if (result !== undefined && result !== 'ok') note = ` (its last record is ${result})`;
  } else {
    if (current.kind === 'none') throw refuse(`${L.current} does not exist; name the release to go to (there are: ${ids.join(', ') || 'none'})`);
    const found = rollbackTarget(state, current.id);
    const skipped = found.skipped.length ? ` (passed over ${found.skipped.join('; ')})` : '';
    if (!found.target) throw refuse(`no release before ${current.id} ran healthily${skipped}; there is nothing to roll back to, name the release to go to`);
    target = found.target;
    note = skipped;
  }
  if (current.kind === 'release' && current.id === target.id && current.exists) return undefined;
  const from = current.kind === 'release' && current.exists ? current.id : undefined;
  const id = target.id;
  const what = { ...(target.ref ? { ref: target.ref } : {}), ...(target.commit ? { commit: target.commit } : {}), ...(target.image ? { image: target.image } : {}) };
  return {
    summary: `switch ${L.current} ${current.kind === 'release' ? `from ${current.id} ` : ''}back to ${id}${note}`,
    actions: [{ command: switchCommand(L, id) }],
    checks: [
      {
        describe: `${describeRestart(s, id)}${from ? `; if not, switch back to ${from}, restart it and check again` : ''}`,
        run: async ({ connection }) => {
          const why = await restartAndWait(connection, s, id);
          const base = { action: 'rollback' as const, release: id, ...what, ...(current.kind === 'release' ? { previous: current.id } : {}) };
          await record(connection, L, { ...base, result: why === undefined ? 'ok' : 'failed', ...(why ? { reason: why } : {}) });
          if (why === undefined) return;
          if (!from) throw refuse(`rolled back to ${id}, but it is not healthy, and there is no release to switch back to: ${why}`);
          const again = await switchBack(connection, s, from);
          throw refuse(`failed (switched back to ${from}): ${id}: ${why}${again ? `; and ${from} is not healthy either: ${again}` : ''}`);
        },
      },
    ],
  };
}

// ---------------------------------------------------------------- operations

/**
 * Deploys a release: a git ref checked out (or an image tag set in a compose env file) into
 * `/srv/APP/releases/ID`, an optional pre-deploy hook, `current` switched atomically, old
 * releases pruned; then, from the controller, the service restarted and its health awaited.
 * When it is not healthy the host is switched back to the previous release, restarted and
 * checked again, and the step fails with "failed (rolled back): rolled back to ID: why".
 * Every outcome is appended to `/srv/APP/releases.jsonl`. A host whose current release is
 * already that commit (or tag) plans nothing.
 *
 * @example
 * await host.run(deploy.release({
 *   app: 'shop', source: { git: { repo: 'https://git.example.com/shop.git', ref: host.vars.ref } },
 *   hook: sh`./manage migrate`, restart: { systemd: 'shop.service' },
 *   health: [health.http('http://127.0.0.1:8000/health', { body: 'ok' })], wait: { deadlineMs: 60_000 },
 * }));
 */
function release(opts: ReleaseOptions): Operation {
  const op = 'deploy.release';
  const service = checkService(opts, op);
  const source = checkSource(opts.source, `${op} ${opts.app}`);
  const keep = opts.keep ?? 5;
  if (!Number.isInteger(keep) || keep < 1) throw new TypeError(`${op} ${opts.app}: keep must be a whole number ≥ 1, got ${keep}`);
  if (opts.hook !== undefined && !(opts.hook instanceof Command)) throw new TypeError(`${op} ${opts.app}: hook must be built with sh\`…\``);
  if (opts.owner !== undefined && !/^[^\s:]+(:[^\s:]+)?$/.test(opts.owner)) throw new TypeError(`${op} ${opts.app}: owner must be user or user:group, got ${JSON.stringify(opts.owner)}`);
  const d: DesiredRelease = { ...service, source, keep, hook: opts.hook, owner: opts.owner, now: opts.now ?? new Date() };
  const name = `${op} ${opts.app} ${source.kind === 'git' ? source.ref : `image ${source.tag}`}`;
  const state = releasesState(service.layout.dir);
  if (source.kind === 'image') return defineOperation({ name, facts: { state }, options: opts, plan: (f) => planRelease(d, f.state, undefined) });
  const ref: Fact<GitRef> = gitRemoteRef(source.repo, source.ref);
  return defineOperation({ name, facts: { state, ref }, options: opts, plan: (f) => planRelease(d, f.state, f.ref) });
}

/**
 * Switches `current` back to the release that ran healthily before the current one (the one
 * live when it was deployed, never one recorded `failed` or `rolled-back`), or to the release
 * named by `to`, restarts the service and waits for health; records the rollback in
 * `releases.jsonl`. When that release is not healthy, `current` is switched back to where it
 * was and restarted, and the step fails saying so. Nothing happens when `to` is current already.
 *
 * @example
 * await host.run(deploy.rollback({ app: 'shop', restart: { systemd: 'shop.service' }, health: [health.http('http://127.0.0.1:8000/health')] }));
 */
function rollback(opts: RollbackOptions): Operation {
  const op = 'deploy.rollback';
  const service = checkService(opts, op);
  if (opts.to !== undefined && (typeof opts.to !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(opts.to))) throw new TypeError(`${op} ${opts.app}: ${JSON.stringify(opts.to)} is not a release id`);
  return defineOperation({
    name: `${op} ${opts.app}${opts.to ? ` to ${opts.to}` : ''}`,
    facts: { state: releasesState(service.layout.dir) },
    options: opts,
    plan: ({ state }) => planRollback(service, state, opts.to),
  });
}

/**
 * Releases of an app: deploy with health check and automatic rollback, and rollback by hand.
 *
 * @example
 * await host.run(deploy.release({ app: 'api', source: { git: { repo, ref: 'v2' } }, restart: { systemd: 'api' }, health: [health.unit('api')] }));
 * await host.run(deploy.rollback({ app: 'api', restart: { systemd: 'api' } }));
 */
export const deploy = { release, rollback };
