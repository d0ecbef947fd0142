import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** One package in dpkg's database, as `dpkg-query -W` lists it. */
export interface DpkgEntry {
  name: string;
  /** `amd64`, `all`, `i386`… */
  arch: string;
  version: string;
  /** dpkg's selection: `install`, `hold`, `deinstall`, `purge` or `unknown`. */
  want: string;
  /** `ok`, or `reinstreq` when dpkg was interrupted and the package must be reinstalled. */
  flag: string;
  /** `installed`, `config-files`, `half-installed`, `unpacked`, `half-configured`, `triggers-awaited`, `triggers-pending` or `not-installed`. */
  state: string;
  /** Names this package provides (versions stripped), so that a virtual name can count as present. */
  provides: string[];
}

/** dpkg's view of the host: its native architecture and every package it knows. */
export interface DpkgPackages {
  nativeArch: string;
  entries: DpkgEntry[];
}

// ${...} here are dpkg-query fields, not JavaScript: this is a plain string on purpose.
const DPKG_FORMAT = '${Package}\\t${Architecture}\\t${Version}\\t${Status}\\t${Provides}\\n';

/**
 * Every package dpkg knows, with versions and status, plus the native architecture
 * (one list per host, shared by every apt operation of a run).
 *
 * @example
 * const pkgs = await host.fact(dpkgPackages);
 * packageState(pkgs, 'nginx').kind === 'installed';
 */
export const dpkgPackages: Fact<DpkgPackages> = defineFact(
  'apt.dpkg',
  sh`dpkg --print-architecture && dpkg-query -W -f=${DPKG_FORMAT}`,
  parseDpkgQuery,
  { reads: ['/var/lib/dpkg/'] },
);

/**
 * Pure parser of {@link dpkgPackages}'s output.
 *
 * @example
 * parseDpkgQuery({ stdout: 'amd64\ncurl\tamd64\t7.88.1-10\tinstall ok installed\t\n', stderr: '', exitCode: 0 })
 * // { nativeArch: 'amd64', entries: [{ name: 'curl', arch: 'amd64', version: '7.88.1-10', want: 'install', flag: 'ok', state: 'installed', provides: [] }] }
 */
export function parseDpkgQuery({ stdout, stderr, exitCode }: FactOutput): DpkgPackages {
  if (exitCode !== 0) throw new Error(`dpkg-query exited with code ${exitCode}: ${stderr.trim()}`);
  const [nativeArch = '', ...lines] = stdout.split('\n');
  if (!/^[a-z0-9-]+$/.test(nativeArch)) throw new Error(`not an architecture: ${JSON.stringify(nativeArch)}`);
  const entries = lines
    .filter((line) => line !== '')
    .map((line): DpkgEntry => {
      const [name = '', arch = '', version = '', status = '', provides = ''] = line.split('\t');
      const [want = '', flag = '', state = ''] = status.split(' ');
      if (name === '' || state === '') throw new Error(`not a dpkg-query line: ${JSON.stringify(line)}`);
      return { name, arch, version, want, flag, state, provides: parseProvides(provides) };
    });
  return { nativeArch, entries };
}

// "foo (= 1.0), bar" → ["foo", "bar"]
function parseProvides(field: string): string[] {
  return field
    .split(',')
    .map((p) => p.trim().split(/[\s(]/)[0] ?? '')
    .filter((p) => p !== '');
}

/** What the host has of one requested package name. */
export type PackageState =
  | { kind: 'missing' }
  | { kind: 'installed'; version: string; arch: string; held: boolean }
  /** Removed, configuration files left behind (dpkg's `rc`): only a purge removes it. */
  | { kind: 'config-files'; version: string }
  /** dpkg stopped half-way (unpacked, half-configured, reinstreq…); apt must finish or remove it. */
  | { kind: 'partial'; state: string }
  /** Not a package on its own, but an installed package provides the name (a virtual package). */
  | { kind: 'provided'; by: string };

/**
 * The state of a package name such as `nginx`, `libc6:i386` or `mail-transport-agent`.
 * A name without architecture means the native one (or `all`), as apt reads it.
 *
 * @example
 * packageState(await host.fact(dpkgPackages), 'libc6:i386') // { kind: 'installed', version: '2.36-9', arch: 'i386', held: false }
 */
export function packageState(pkgs: DpkgPackages, spec: string): PackageState {
  const { name, arch } = splitArch(spec, pkgs.nativeArch);
  const matches = pkgs.entries.filter(
    (e) => e.name === name && e.state !== 'not-installed' && (arch === 'any' || e.arch === arch || (arch === pkgs.nativeArch && e.arch === 'all')),
  );
  const installed = matches.find(isInstalled);
  // A held or deselected package is still installed: only the state word says what is on disk.
  if (installed) return { kind: 'installed', version: installed.version, arch: installed.arch, held: installed.want === 'hold' };
  const partial = matches.find((e) => e.state !== 'config-files');
  if (partial) return { kind: 'partial', state: `${partial.want} ${partial.flag} ${partial.state}` };
  const leftover = matches[0];
  if (leftover) return { kind: 'config-files', version: leftover.version };
  if (spec === name) {
    const provider = pkgs.entries.find((e) => isInstalled(e) && e.provides.includes(name));
    if (provider) return { kind: 'provided', by: provider.name };
  }
  return { kind: 'missing' };
}

function isInstalled(e: DpkgEntry): boolean {
  return e.flag === 'ok' && e.state === 'installed';
}

/** `nginx` → native arch; `libc6:i386` → i386; `:any` and `:native` as apt reads them. */
function splitArch(spec: string, nativeArch: string): { name: string; arch: string } {
  const [name = '', qualifier] = spec.split(':');
  return { name, arch: qualifier === undefined || qualifier === 'native' ? nativeArch : qualifier };
}

/** How fresh apt's package lists are, by the host's own clock. */
export type AptLists =
  /** No package index was ever downloaded (a fresh container image): nothing can be installed yet. */
  | { kind: 'never' }
  /** `sourcesChanged`: a sources file is newer than the last update, so a repository just added is not in the lists yet. */
  | { kind: 'fetched'; ageSeconds: number; sourcesChanged: boolean };

/** Touched after each successful `apt-get update` by apt's daily job, by pyinfra, and by tackle. */
export const APT_UPDATE_STAMP = '/var/lib/apt/periodic/update-success-stamp';
const LISTS = '/var/lib/apt/lists';
const SOURCES = '/etc/apt/sources.list';

/**
 * The age of apt's package lists. apt gives downloaded files the server's
 * Last-Modified time and leaves them alone when nothing changed upstream, so
 * the newest of the update stamp, the lists directory and the index files is
 * taken. The host's `date` is printed by the same command, so a skewed
 * controller clock cannot matter. The sources files are read too: a repository
 * added since the last update makes the lists stale whatever their age.
 *
 * @example
 * const lists = await host.fact(aptLists);
 * const stale = lists.kind === 'never' || lists.sourcesChanged || lists.ageSeconds > 3600;
 */
export const aptLists: Fact<AptLists> = defineFact(
  'apt.lists',
  // Unmatched globs stay literal and stat fails on them; that is why stderr is dropped and the status ignored.
  sh`date ${'+now %s'}; stat -c ${'%Y %n'} ${APT_UPDATE_STAMP} ${LISTS} ${raw(
    `${LISTS}/*_Packages* ${LISTS}/*InRelease ${LISTS}/*_Release ${SOURCES} ${SOURCES}.d ${SOURCES}.d/*.list ${SOURCES}.d/*.sources`,
  )} 2>/dev/null`,
  parseAptLists,
  { reads: [APT_UPDATE_STAMP, `${LISTS}/`, SOURCES, `${SOURCES}.d/`] },
);

/**
 * Pure parser of {@link aptLists}'s output.
 *
 * @example
 * parseAptLists({ stdout: 'now 1000\n900 /var/lib/apt/lists\n880 /var/lib/apt/lists/x_InRelease\n500 /etc/apt/sources.list\n', stderr: '', exitCode: 1 })
 * // { kind: 'fetched', ageSeconds: 100, sourcesChanged: false }
 */
export function parseAptLists({ stdout }: FactOutput): AptLists {
  const [first = '', ...lines] = stdout.split('\n').filter((l) => l !== '');
  const now = /^now (\d+)$/.exec(first)?.[1];
  if (now === undefined) throw new Error(`expected "now <epoch>" first, got ${JSON.stringify(first)}`);
  let fetched = 0;
  let sources = 0;
  let indexes = 0;
  for (const line of lines) {
    const m = /^(\d+) (.+)$/.exec(line);
    if (!m?.[1] || !m[2]) throw new Error(`not a stat line: ${JSON.stringify(line)}`);
    const [mtime, path] = [Number(m[1]), m[2]];
    if (path.startsWith(SOURCES)) sources = Math.max(sources, mtime);
    else fetched = Math.max(fetched, mtime);
    if (path.startsWith(`${LISTS}/`)) indexes++;
  }
  // A stamp without index files means the lists were deleted since (as Docker images do).
  if (indexes === 0) return { kind: 'never' };
  return { kind: 'fetched', ageSeconds: Math.max(0, Number(now) - fetched), sourcesChanged: sources > fetched };
}

/** What apt would install for a name. */
export type Candidate =
  /** apt knows nothing of the name (no list mentions it yet). */
  | { kind: 'unknown' }
  /** Known, but there is nothing to install: a virtual package, or one no list carries anymore. */
  | { kind: 'none' }
  | { kind: 'version'; version: string };

/** apt-cache policy's answers, by the package name it prints (`nginx`, `libc6:i386`). */
export type Candidates = Readonly<Record<string, Candidate>>;

/**
 * The candidate versions of these packages (`apt-cache policy`), for `state: 'latest'`.
 *
 * @example
 * const c = await host.fact(aptCandidates(['nginx', 'curl']));
 * candidateFor(c, 'nginx', 'amd64') // { kind: 'version', version: '1.22.1-9+deb12u1' }
 */
export function aptCandidates(names: readonly string[]): Fact<Candidates> {
  // LC_ALL=C: the "Candidate:" label is translated otherwise.
  return defineFact(`apt.candidates ${[...names].sort().join(' ')}`, sh`LC_ALL=C apt-cache policy ${names}`, parseAptCachePolicy, {
    reads: [`${LISTS}/`, SOURCES, `${SOURCES}.d/`, '/etc/apt/preferences', '/etc/apt/preferences.d/', '/var/lib/dpkg/'],
  });
}

/**
 * Pure parser of `apt-cache policy` output. Unknown names print nothing at all.
 *
 * @example
 * parseAptCachePolicy({ stdout: 'nginx:\n  Installed: (none)\n  Candidate: 1.22.1-9\n', stderr: '', exitCode: 0 })
 * // { nginx: { kind: 'version', version: '1.22.1-9' } }
 */
export function parseAptCachePolicy({ stdout, stderr, exitCode }: FactOutput): Candidates {
  if (exitCode !== 0) throw new Error(`apt-cache policy exited with code ${exitCode}: ${stderr.trim()}`);
  const result: Record<string, Candidate> = {};
  let current: string | undefined;
  for (const line of stdout.split('\n')) {
    const header = /^(\S+):$/.exec(line)?.[1];
    if (header !== undefined) current = header;
    const candidate = /^ {2}Candidate: (\S+)$/.exec(line)?.[1];
    if (candidate !== undefined && current !== undefined) {
      result[current] = candidate === '(none)' ? { kind: 'none' } : { kind: 'version', version: candidate };
    }
  }
  return result;
}

/**
 * The candidate for a requested name. apt-cache prints native packages without
 * their architecture (`libc6:amd64` → `libc6:`), foreign ones with it.
 *
 * @example
 * candidateFor(candidates, 'libc6:amd64', 'amd64') // looks up "libc6"
 */
export function candidateFor(candidates: Candidates, spec: string, nativeArch: string): Candidate {
  const { name, arch } = splitArch(spec, nativeArch);
  const key = arch === nativeArch || arch === 'all' || arch === 'any' ? name : `${name}:${arch}`;
  return Object.hasOwn(candidates, key) ? (candidates[key] as Candidate) : { kind: 'unknown' };
}

/** Which release a host runs (`debian bookworm`) and whether apt reads sources beyond the release's own. */
export interface AptRelease {
  release: string;
  /** A sources file other than the distribution's (a vendor repository): packages may come from there. */
  otherSources: boolean;
}

// The deb822 files Debian and Ubuntu install for the release itself.
const RELEASE_SOURCES = new Set(['debian.sources', 'ubuntu.sources']);

/**
 * The release and its sources, to know which upstream version a package will have before apt's
 * lists say so (a fresh host whose lists were never fetched).
 *
 * @example const { release } = await host.fact(aptRelease); // 'debian bookworm'
 */
export const aptRelease: Fact<AptRelease> = defineFact(
  'apt.release',
  // The directory's entries by the shell's own glob (as `ls -A` lists them, without a process).
  sh`. /etc/os-release 2>/dev/null; printf '%s %s\n' "$ID" "$VERSION_CODENAME"; for f in ${raw(`${SOURCES}.d/* ${SOURCES}.d/.[!.]* ${SOURCES}.d/..?*`)}; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "\${f##*/}"; fi; done; exit 0`,
  parseAptRelease,
  { reads: ['/etc/os-release', `${SOURCES}.d/`] },
);

/**
 * Pure parser of {@link aptRelease}'s output.
 *
 * @example parseAptRelease({ stdout: 'debian bookworm\ndebian.sources\n', stderr: '', exitCode: 0 }) // { release: 'debian bookworm', otherSources: false }
 */
export function parseAptRelease({ stdout }: FactOutput): AptRelease {
  const [release = '', ...files] = stdout.split('\n').filter((l) => l !== '');
  return { release: release.trim(), otherSources: files.some((f) => !RELEASE_SOURCES.has(f)) };
}
