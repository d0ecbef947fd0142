import { sh, type Command } from '../command/command.ts';
import { defineOperation, UNKNOWN, type Action, type Change, type CommonOptions, type Effects, type Operation } from './operation.ts';
import { certbotLineages, type CertbotState } from '../facts/certbot.ts';
import { fail2banHost, type Fail2banHost } from '../facts/fail2ban.ts';
import { pathInfo, sha256Hex, type PathInfo } from '../facts/files.ts';
import { nginxInstall, NGINX_SITES_AVAILABLE, NGINX_SITES_ENABLED } from '../facts/nginx.ts';
import { systemdUnit } from '../facts/systemd.ts';
import { ufwState } from '../facts/ufw.ts';
import {
  APT_UPDATE_STAMP,
  aptCandidates,
  aptLists,
  candidateFor,
  dpkgPackages,
  packageState,
  aptRelease,
  type AptLists,
  type AptRelease,
  type Candidates,
  type DpkgEntry,
  type DpkgPackages,
  type PackageState,
} from '../facts/apt.ts';
import { refuse } from './refuse.ts';

/** Desired state of some Debian packages. */
export interface PackagesOptions extends CommonOptions {
  /** Package names, optionally with an architecture (`libc6:i386`). Versions (`foo=1.2`) are not supported. */
  names: readonly string[];
  /**
   * `present` (default): installed, at any version. `latest`: installed at apt's
   * candidate version (held packages are left alone). `absent`: removed.
   */
  state?: 'present' | 'absent' | 'latest';
  /** With `state: 'absent'`, also remove configuration files (and purge packages already removed without it). */
  purge?: boolean;
  /**
   * Run `apt-get update` before installing when the lists are older than this (default 3600), were never
   * fetched, or a sources file changed since the last update. Never when nothing is to be installed.
   */
  cacheMaxAgeSeconds?: number;
  /**
   * Seconds to wait for another apt or dpkg to finish (apt's daily jobs, unattended-upgrades on a
   * first boot) before failing the step with the lock's holder; default {@link APT_LOCK_TIMEOUT_SECONDS}.
   */
  lockTimeoutSeconds?: number;
}

interface Desired {
  names: string[];
  state: 'present' | 'absent' | 'latest';
  purge: boolean;
  maxAge: number;
  lockTimeout: number;
}

// Debian policy: lowercase letters, digits, + - . ; at least two characters. Also keeps option-like words out.
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$/;
const STATES: readonly string[] = ['present', 'absent', 'latest'];

/** How long an apt step waits for another apt or dpkg (unattended-upgrades after boot) by default. */
export const APT_LOCK_TIMEOUT_SECONDS = 600;

// apt's and dpkg's locks, in the order apt takes them.
const APT_LOCKS = ['/var/lib/dpkg/lock-frontend', '/var/lib/dpkg/lock', '/var/lib/apt/lists/lock', '/var/cache/apt/archives/lock'] as const;

/**
 * An apt-get command that never asks and waits at most `lockTimeout` seconds for apt's and dpkg's
 * locks, then fails with a last line naming the lock, its holder and the wait:
 * `apt is busy: /var/lib/dpkg/lock-frontend held by process 812 (unattended-upgr) for 600 s (lock timeout 600 s)`.
 * noninteractive: debconf would otherwise ask on the ssh channel's stdin and wait forever.
 * confdef/confold: keep locally changed config files without asking. DPkg::Lock::Timeout makes
 * apt-get wait for the dpkg locks, but apt 2.6 does not wait for the lists lock (`update`) nor the
 * archives lock (held while apt's daily job downloads): on those it fails at once, so it is run
 * again until the time is up, each time with the time left. After a wait apt no longer names the
 * holder, so it is read from /proc/locks (apt locks with fcntl).
 *
 * @example aptGetCommand(sh`install nginx`, 600) // start=$(date +%s) … apt-get -y -q … install nginx …
 */
export function aptGetCommand(args: Command, lockTimeout: number): Command {
  return sh`start=$(date +%s)
while :; do
  left=$((start + ${lockTimeout} - $(date +%s))); [ "$left" -gt 0 ] || left=0
  out=$(LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout="$left" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${args} 2>&1) && break
  s=$?
  case $out in *'Could not get lock'*|*'Unable to acquire the dpkg frontend lock'*|*'Unable to lock '*) ;; *) printf '%s\\n' "$out" >&2; exit "$s";; esac
  if [ "$((start + ${lockTimeout} - $(date +%s)))" -gt 0 ]; then sleep 5; continue; fi
  printf '%s\\n' "$out" >&2
  held='a lock (its holder has just gone)'
  for f in ${[...APT_LOCKS]}; do
    p=$(awk -v i="$(stat -c %i "$f" 2>/dev/null)" '$6 ~ (":" i "$") && $5 > 0 { print $5; exit }' /proc/locks 2>/dev/null)
    if [ -n "$p" ]; then held="$f held by process $p ($(cat "/proc/$p/comm" 2>/dev/null))"; break; fi
  done
  printf 'apt is busy: %s for %s s (lock timeout ${lockTimeout} s)\\n' "$held" "$(($(date +%s) - start))" >&2
  exit "$s"
done
printf '%s\\n' "$out"`;
}

/**
 * Ensures Debian packages are installed (`present`, `latest`) or removed (`absent`).
 * Only the packages that need it are passed to apt-get, so a present package is
 * never upgraded as a side effect. `apt-get update` runs before installing when
 * the lists are older than `cacheMaxAgeSeconds`, were never fetched, or predate a
 * change to the sources (a repository just added), and never when nothing is to be
 * installed. A virtual name (`mail-transport-agent`) counts as present when an
 * installed package provides it.
 *
 * @example
 * await host.run(apt.packages({ names: ['nginx', 'curl'] }));
 * await host.run(apt.packages({ names: ['telnet'], state: 'absent', purge: true }));
 */
function packages(options: PackagesOptions): Operation {
  const desired = checkPackages(options);
  const suffix = desired.state === 'present' ? '' : ` (${desired.purge ? 'purged' : desired.state})`;
  const name = `apt.packages ${desired.names.join(', ')}${suffix}`;
  // The release says which upstream version a package will have (nginx -v), lists or not.
  if (desired.state === 'latest') {
    return defineOperation({
      name,
      options,
      facts: { dpkg: dpkgPackages, lists: aptLists, release: aptRelease, candidates: aptCandidates(desired.names) },
      plan: (f) => planLatest(desired, f),
    });
  }
  return defineOperation({ name, options, facts: { dpkg: dpkgPackages, lists: aptLists, release: aptRelease }, plan: (f) => planPackages(desired, { ...f, candidates: {} }) });
}

/** What an apt step plans from. */
interface AptFacts {
  dpkg: DpkgPackages;
  lists: AptLists;
  candidates: Candidates;
  release: AptRelease;
}

// ---------------------------------------------------------------- effects

/**
 * What installing a package does to what tackle's facts read, for planning the steps after it
 * (a dry-run of a fresh host): the paths it and its maintainer scripts write, and the values of
 * the facts it decides. Measured on Debian 12 (dpkg -L, and the host after the install). A
 * package missing here may change anything: every fact is unknown after installing it.
 */
interface Shipped {
  writes: readonly string[];
  /**
   * The upstream version each release installs (`debian bookworm` → `1.22.1`), for predictions
   * that depend on it (`nginx -v`): a stable release keeps a package's upstream version.
   */
  versions?: Readonly<Record<string, string>>;
  /** Fact key → value once installed. */
  facts?(version: string | typeof UNKNOWN): Record<string, unknown>;
  /** Fact key → how it changes (for facts that say more than whether the package is there). */
  update?: Readonly<Record<string, (before: never) => unknown>>;
}

const file = (content: string, mode = '0644'): PathInfo => ({
  kind: 'file',
  mode,
  owner: 'root',
  group: 'root',
  uid: 0,
  gid: 0,
  size: Buffer.byteLength(content),
  sha256: sha256Hex(content),
  content: Buffer.from(content).toString('base64'),
});
const PYTHON = '/usr/lib/python3/dist-packages/';
const unitFile = (name: string) => `/lib/systemd/system/${name}`;

const SHIPPED: Readonly<Record<string, Shipped>> = {
  'ca-certificates': { writes: ['/etc/ssl/certs/', '/etc/ca-certificates.conf', '/usr/share/ca-certificates/', '/usr/sbin/update-ca-certificates'] },
  curl: { writes: ['/usr/bin/curl'] },
  tree: { writes: ['/usr/bin/tree'] },
  git: { writes: ['/usr/bin/git', '/usr/bin/git-shell', '/usr/lib/git-core', '/usr/share/git-core', '/usr/share/perl5/Git.pm', '/usr/share/perl5/Git', '/etc/bash_completion.d/git-prompt'] },
  rclone: { writes: ['/usr/bin/rclone', '/usr/bin/rclonefs', '/sbin/mount.rclone', '/etc/fuse.conf', '/usr/bin/fusermount3'] },
  less: { writes: ['/usr/bin/less', '/usr/bin/lessecho', '/usr/bin/lesskey', '/usr/bin/lesspipe', '/usr/bin/lessfile'] },
  sudo: { writes: ['/etc/sudoers', '/etc/sudoers.d/README', '/etc/pam.d/sudo', '/usr/bin/sudo', unitFile('sudo.service')] },
  'python3-systemd': { writes: [PYTHON] },
  'python3-certbot-nginx': { writes: [PYTHON] },
  ufw: {
    // Its postinst writes the rule files and the before/after hooks into /etc/ufw.
    writes: ['/etc/ufw/', '/etc/default/ufw', '/usr/sbin/ufw', '/lib/ufw/', unitFile('ufw.service'), '/usr/sbin/iptables', '/usr/sbin/ip6tables', '/usr/sbin/nft', '/etc/nftables.conf', unitFile('nftables.service')],
    facts: () => ({
      [ufwState.key]: { kind: 'ufw', active: false, ipv6: true, defaults: { incoming: 'deny', outgoing: 'allow', routed: 'deny' }, rules: [] },
      // Debian's hook (ufw 0.36): not what tackle writes there.
      [pathInfo('/etc/ufw/after.init').key]: { kind: 'file', mode: '0640', owner: 'root', group: 'root', uid: 0, gid: 0, size: 1126, sha256: 'ufw-package' },
    }),
  },
  fail2ban: {
    writes: [
      ...['fail2ban.conf', 'jail.conf', 'jail.d/defaults-debian.conf', 'filter.d/', 'action.d/', 'paths-common.conf', 'paths-debian.conf', 'paths-arch.conf', 'paths-opensuse.conf'].map((f) => `/etc/fail2ban/${f}`),
      '/etc/default/fail2ban',
      '/usr/bin/fail2ban-client',
      '/usr/bin/fail2ban-server',
      '/usr/bin/fail2ban-regex',
      unitFile('fail2ban.service'),
      '/var/lib/fail2ban/',
      PYTHON,
    ],
    update: { [fail2banHost.key]: (before: Fail2banHost): Fail2banHost => ({ ...before, installed: true }) },
  },
  'unattended-upgrades': {
    writes: ['/etc/apt/apt.conf.d/20auto-upgrades', '/etc/apt/apt.conf.d/50unattended-upgrades', '/usr/bin/unattended-upgrade', '/usr/bin/unattended-upgrades', unitFile('unattended-upgrades.service'), PYTHON],
    facts: () => ({ [pathInfo('/etc/apt/apt.conf.d/20auto-upgrades').key]: file('APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n') }),
  },
  nginx: {
    writes: [
      ...['nginx.conf', 'mime.types', 'fastcgi.conf', 'fastcgi_params', 'proxy_params', 'scgi_params', 'uwsgi_params', 'koi-utf', 'koi-win', 'win-utf', 'snippets/', 'modules-enabled/', 'modules-available/', 'conf.d/'].map((f) => `/etc/nginx/${f}`),
      `${NGINX_SITES_AVAILABLE}/default`,
      `${NGINX_SITES_ENABLED}/default`,
      '/etc/default/nginx',
      '/etc/ufw/applications.d/nginx',
      '/usr/sbin/nginx',
      unitFile('nginx.service'),
      '/var/www/html/',
      '/var/log/nginx/',
      '/var/lib/nginx/',
    ],
    versions: { 'debian bookworm': '1.22.1', 'debian trixie': '1.26.3', 'ubuntu jammy': '1.18.0', 'ubuntu noble': '1.24.0' },
    // Its postinst enables the default site and starts nginx.
    facts: (version) => ({
      [nginxInstall.key]: version === UNKNOWN ? UNKNOWN : { kind: 'installed', version },
      [pathInfo(`${NGINX_SITES_ENABLED}/default`).key]: { kind: 'link', target: `${NGINX_SITES_AVAILABLE}/default` },
      [systemdUnit('nginx').key]: {
        kind: 'unit',
        id: 'nginx.service',
        names: ['nginx.service'],
        loadState: 'loaded',
        activeState: 'active',
        subState: 'running',
        fragmentPath: unitFile('nginx.service'),
        unitFileState: 'enabled',
        canReload: true,
        needDaemonReload: false,
      },
    }),
  },
  certbot: {
    writes: ['/etc/letsencrypt/cli.ini', '/etc/cron.d/certbot', '/usr/bin/certbot', '/usr/bin/letsencrypt', unitFile('certbot.service'), unitFile('certbot.timer'), PYTHON],
    update: { [certbotLineages.key]: (before: CertbotState): CertbotState => ({ ...before, installed: true }) },
  },
};

// The upstream version a package will have: its release's, unless other sources may provide it.
function upstreamVersion(shipped: Shipped, release: AptRelease | undefined): string | typeof UNKNOWN {
  // No release read (a composite op planning apt with dpkg and lists only): nothing to say.
  if (!release || release.otherSources) return UNKNOWN;
  return shipped.versions?.[release.release] ?? UNKNOWN;
}

/**
 * What installing `names` does to the facts: dpkg's list and apt's lists as they will be, and for
 * each package what {@link SHIPPED} knows of it. A package it does not know may change anything:
 * every other fact is unknown after it.
 */
function installEffects(names: readonly string[], updated: boolean, { dpkg, candidates, release }: AptFacts): Effects {
  const base = (n: string) => n.split(':')[0] ?? n;
  const added = names.map((n): DpkgEntry => {
    const [name = n, arch = dpkg.nativeArch] = n.split(':');
    const c = candidateFor(candidates, n, dpkg.nativeArch);
    return { name, arch, version: c.kind === 'version' ? c.version : 'unknown', want: 'install', flag: 'ok', state: 'installed', provides: [] };
  });
  const facts: Record<string, unknown> = {
    [dpkgPackages.key]: { nativeArch: dpkg.nativeArch, entries: [...dpkg.entries.filter((e) => !added.some((a) => a.name === e.name && a.arch === e.arch)), ...added] },
    ...(updated ? { [aptLists.key]: { kind: 'fetched', ageSeconds: 0, sourcesChanged: false } } : {}),
  };
  const shipped = names.map((n) => SHIPPED[base(n)]);
  if (shipped.some((p) => p === undefined)) return { facts, touches: () => true };
  const update: Record<string, (before: never) => unknown> = {};
  const writes = ['/var/lib/dpkg/', '/var/lib/apt/', '/var/cache/apt/'];
  for (const p of shipped as Shipped[]) {
    writes.push(...p.writes);
    Object.assign(facts, p.facts?.(upstreamVersion(p, release)));
    Object.assign(update, p.update);
  }
  return { facts, update, writes };
}

// Removing runs the packages' scripts too: anything they touched may change.
const REMOVAL_EFFECTS: Effects = { touches: () => true };

function checkPackages(o: PackagesOptions): Desired {
  if (!Array.isArray(o.names) || o.names.length === 0) throw refuse('apt.packages', 'names must be a non-empty array of package names');
  for (const n of o.names as unknown[]) {
    if (typeof n !== 'string' || !PACKAGE_NAME.test(n)) {
      throw refuse('apt.packages', `${JSON.stringify(n)} is not a Debian package name such as "nginx" or "libc6:i386"`);
    }
  }
  const state = o.state ?? 'present';
  if (!STATES.includes(state)) throw refuse('apt.packages', `state must be one of ${STATES.join(', ')} (got ${JSON.stringify(state)})`);
  if (o.purge && state !== 'absent') throw refuse('apt.packages', "purge only applies to state 'absent'");
  const maxAge = o.cacheMaxAgeSeconds ?? 3600;
  if (typeof maxAge !== 'number' || !(maxAge >= 0) || !Number.isFinite(maxAge)) {
    throw refuse('apt.packages', 'cacheMaxAgeSeconds must be a number of seconds, 0 or more');
  }
  const lockTimeout = o.lockTimeoutSeconds ?? APT_LOCK_TIMEOUT_SECONDS;
  if (!Number.isInteger(lockTimeout) || lockTimeout < 0) throw refuse('apt.packages', 'lockTimeoutSeconds must be a whole number of seconds, 0 or more');
  return { names: [...new Set(o.names)], state, purge: o.purge === true, maxAge, lockTimeout };
}

function planPackages(d: Desired, f: AptFacts): Change | undefined {
  const { dpkg } = f;
  const states = d.names.map((n) => ({ name: n, state: packageState(dpkg, n) }));
  if (d.state === 'absent') {
    // A partial package is removed too; a virtual name is never a reason to remove its provider.
    const remove = states.filter(({ state: s }) => s.kind === 'installed' || s.kind === 'partial' || (d.purge && s.kind === 'config-files')).map((p) => p.name);
    if (remove.length === 0) return undefined;
    const verb = d.purge ? 'purge' : 'remove';
    return { summary: `${verb} ${remove.join(', ')}`, actions: [{ command: aptGet(d, verb, remove) }], effects: REMOVAL_EFFECTS };
  }
  const missing = states.filter(({ state: s }) => !isPresent(s)).map((p) => p.name);
  if (missing.length === 0) return undefined;
  return install(d, f, missing, `install ${missing.join(', ')}`);
}

function planLatest(d: Desired, f: AptFacts): Change | undefined {
  const { dpkg, lists, candidates } = f;
  // Held packages are the host's explicit choice, and apt-get -y refuses to change them anyway;
  // a virtual name cannot be installed by name ("explicitly select one").
  const wanted = d.names
    .map((n) => ({ name: n, state: packageState(dpkg, n) }))
    .filter(({ state: s }) => !(s.kind === 'installed' && s.held) && s.kind !== 'provided');
  if (wanted.length === 0) return undefined;
  if (staleness(d, lists) !== undefined) {
    // Candidates read from stale lists say nothing; apt-get install is a no-op for packages already newest.
    const names = wanted.map((p) => p.name);
    return install(d, f, names, `install or upgrade ${names.join(', ')} to the latest version`);
  }
  const said: string[] = [];
  const names: string[] = [];
  for (const { name, state } of wanted) {
    if (state.kind !== 'installed') {
      names.push(name);
      said.push(`install ${name}`);
      continue;
    }
    const candidate = candidateFor(candidates, name, dpkg.nativeArch);
    if (candidate.kind === 'version' && candidate.version !== state.version) {
      names.push(name);
      said.push(`upgrade ${name} ${state.version} → ${candidate.version}`);
    }
  }
  if (names.length === 0) return undefined;
  return install(d, f, names, said.join(', '));
}

function isPresent(s: PackageState): boolean {
  return s.kind === 'installed' || s.kind === 'provided';
}

/** Why the lists must be refreshed first, or undefined when they are fresh enough. */
function staleness(d: Desired, lists: AptLists): string | undefined {
  if (lists.kind === 'never') return 'lists never fetched';
  if (lists.sourcesChanged) return 'sources changed since the last update';
  if (lists.ageSeconds > d.maxAge) return `lists ${Math.round(lists.ageSeconds / 60)} min old`;
  return undefined;
}

function install(d: Desired, f: AptFacts, names: string[], summary: string): Change {
  const installing: Action = { command: aptGet(d, 'install', names) };
  const why = staleness(d, f.lists);
  if (why === undefined) return { summary, actions: [installing], effects: installEffects(names, false, f) };
  // A plain apt-get update does not touch the stamp (apt's daily job and Ubuntu's hook do); the lists fact reads it.
  const refresh: Action[] = [{ command: aptGetCommand(sh`update`, d.lockTimeout) }, { command: sh`touch ${APT_UPDATE_STAMP}` }];
  return { summary: `apt-get update (${why}), ${summary}`, actions: [...refresh, installing], effects: installEffects(names, true, f) };
}

function aptGet(d: Desired, verb: 'install' | 'remove' | 'purge', names: readonly string[]): Command {
  return aptGetCommand(sh`${verb} ${names}`, d.lockTimeout);
}

/**
 * Debian package operations.
 *
 * @example
 * await host.run(apt.packages({ names: ['nginx'], state: 'latest', notify: handler('restart nginx') }));
 */
export const apt = { packages };
