import { posix } from 'node:path';
import { Command, mask, sh } from '../command/command.ts';
import { assertOk, type Connection } from '../connection/connection.ts';
import { defineOperation, type Change, type Check, type CommonOptions, type Operation } from './operation.ts';
import { TackleError, tail } from '../errors.ts';
import {
  GIT_ENV,
  MARKER,
  RELEASE_ID,
  composeStopped,
  gitRemoteRef,
  liveUpstream,
  releasesState,
  type Color,
  type GitRef,
  type LiveUpstream,
  type Release,
  type ReleaseRecord,
  type ReleaseResult,
  type ReleasesState,
} from '../facts/deploy.ts';
import type { Fact } from '../facts/fact.ts';
import { unitStates, type UnitStates } from '../facts/health.ts';
import { inContext } from '../facts/shell.ts';
import { replaceScript, TEMP } from '../connection/replace.ts';
import { describeHealth, describeUnhealthy, unitStop, waitForHealth, type Probe, type StopSign, type WaitOptions } from './health.ts';
import { refuse } from './refuse.ts';
import { previousVersions } from './replace-checked.ts';

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
  if (typeof app !== 'string' || !APP_NAME.test(app)) throw refuse('deploy', `app must be a name of letters, digits, '.', '_' and '-', got ${JSON.stringify(app)}`);
  if (typeof root !== 'string' || !root.startsWith('/') || root.includes('\0')) throw refuse(`deploy ${app}`, `root must be an absolute path, got ${JSON.stringify(root)}`);
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

/**
 * Blue/green: two instances of a systemd template unit (`restart: { systemd: 'app@.service' }`),
 * `app@PORT.service` for each of two ports, each running the release its `APPDIR/current-PORT`
 * link names (`ExecStart=… /srv/app/current-%i/…`, `Environment=PORT=%i`). Blue is the first
 * port, green the second. An nginx site proxies to the upstream NAME (`proxyPass: 'http://NAME'`)
 * that deploys and rollbacks write in `file`; deploy once before adding that site, as nginx
 * refuses a site whose upstream does not exist.
 */
export interface BlueGreenOptions {
  ports: readonly [number, number];
  /** The nginx upstream's name: letters, digits, '_' and '-'. */
  upstream: string;
  /** Default `/etc/nginx/conf.d/upstream-NAME.conf` (Debian's nginx.conf includes conf.d inside `http {}`). */
  file?: string;
  /** Probes for the color on `port` (its unit, its health URL), on top of `health`; checked before traffic moves. */
  health?: (port: number) => readonly Probe[];
  /**
   * Stop the previous color once traffic has moved (after `drainMs`), instead of keeping it
   * running so that a rollback to it is a switch of the upstream without a restart. Default false.
   */
  stopPrevious?: boolean;
  /** Wait this long after the switch before stopping the previous color (requests in flight end); default 5000. */
  drainMs?: number;
}

interface ServiceOptions {
  app: string;
  /** Default /srv. */
  root?: string;
  restart?: Restart;
  /** Probes that must pass after the restart (see `health`); none means a restart that exits 0 is enough. */
  health?: readonly Probe[];
  wait?: WaitOptions;
  /** Start each release beside the live one and move traffic with an nginx upstream; see {@link BlueGreenOptions}. */
  blueGreen?: BlueGreenOptions;
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

/** Blue/green as checked: the template unit, both ports, the upstream file. */
export interface BlueGreen {
  ports: readonly [number, number];
  upstream: string;
  file: string;
  /** The template, `app@.service` or `app@`. */
  unit: string;
  health: (port: number) => readonly Probe[];
  stopPrevious: boolean;
  drainMs: number;
}

/** The app, its layout and how it restarts and proves healthy: what deploy and rollback share. */
export interface Service {
  layout: ReleaseLayout;
  restart: Restart | undefined;
  health: readonly Probe[];
  wait: WaitOptions;
  blueGreen?: BlueGreen | undefined;
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
    throw refuse(op, `${JSON.stringify(ref)} is not a git branch, tag or commit`);
  }
  return ref;
}

function checkService(o: ServiceOptions, op: string): Service {
  const layout = releaseLayout(o.app, o.root);
  const r = o.restart;
  if (r !== undefined) {
    if ('systemd' in r && !/^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$/.test(r.systemd)) throw refuse(op, `restart.systemd ${JSON.stringify(r.systemd)} is not a unit name`);
    if ('compose' in r && r.compose.project !== undefined && !/^[a-z0-9][a-z0-9_-]*$/.test(r.compose.project)) {
      throw refuse(op, `compose project names are lower-case letters, digits, '_' and '-', got ${JSON.stringify(r.compose.project)}`);
    }
    if ('command' in r && !(r.command instanceof Command)) throw refuse(op, `restart.command must be built with sh\`…\``);
  }
  return { layout, restart: r, health: [...(o.health ?? [])], wait: o.wait ?? {}, blueGreen: o.blueGreen === undefined ? undefined : checkBlueGreen(o.blueGreen, r, `${op} ${o.app}`) };
}

const TEMPLATE = /@(\.service)?$/;

function checkBlueGreen(bg: BlueGreenOptions, restart: Restart | undefined, op: string): BlueGreen {
  if (restart === undefined || !('systemd' in restart) || !TEMPLATE.test(restart.systemd)) {
    throw refuse(op, `blueGreen needs restart: { systemd: 'NAME@.service' }, a template unit started once per port`);
  }
  const ports = bg.ports;
  if (!Array.isArray(ports) || ports.length !== 2 || !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) || ports[0] === ports[1]) {
    throw refuse(op, `blueGreen.ports must be two different port numbers, got ${JSON.stringify(ports)}`);
  }
  if (typeof bg.upstream !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(bg.upstream)) throw refuse(op, `blueGreen.upstream must be a name of letters, digits, '_' and '-', got ${JSON.stringify(bg.upstream)}`);
  const file = bg.file ?? `/etc/nginx/conf.d/upstream-${bg.upstream}.conf`;
  if (!file.startsWith('/') || !file.endsWith('.conf') || /[\0\n]/.test(file)) throw refuse(op, `blueGreen.file must be an absolute path ending in .conf, got ${JSON.stringify(file)}`);
  const drainMs = bg.drainMs ?? 5000;
  if (!Number.isInteger(drainMs) || drainMs < 0) throw refuse(op, `blueGreen.drainMs must be a whole number of milliseconds, got ${drainMs}`);
  if (bg.health !== undefined && typeof bg.health !== 'function') throw refuse(op, 'blueGreen.health must be a function of the port');
  return { ports: [ports[0], ports[1]], upstream: bg.upstream, file, unit: restart.systemd, health: bg.health ?? (() => []), stopPrevious: bg.stopPrevious === true, drainMs };
}

function checkSource(source: ReleaseSource, op: string): Source {
  if (typeof source !== 'object' || source === null) throw refuse(op, 'source must be { git: { repo, ref } } or { image: { tag } }');
  if ('git' in source) {
    const { repo, ref } = source.git;
    if (typeof repo !== 'string' || repo === '' || repo.startsWith('-') || /\s/.test(repo)) throw refuse(op, `git repo must be a URL or path, got ${JSON.stringify(repo)}`);
    return { kind: 'git', repo, ref: checkRef(ref, op) };
  }
  if ('image' in source) {
    const { tag, envFile = '.env', variable = 'IMAGE_TAG', template } = source.image;
    if (typeof tag !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw refuse(op, `${JSON.stringify(tag)} is not an image tag`);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw refuse(op, `${JSON.stringify(variable)} is not a variable name`);
    if (envFile.startsWith('/') || envFile.split('/').includes('..') || envFile === '') throw refuse(op, `envFile must be a path inside the release, got ${JSON.stringify(envFile)}`);
    if (template !== undefined && !template.startsWith('/')) throw refuse(op, `template must be an absolute path, got ${JSON.stringify(template)}`);
    return { kind: 'image', tag, envFile, variable, template };
  }
  throw refuse(op, 'source must be { git: { repo, ref } } or { image: { tag } }');
}

/** A release or rollback that failed while being applied (not a refusal: it was tried). */
function failure(reason: string): TackleError {
  return new TackleError({ phase: 'operation', reason });
}

// ---------------------------------------------------------------- commands

/**
 * The `current` link (or another link in the app's directory, such as a color's
 * `current-PORT`) switched atomically: a new link beside it, renamed over it.
 * @example switchCommand(releaseLayout('shop'), '20250304T050607Z-v2')
 */
export function switchCommand(layout: ReleaseLayout, id: string, link = layout.current): Command {
  const tmp = posix.join(layout.dir, `.${posix.basename(link)}.tmp`);
  return sh`rm -rf -- ${tmp} && ln -s -- ${posix.join('releases', id)} ${tmp} && mv -T -- ${tmp} ${link}`;
}

// ---------------------------------------------------------------- blue/green

/**
 * The link naming the release the color on `port` runs.
 * @example slotLink(releaseLayout('shop'), 3001) // '/srv/shop/current-3001'
 */
export function slotLink(layout: ReleaseLayout, port: number): string {
  return `${layout.current}-${port}`;
}

/**
 * The color's unit: the template instantiated with the port.
 * @example colorUnit('app@.service', 3001) // 'app@3001.service'
 */
export function colorUnit(template: string, port: number): string {
  return template.replace(TEMPLATE, (_, suffix: string | undefined) => `@${port}${suffix ?? ''}`);
}

/** Blue is the first port, green the second. @example colorOf(bg, 3002) // 'green' */
export function colorOf(bg: BlueGreen, port: number): Color {
  return port === bg.ports[0] ? 'blue' : 'green';
}

function colorName(bg: BlueGreen, port: number): string {
  return `${colorOf(bg, port)} (port ${port})`;
}

/** The other color's port. */
function otherPort(bg: BlueGreen, port: number | undefined): number {
  return port === bg.ports[0] ? bg.ports[1] : bg.ports[0];
}

/** The service as one color: its unit instance restarted, its own probes and the shared ones. */
function colorService(s: Service, bg: BlueGreen, port: number): Service {
  return { ...s, restart: { systemd: colorUnit(bg.unit, port) }, health: [...bg.health(port), ...s.health], blueGreen: undefined };
}

/**
 * The upstream file that sends an app's traffic to one port.
 * @example upstreamConf('app', 3002) // 'upstream app {\n    server 127.0.0.1:3002;\n}\n' after a comment line
 */
export function upstreamConf(name: string, port: number): string {
  return `# Managed by tackle (deploy.release blue/green): the live color. Deploys and rollbacks rewrite it.\nupstream ${name} {\n    server 127.0.0.1:${port};\n}\n`;
}

/**
 * The upstream file rewritten atomically, the whole configuration checked with `nginx -t` (the
 * previous file back when it fails), then nginx reloaded when it runs: new workers use the new
 * upstream while old ones finish the requests they hold.
 *
 * @example switchUpstreamCommand(bg, 3002)
 */
export function switchUpstreamCommand(bg: BlueGreen, port: number): Command {
  const prev = previousVersions([bg.file]);
  const content = upstreamConf(bg.upstream, port);
  return Command.join(
    [
      // Without a copy of the live file there is no way back from a refused one: stop here.
      sh`{ ${prev.save}; } || exit 1`,
      // A subshell for replaceScript's own `set -e` and traps; not under `||`, which would disable `set -e` inside.
      sh`(`,
      replaceScript(bg.file, [sh`printf '%s' ${content} > ${TEMP}`, sh`chmod 0644 ${TEMP}`]),
      sh`)`,
      sh`tackle_rc=$?; [ "$tackle_rc" -eq 0 ] || { ${prev.forget}; exit "$tackle_rc"; }`,
      prev.checkOrRestore(sh`nginx -t`),
      prev.forget,
      sh`if systemctl is-active --quiet nginx.service; then systemctl reload nginx.service; fi`,
    ],
    '\n',
  );
}

/** Fails unless the color's link still names `id`, as when the rollback was planned. */
function stillLinked(layout: ReleaseLayout, id: string, port: number): Command {
  const link = slotLink(layout, port);
  return sh`[ "$(readlink -- ${link})" = ${posix.join('releases', id)} ] || { printf 'tackle: %s no longer points at %s; plan again\\n' ${link} ${id} >&2; exit 1; }`;
}

function stopCommand(bg: BlueGreen, port: number): Command {
  return sh`systemctl stop ${colorUnit(bg.unit, port)}`;
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

/** Builds the release and points `link` at it: `current`, or in blue/green the color's `current-PORT`, which goes live only once healthy. */
function prepareScript(d: DesiredRelease, id: string, live: Release | undefined, prune: readonly string[], commit: string | undefined, link: string): Command {
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
    if (!from) throw refuse(`deploy.release ${L.app}`, `an image release copies the current release, and there is none yet; give image.template (a directory with the compose file) for the first one`);
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
  lines.push(switchCommand(L, id, link), sh`tackle_new=`);
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
        throw failure(`${why}; there is no previous release to roll back to`);
      }
      const again = await switchBack(connection, d, previous);
      await record(connection, d.layout, { ...base, result: 'rolled-back', reason: why }).catch(() => {});
      // The JSON status stays `failed`; the reason says the host is back on the previous release.
      throw failure(`failed (rolled back): rolled back to ${previous}: ${why}${again ? `; and ${previous} is not healthy either: ${again}` : ''}`);
    },
  };
}

/** A color about to take the traffic: the release it runs, and whether it runs it already (no restart then). */
interface Cutover {
  bg: BlueGreen;
  id: string;
  port: number;
  running: boolean;
}

async function switchUpstream(conn: Connection, bg: BlueGreen, port: number): Promise<string | undefined> {
  const r = await conn.exec(switchUpstreamCommand(bg, port));
  return r.exitCode === 0 ? undefined : `was healthy, but switching upstream ${bg.upstream} to it failed (exit ${r.exitCode}): ${tail(r.stderr || r.stdout, 3)}`;
}

/**
 * Brings the color up on its release (restarted, unless it runs it already), waits until it is
 * healthy on its own port, then moves the traffic to it and points `current` at its release.
 * Resolves with why not, after stopping that color: the traffic is still where it was.
 */
async function cutover(conn: Connection, s: Service, c: Cutover): Promise<string | undefined> {
  const color = colorService(s, c.bg, c.port);
  const why = (await restartAndWait(conn, c.running ? { ...color, restart: undefined } : color, c.id)) ?? (await switchUpstream(conn, c.bg, c.port));
  if (why !== undefined) {
    const stop = await conn.exec(stopCommand(c.bg, c.port));
    return stop.exitCode === 0 ? why : `${why}; and stopping it failed (exit ${stop.exitCode}): ${tail(stop.stderr || stop.stdout, 3)}`;
  }
  assertOk(await conn.exec(switchCommand(s.layout, c.id)), conn.host, `could not point ${s.layout.current} at ${c.id}`);
  return undefined;
}

/** With `stopPrevious`: the color traffic left, stopped once requests in flight had time to end. */
async function retire(conn: Connection, bg: BlueGreen, port: number | undefined): Promise<void> {
  if (!bg.stopPrevious || port === undefined) return;
  await new Promise((r) => setTimeout(r, bg.drainMs));
  assertOk(await conn.exec(stopCommand(bg, port)), conn.host, `could not stop ${colorName(bg, port)}`);
}

function describeCutover(s: Service, c: Cutover, live: number | undefined): string {
  const color = colorService(s, c.bg, c.port);
  const start = c.running ? `${colorName(c.bg, c.port)} runs ${c.id} already: no restart, wait until healthy: ${describeHealth(color.health, s.wait)}` : `${colorName(c.bg, c.port)}: ${describeRestart(color, c.id)}`;
  const after = live === undefined ? '' : c.bg.stopPrevious ? `, stop ${colorName(c.bg, live)} ${c.bg.drainMs} ms later` : `; ${colorName(c.bg, live)} keeps running, for a rollback without restart`;
  const stays = live === undefined ? 'no traffic moves' : `traffic stays on ${colorName(c.bg, live)}`;
  return `${start}; then switch upstream ${c.bg.upstream} to port ${c.port} (${c.bg.file}, nginx -t, reload)${after}; if not healthy, stop ${colorOf(c.bg, c.port)}: ${stays}`;
}

/** Where the traffic stays when a color did not come up, for the step's error. */
function stayed(bg: BlueGreen, current: string | undefined, live: number | undefined): string {
  return live === undefined ? 'no traffic was moved' : `traffic stayed on ${current ? `${current}, ` : ''}${colorOf(bg, live)}, port ${live}`;
}

function blueGreenActivateCheck(d: DesiredRelease, c: Cutover, previous: string | undefined, live: number | undefined, what: Pick<ReleaseRecord, 'ref' | 'commit' | 'image'>): Check {
  return {
    describe: describeCutover(d, c, live),
    run: async ({ connection }) => {
      const base = { action: 'deploy' as const, release: c.id, ...what, ...(previous ? { previous } : {}), port: c.port, color: colorOf(c.bg, c.port) };
      const why = await cutover(connection, d, c);
      if (why === undefined) {
        await record(connection, d.layout, { ...base, result: 'ok' });
        return retire(connection, c.bg, live);
      }
      await record(connection, d.layout, { ...base, result: 'failed', reason: why }).catch(() => {});
      throw failure(`failed (${stayed(c.bg, previous, live)}): ${colorName(c.bg, c.port)} ${why}`);
    },
  };
}

/** The live port: the one the upstream file names, when it is one of the app's two. */
function livePort(bg: BlueGreen, upstream: LiveUpstream | undefined): number | undefined {
  if (upstream === undefined) throw new TypeError(`blue/green plans need the upstream fact of ${bg.file}`);
  if (upstream.kind === 'other') throw refuse('deploy.release', `${bg.file} was not written by tackle (${upstream.reason}); move it aside, or give blueGreen another upstream`);
  return upstream.kind === 'port' && bg.ports.includes(upstream.port) ? upstream.port : undefined;
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
 * // { summary: 'release 20250101T120000Z-v1 (v1), the first', actions: [...], checks: [...] }
 */
export function planRelease(d: DesiredRelease, state: ReleasesState, ref: GitRef | undefined, upstream?: LiveUpstream): Change | undefined {
  const L = d.layout;
  const bg = d.blueGreen;
  const onPort = bg ? livePort(bg, upstream) : undefined;
  const releases = state.kind === 'present' ? state.releases : [];
  const current = state.kind === 'present' ? state.current : ({ kind: 'none' } as const);
  if (current.kind === 'other') {
    throw refuse('deploy.release', `${L.current} is ${current.target === '(not a symlink)' ? 'not a symlink' : `a link to ${current.target}`}, not a link into ${L.releases}; tackle will not replace it (move it aside, or point it at a release)`);
  }
  const source = d.source;
  if (source.kind === 'git' && ref?.kind === 'not-found' && !/^[0-9a-f]{7,64}$/.test(source.ref)) {
    throw refuse('deploy.release', `${source.ref} is not a branch or tag of ${source.repo}`);
  }
  const live = current.kind === 'release' ? releases.find((r) => r.id === current.id) : undefined;
  // Blue/green: a release that is current but not behind the upstream yet is deployed again.
  if (live && sameRelease(live, source, ref) && (!bg || onPort !== undefined)) return undefined;
  const target = bg ? otherPort(bg, onPort) : undefined;
  const slots = state.kind === 'present' ? state.slots : [];

  const name = source.kind === 'git' ? source.ref : source.tag;
  const id = releaseId(d.now, name, releases.map((r) => r.id));
  // The newest `keep` (the new one included) stay, and so does the live one: it is the way back.
  const managed = releases.filter((r) => RELEASE_ID.test(r.id)).map((r) => r.id);
  const kept = new Set([...managed, id].sort().slice(-d.keep));
  // A color's release stays too (the way back without a restart), but for the one about to be replaced.
  const running = new Set(slots.filter((x) => x.port !== target).map((x) => x.id));
  const prune = managed.filter((r) => !kept.has(r) && r !== live?.id && !(current.kind === 'release' && r === current.id) && !running.has(r));
  const commit = source.kind === 'git' ? (ref?.kind === 'commit' ? ref.commit : /^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(source.ref) ? source.ref : undefined) : undefined;

  // The summary names the ref, not the commit it resolves to: a dry-run on a host without git yet
  // cannot know the commit, and its summary must be the real run's. The commands carry the commit.
  const what = source.kind === 'git' ? `${source.ref}${ref?.kind === 'unavailable' ? `, not resolved now: ${ref.reason}` : ''}` : `image ${source.tag}`;
  const replacing = live ? `replacing ${live.id}` : current.kind === 'release' ? `replacing the missing ${current.id}` : 'the first';
  const where = bg && target !== undefined ? `, on ${colorName(bg, target)}${onPort === undefined ? '' : ` beside ${colorName(bg, onPort)}`}` : '';
  const summary = `release ${id} (${what}), ${replacing}${where}${d.hook ? ', pre-deploy hook' : ''}${prune.length ? `, prune ${prune.length} old` : ''}`;
  const recorded = source.kind === 'git' ? { ref: source.ref, ...(commit ? { commit } : {}) } : { image: source.tag };
  return {
    summary,
    actions: [{ command: prepareScript(d, id, live, prune, commit, bg && target !== undefined ? slotLink(L, target) : L.current) }],
    checks: [bg && target !== undefined ? blueGreenActivateCheck(d, { bg, id, port: target, running: false }, live?.id, onPort, recorded) : activateCheck(d, id, live?.id, recorded)],
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
export function planRollback(s: Service, state: ReleasesState, to: string | undefined, colors?: ColorFacts): Change | undefined {
  const L = s.layout;
  if (state.kind === 'missing') throw refuse('deploy.rollback', `${L.dir} does not exist: nothing of ${L.app} was deployed here`);
  const current = state.current;
  if (current.kind === 'other') throw refuse('deploy.rollback', `${L.current} is not a link into ${L.releases}; tackle will not replace it`);
  const ids = state.releases.map((r) => r.id);
  let target: Release | undefined;
  let note = '';
  if (to !== undefined) {
    target = state.releases.find((r) => r.id === to);
    if (!target) throw refuse('deploy.rollback', `there is no release ${to} in ${L.releases} (there are: ${ids.join(', ') || 'none'})`);
    const result = lastResult(state.records, to);
    if (result !== undefined && result !== 'ok') note = ` (its last record is ${result})`;
  } else {
    if (current.kind === 'none') throw refuse('deploy.rollback', `${L.current} does not exist; name the release to go to (there are: ${ids.join(', ') || 'none'})`);
    const found = rollbackTarget(state, current.id);
    const skipped = found.skipped.length ? ` (passed over ${found.skipped.join('; ')})` : '';
    if (!found.target) throw refuse('deploy.rollback', `no release before ${current.id} ran healthily${skipped}; there is nothing to roll back to, name the release to go to`);
    target = found.target;
    note = skipped;
  }
  if (current.kind === 'release' && current.id === target.id && current.exists) return undefined;
  const from = current.kind === 'release' && current.exists ? current.id : undefined;
  const id = target.id;
  const what = { ...(target.ref ? { ref: target.ref } : {}), ...(target.commit ? { commit: target.commit } : {}), ...(target.image ? { image: target.image } : {}) };
  if (s.blueGreen) return planBlueGreenRollback(s, s.blueGreen, state, target, note, what, colors);
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
          if (!from) throw failure(`rolled back to ${id}, but it is not healthy, and there is no release to switch back to: ${why}`);
          const again = await switchBack(connection, s, from);
          throw failure(`failed (switched back to ${from}): ${id}: ${why}${again ? `; and ${from} is not healthy either: ${again}` : ''}`);
        },
      },
    ],
  };
}

/** What a blue/green rollback reads besides the releases: the upstream file, and whether each color's unit runs. */
export interface ColorFacts {
  upstream: LiveUpstream;
  units: UnitStates;
}

/**
 * The other color takes the traffic back on `target`: when it still runs that release (kept
 * running after the deploy that replaced it), a health check and a switch of the upstream, no
 * restart; otherwise its link is pointed at `target` and it is restarted and checked first.
 */
function planBlueGreenRollback(s: Service, bg: BlueGreen, state: ReleasesState & { kind: 'present' }, target: Release, note: string, what: Pick<ReleaseRecord, 'ref' | 'commit' | 'image'>, colors: ColorFacts | undefined): Change {
  if (colors === undefined) throw new TypeError(`blue/green rollbacks need the upstream and unit facts of ${s.layout.app}`);
  const live = livePort(bg, colors.upstream);
  if (live === undefined) throw refuse('deploy.rollback', `${bg.file} names neither port ${bg.ports.join(' nor ')}: no color is live to roll back from; deploy with blueGreen first`);
  const port = otherPort(bg, live);
  const unit = colorUnit(bg.unit, port);
  const running = state.slots.some((x) => x.port === port && x.id === target.id) && colors.units.kind === 'states' && colors.units.states[unit] === 'active';
  const c: Cutover = { bg, id: target.id, port, running };
  const current = state.current.kind === 'release' ? state.current.id : undefined;
  return {
    summary: `switch upstream ${bg.upstream} from ${colorName(bg, live)}${current ? ` (${current})` : ''} back to ${target.id} on ${colorName(bg, port)}${running ? ', which runs it already: no restart' : ''}${note}`,
    // Running already: the action only makes sure the color still runs what was planned (the engine runs checks after actions).
    actions: [{ command: running ? stillLinked(s.layout, target.id, port) : switchCommand(s.layout, target.id, slotLink(s.layout, port)) }],
    checks: [
      {
        describe: describeCutover(s, c, live),
        run: async ({ connection }) => {
          const why = await cutover(connection, s, c);
          const base = { action: 'rollback' as const, release: target.id, ...what, ...(current ? { previous: current } : {}), port, color: colorOf(bg, port) };
          await record(connection, s.layout, { ...base, result: why === undefined ? 'ok' : 'failed', ...(why ? { reason: why } : {}) });
          if (why === undefined) return retire(connection, bg, live);
          throw failure(`failed (${stayed(bg, current, live)}): ${colorName(bg, port)} ${why}`);
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
 * With `blueGreen` (see {@link BlueGreenOptions}) nothing live is restarted: the release is
 * linked as `current-PORT` of the color not live, that color's unit is restarted and checked on
 * its own port, and only then is the nginx upstream switched (nginx -t, reload) and `current`
 * pointed at it. When it is not healthy it is stopped, the traffic stays on the live color, and
 * the step fails with "failed (traffic stayed on ID, COLOR, port N): why".
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
  if (!Number.isInteger(keep) || keep < 1) throw refuse(`${op} ${opts.app}`, `keep must be a whole number ≥ 1, got ${keep}`);
  if (opts.hook !== undefined && !(opts.hook instanceof Command)) throw refuse(`${op} ${opts.app}`, `hook must be built with sh\`…\``);
  if (opts.owner !== undefined && !/^[^\s:]+(:[^\s:]+)?$/.test(opts.owner)) throw refuse(`${op} ${opts.app}`, `owner must be user or user:group, got ${JSON.stringify(opts.owner)}`);
  const d: DesiredRelease = { ...service, source, keep, hook: opts.hook, owner: opts.owner, now: opts.now ?? new Date() };
  const name = `${op} ${opts.app} ${source.kind === 'git' ? source.ref : `image ${source.tag}`}`;
  const state = releasesState(service.layout.dir);
  const bg = service.blueGreen;
  if (bg) {
    const upstream = liveUpstream(bg.file);
    if (source.kind === 'image') return defineOperation({ name, facts: { state, upstream }, options: opts, plan: (f) => planRelease(d, f.state, undefined, f.upstream) });
    return defineOperation({ name, facts: { state, upstream, ref: gitRemoteRef(source.repo, source.ref) }, options: opts, plan: (f) => planRelease(d, f.state, f.ref, f.upstream) });
  }
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
 * With `blueGreen` the other color takes the traffic back: when it still runs that release, a
 * health check and an upstream switch, no restart; else it is relinked, restarted and checked
 * first, and stopped if not healthy while the traffic stays where it was.
 *
 * @example
 * await host.run(deploy.rollback({ app: 'shop', restart: { systemd: 'shop.service' }, health: [health.http('http://127.0.0.1:8000/health')] }));
 */
function rollback(opts: RollbackOptions): Operation {
  const op = 'deploy.rollback';
  const service = checkService(opts, op);
  if (opts.to !== undefined && (typeof opts.to !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(opts.to))) throw refuse(`${op} ${opts.app}`, `${JSON.stringify(opts.to)} is not a release id`);
  const name = `${op} ${opts.app}${opts.to ? ` to ${opts.to}` : ''}`;
  const state = releasesState(service.layout.dir);
  const bg = service.blueGreen;
  if (bg) {
    const facts = { state, upstream: liveUpstream(bg.file), units: unitStates(bg.ports.map((p) => colorUnit(bg.unit, p))) };
    return defineOperation({ name, facts, options: opts, plan: (f) => planRollback(service, f.state, opts.to, { upstream: f.upstream, units: f.units }) });
  }
  return defineOperation({ name, facts: { state }, options: opts, plan: (f) => planRollback(service, f.state, opts.to) });
}

/**
 * Releases of an app: deploy with health check and automatic rollback, and rollback by hand.
 *
 * @example
 * await host.run(deploy.release({ app: 'api', source: { git: { repo, ref: 'v2' } }, restart: { systemd: 'api' }, health: [health.unit('api')] }));
 * await host.run(deploy.rollback({ app: 'api', restart: { systemd: 'api' } }));
 */
export const deploy = { release, rollback };
