import t from 'tap';
import {
  aptCandidates,
  aptLists,
  candidateFor,
  dpkgPackages,
  packageState,
  parseAptCachePolicy,
  parseAptLists,
  parseAptRelease,
  parseDpkgQuery,
  type DpkgPackages,
} from '../../../lib/facts/apt.ts';

// All outputs below were printed by the fact commands on Debian 12 (dpkg 1.21.22, apt 2.6.1).
// This machine has every package "install ok installed", so the other states come from a copy of
// its /var/lib/dpkg/status with some Status lines edited (bc removed, mawk held, binutils-common
// interrupted, libc6 also for i386), read by the real dpkg-query --admindir.
const dpkgOutput = {
  stdout: [
    'amd64',
    'adduser\tall\t3.134\tinstall ok installed\t',
    'bash\tamd64\t5.2.15-2+b8\tinstall ok installed\t',
    'bc\tamd64\t1.07.1-3+b1\tdeinstall ok config-files\t',
    'binutils-common\tamd64\t2.40-2\tinstall reinstreq half-installed\t',
    'curl\tamd64\t7.88.1-10+deb12u14\tinstall ok installed\t',
    'libc6\tamd64\t2.36-9+deb12u14\tinstall ok installed\t',
    'libc6\ti386\t2.36-9+deb12u14\tinstall ok installed\t',
    'mawk\tamd64\t1.3.4.20200120-3.1\thold ok installed\tawk',
    'adwaita-icon-theme\tall\t43-1\tinstall ok installed\tadwaita-icon-theme-full (= 43-1), gnome-icon-theme-symbolic',
    '',
  ].join('\n'),
  stderr: '',
  exitCode: 0,
};

// `stat` exits 1 because of the globs that match nothing and the missing stamp. Except `fresh`, these were
// printed under `unshare -m` with a tmpfs mounted over the directory concerned, to set the scene.
const LISTED =
  '1795313636 /var/lib/apt/lists\n' +
  '1795313636 /var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages.lz4\n' +
  '1795313636 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm-updates_main_binary-amd64_Packages.lz4\n' +
  '1783764997 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4\n' +
  '1795313636 /var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease\n' +
  '1795313636 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm-updates_InRelease\n' +
  '1783764997 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease\n';
const SOURCES = '1795313585 /etc/apt/sources.list.d\n1747699200 /etc/apt/sources.list.d/debian.sources\n';
const DOCKER = '1795314694 /etc/apt/sources.list.d\n1795314694 /etc/apt/sources.list.d/docker.list\n';
const stat = (stdout: string) => ({ stdout, stderr: '', exitCode: 1 });
const listsOutput = {
  fresh: stat(`now 1795314694\n${LISTED}${SOURCES}`),
  // The stamp written by a previous run is newer than anything apt left (upstream had not changed).
  stamped: stat(`now 1795314694\n1795314694 /var/lib/apt/periodic/update-success-stamp\n${LISTED}${SOURCES}`),
  // A day-old update; the index files carry the server's Last-Modified time, months older.
  stale: stat(
    'now 1795314699\n1795227236 /var/lib/apt/lists\n' +
      '1783764997 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages\n' +
      '1783764997 /var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease\n' +
      '1747699200 /etc/apt/sources.list.d\n1747699200 /etc/apt/sources.list.d/debian.sources\n',
  ),
  // A Docker image: lists emptied (only lock and partial/ left), so the directory itself is new.
  empty: stat(`now 1795314694\n1795314694 /var/lib/apt/lists\n${SOURCES}`),
  // docker.list written after the last update.
  repoAdded: stat(`now 1795314694\n${LISTED}${DOCKER}`),
};

// LC_ALL=C apt-cache policy nginx curl libc6:amd64 libc6:i386 mail-transport-agent nonexistentpkg, on a host
// where i386 is not configured: libc6:i386 and the unknown name print nothing. Version tables trimmed.
const policyOutput = {
  stdout:
    'nginx:\n  Installed: (none)\n  Candidate: 1.22.1-9+deb12u11\n  Version table:\n     1.22.1-9+deb12u11 500\n' +
    '        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n' +
    'curl:\n  Installed: 7.88.1-10+deb12u14\n  Candidate: 7.88.1-10+deb12u15\n  Version table:\n     7.88.1-10+deb12u15 500\n' +
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n *** 7.88.1-10+deb12u14 100\n        100 /var/lib/dpkg/status\n' +
    'libc6:\n  Installed: 2.36-9+deb12u14\n  Candidate: 2.36-9+deb12u14\n  Version table:\n *** 2.36-9+deb12u14 500\n' +
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n        100 /var/lib/dpkg/status\n' +
    'mail-transport-agent:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n',
  stderr: '',
  exitCode: 0,
};

// The same with i386 configured (apt-cache -o APT::Architectures::=i386 on the edited status file).
const foreignPolicyOutput = {
  stdout:
    'libc6:i386:\n  Installed: 2.36-9+deb12u14\n  Candidate: 2.36-9+deb12u14\n  Version table:\n *** 2.36-9+deb12u14 100\n        100 /tmp/fakedpkg/status\n' +
    'bc:\n  Installed: (none)\n  Candidate: 1.07.1-3+b1\n  Version table:\n     1.07.1-3+b1 500\n' +
    '        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n        100 /tmp/fakedpkg/status\n' +
    'awk:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n',
  stderr: '',
  exitCode: 0,
};

t.test('dpkg: every line, with status words and provides split', async (t) => {
  const pkgs = parseDpkgQuery(dpkgOutput);
  t.equal(pkgs.nativeArch, 'amd64');
  t.equal(pkgs.entries.length, 9);
  t.same(pkgs.entries[2], { name: 'bc', arch: 'amd64', version: '1.07.1-3+b1', want: 'deinstall', flag: 'ok', state: 'config-files', provides: [] });
  t.same(pkgs.entries.at(-1)?.provides, ['adwaita-icon-theme-full', 'gnome-icon-theme-symbolic']);
});

t.test('dpkg: only "ok installed" counts as installed, whatever the selection', async (t) => {
  const pkgs = parseDpkgQuery(dpkgOutput);
  t.same(packageState(pkgs, 'curl'), { kind: 'installed', version: '7.88.1-10+deb12u14', arch: 'amd64', held: false });
  t.same(packageState(pkgs, 'mawk'), { kind: 'installed', version: '1.3.4.20200120-3.1', arch: 'amd64', held: true }, 'held');
  t.same(packageState(pkgs, 'bc'), { kind: 'config-files', version: '1.07.1-3+b1' }, 'removed, not purged');
  t.same(packageState(pkgs, 'binutils-common'), { kind: 'partial', state: 'install reinstreq half-installed' });
  t.same(packageState(pkgs, 'nginx'), { kind: 'missing' });
});

t.test('dpkg: architectures as apt reads them', async (t) => {
  const pkgs = parseDpkgQuery(dpkgOutput);
  t.match(packageState(pkgs, 'adduser'), { kind: 'installed', arch: 'all' }, 'arch all is native');
  t.match(packageState(pkgs, 'libc6'), { kind: 'installed', arch: 'amd64' });
  t.match(packageState(pkgs, 'libc6:amd64'), { kind: 'installed', arch: 'amd64' });
  t.match(packageState(pkgs, 'libc6:i386'), { kind: 'installed', arch: 'i386' });
  t.same(packageState(pkgs, 'libc6:arm64'), { kind: 'missing' });
  t.same(packageState(pkgs, 'bash:i386'), { kind: 'missing' }, 'a native package does not satisfy a foreign name');
  t.match(packageState(pkgs, 'bash:any'), { kind: 'installed' });
  const foreignOnly: DpkgPackages = { nativeArch: 'amd64', entries: [{ name: 'x', arch: 'i386', version: '1', want: 'install', flag: 'ok', state: 'installed', provides: [] }] };
  t.same(packageState(foreignOnly, 'x'), { kind: 'missing' }, 'apt-get install x would install the amd64 one');
});

t.test('dpkg: a virtual name is present when an installed package provides it', async (t) => {
  const pkgs = parseDpkgQuery(dpkgOutput);
  t.same(packageState(pkgs, 'awk'), { kind: 'provided', by: 'mawk' });
  t.same(packageState(pkgs, 'awk:amd64'), { kind: 'missing' }, 'only an unqualified name');
  t.same(packageState(pkgs, 'mail-transport-agent'), { kind: 'missing' });
});

t.test('dpkg: refuses output it does not understand', async (t) => {
  t.throws(() => parseDpkgQuery({ stdout: '', stderr: 'sh: 1: dpkg: not found\n', exitCode: 127 }), /exited with code 127: sh: 1: dpkg: not found/);
  t.throws(() => parseDpkgQuery({ stdout: 'amd64\ngarbage\n', stderr: '', exitCode: 0 }), /not a dpkg-query line/);
  t.throws(() => parseDpkgQuery({ stdout: 'Usage: dpkg\n', stderr: '', exitCode: 0 }), /not an architecture/);
});

t.test('lists: the newest of stamp, directory and index files, by the host clock', async (t) => {
  t.same(parseAptLists(listsOutput.fresh), { kind: 'fetched', ageSeconds: 1058, sourcesChanged: false });
  t.same(parseAptLists(listsOutput.stamped), { kind: 'fetched', ageSeconds: 0, sourcesChanged: false });
  t.same(parseAptLists(listsOutput.stale), { kind: 'fetched', ageSeconds: 87463, sourcesChanged: false });
  t.same(parseAptLists(listsOutput.empty), { kind: 'never' });
  t.same(parseAptLists(stat('now 100\n100 /var/lib/apt/periodic/update-success-stamp\n90 /var/lib/apt/lists\n')), { kind: 'never' }, 'a stamp alone proves nothing');
  t.same(parseAptLists(stat('now 100\n160 /var/lib/apt/lists/x_InRelease\n')), { kind: 'fetched', ageSeconds: 0, sourcesChanged: false }, 'a file from the future');
  t.throws(() => parseAptLists({ stdout: '', stderr: 'sh: date: not found', exitCode: 127 }), /now <epoch>/);
});

t.test('lists: a repository added since the last update makes them stale', async (t) => {
  t.same(parseAptLists(listsOutput.repoAdded), { kind: 'fetched', ageSeconds: 1058, sourcesChanged: true });
  const updatedAfter = `now 1795314700\n1795314699 /var/lib/apt/periodic/update-success-stamp\n${LISTED}${DOCKER}`;
  t.match(parseAptLists(stat(updatedAfter)), { sourcesChanged: false }, 'the stamp of the next update settles it');
});

t.test('candidates: by the name apt-cache prints', async (t) => {
  const c = parseAptCachePolicy(policyOutput);
  t.same(c, {
    nginx: { kind: 'version', version: '1.22.1-9+deb12u11' },
    curl: { kind: 'version', version: '7.88.1-10+deb12u15' },
    libc6: { kind: 'version', version: '2.36-9+deb12u14' },
    'mail-transport-agent': { kind: 'none' },
  });
  t.same(candidateFor(c, 'libc6:amd64', 'amd64'), { kind: 'version', version: '2.36-9+deb12u14' }, 'native qualifier dropped');
  t.same(candidateFor(c, 'libc6:i386', 'amd64'), { kind: 'unknown' });
  t.same(candidateFor(c, 'nonexistentpkg', 'amd64'), { kind: 'unknown' });
  t.same(candidateFor(c, 'constructor', 'amd64'), { kind: 'unknown' }, 'no prototype lookups');
  const foreign = parseAptCachePolicy(foreignPolicyOutput);
  t.same(candidateFor(foreign, 'libc6:i386', 'amd64'), { kind: 'version', version: '2.36-9+deb12u14' });
  t.same(candidateFor(foreign, 'awk', 'amd64'), { kind: 'none' });
  t.throws(() => parseAptCachePolicy({ stdout: '', stderr: 'E: Could not open lock file', exitCode: 100 }), /code 100/);
});

t.test('commands and cache keys', async (t) => {
  t.equal(dpkgPackages.command.toString(), "dpkg --print-architecture && dpkg-query -W -f='${Package}\\t${Architecture}\\t${Version}\\t${Status}\\t${Provides}\\n'");
  t.equal(
    aptLists.command.toString(),
    "date '+now %s'; stat -c '%Y %n' /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists " +
      '/var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*InRelease /var/lib/apt/lists/*_Release ' +
      '/etc/apt/sources.list /etc/apt/sources.list.d /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null',
  );
  t.equal(aptCandidates(['nginx', 'curl']).command.toString(), 'LC_ALL=C apt-cache policy nginx curl');
  t.equal(aptCandidates(['nginx', 'curl']).key, aptCandidates(['curl', 'nginx']).key, 'order does not split the cache');
});

t.test('parseAptRelease: the release, and whether other repositories are configured', async (t) => {
  t.same(parseAptRelease({ stdout: 'debian bookworm\ndebian.sources\n', stderr: '', exitCode: 0 }), { release: 'debian bookworm', otherSources: false });
  t.same(parseAptRelease({ stdout: 'debian bookworm\ndebian.sources\nnginx.list\n', stderr: '', exitCode: 0 }), { release: 'debian bookworm', otherSources: true });
  t.same(parseAptRelease({ stdout: 'ubuntu noble\n', stderr: '', exitCode: 0 }), { release: 'ubuntu noble', otherSources: false });
});
