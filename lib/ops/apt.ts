import { sh, type Command } from '../command/command.ts';
import { defineOperation, type Action, type Change, type CommonOptions, type Operation } from './operation.ts';
import { systemdUnit, type SystemdUnit } from '../facts/systemd.ts';
import { planService } from './systemd.ts';
import {
  APT_UPDATE_STAMP,
  aptCandidates,
  aptLists,
  candidateFor,
  dpkgPackages,
  packageState,
  type AptLists,
  type Candidates,
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
   * Units these packages provide that must be enabled and running. Installing starts them in the
   * same step (as Debian's postinst usually does anyway), so a dry-run predicts exactly what the real
   * run changes; when the packages are already there, only the units' state is checked.
   */
  services?: readonly string[];
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
  const services = [...(options.services ?? [])];
  if (services.length > 0 && desired.state === 'absent') throw refuse('apt.packages', 'services apply to installed packages, not absent ones');
  // One fact per unit; the key names it so the plan can find its unit again.
  const units = Object.fromEntries(services.map((s) => [`unit:${s}`, systemdUnit(s)]));
  const withServices = (change: Change | undefined, facts: Record<string, unknown>) => ensureServices(change, services, (s) => facts[`unit:${s}`] as SystemdUnit);
  if (desired.state === 'latest') {
    return defineOperation({
      name,
      options,
      facts: { dpkg: dpkgPackages, lists: aptLists, candidates: aptCandidates(desired.names), ...units },
      plan: (f) => withServices(planLatest(desired, f.dpkg, f.lists, f.candidates), f),
    });
  }
  return defineOperation({ name, options, facts: { dpkg: dpkgPackages, lists: aptLists, ...units }, plan: (f) => withServices(planPackages(desired, f.dpkg, f.lists), f) });
}

// Installing: enable --now right after apt-get (a no-op where postinst already did it). Already
// installed: each unit's own state decides.
function ensureServices(change: Change | undefined, services: readonly string[], unit: (name: string) => SystemdUnit): Change | undefined {
  if (services.length === 0) return change;
  if (change) return { ...change, summary: `${change.summary}, enable and start ${services.join(', ')}`, actions: [...change.actions, { command: sh`systemctl enable --now ${services}` }] };
  const changes = services.map((name) => planService({ name, enabled: true, state: 'started', daemonReload: true }, unit(name))).filter((c): c is Change => c !== undefined);
  if (changes.length === 0) return undefined;
  return { summary: changes.map((c) => c.summary).join(', '), actions: changes.flatMap((c) => c.actions) };
}

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

function planPackages(d: Desired, dpkg: DpkgPackages, lists: AptLists): Change | undefined {
  const states = d.names.map((n) => ({ name: n, state: packageState(dpkg, n) }));
  if (d.state === 'absent') {
    // A partial package is removed too; a virtual name is never a reason to remove its provider.
    const remove = states.filter(({ state: s }) => s.kind === 'installed' || s.kind === 'partial' || (d.purge && s.kind === 'config-files')).map((p) => p.name);
    if (remove.length === 0) return undefined;
    const verb = d.purge ? 'purge' : 'remove';
    return { summary: `${verb} ${remove.join(', ')}`, actions: [{ command: aptGet(d, verb, remove) }] };
  }
  const missing = states.filter(({ state: s }) => !isPresent(s)).map((p) => p.name);
  if (missing.length === 0) return undefined;
  return install(d, lists, missing, `install ${missing.join(', ')}`);
}

function planLatest(d: Desired, dpkg: DpkgPackages, lists: AptLists, candidates: Candidates): Change | undefined {
  // Held packages are the host's explicit choice, and apt-get -y refuses to change them anyway;
  // a virtual name cannot be installed by name ("explicitly select one").
  const wanted = d.names
    .map((n) => ({ name: n, state: packageState(dpkg, n) }))
    .filter(({ state: s }) => !(s.kind === 'installed' && s.held) && s.kind !== 'provided');
  if (wanted.length === 0) return undefined;
  if (staleness(d, lists) !== undefined) {
    // Candidates read from stale lists say nothing; apt-get install is a no-op for packages already newest.
    const names = wanted.map((p) => p.name);
    return install(d, lists, names, `install or upgrade ${names.join(', ')} to the latest version`);
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
  return install(d, lists, names, said.join(', '));
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

function install(d: Desired, lists: AptLists, names: string[], summary: string): Change {
  const installing: Action = { command: aptGet(d, 'install', names) };
  const why = staleness(d, lists);
  if (why === undefined) return { summary, actions: [installing] };
  // A plain apt-get update does not touch the stamp (apt's daily job and Ubuntu's hook do); the lists fact reads it.
  const refresh: Action[] = [{ command: aptGetCommand(sh`update`, d.lockTimeout) }, { command: sh`touch ${APT_UPDATE_STAMP}` }];
  return { summary: `apt-get update (${why}), ${summary}`, actions: [...refresh, installing] };
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
