import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { UNKNOWN, type Change } from '../../../lib/ops/operation.ts';
import { parseDpkgQuery, type AptLists, type AptRelease, type Candidates, type DpkgPackages } from '../../../lib/facts/apt.ts';
import { sh } from '../../../lib/command/command.ts';
import { apt, aptGetCommand } from '../../../lib/ops/apt.ts';
import { run } from '../../../lab/exec.ts';
import { runOp } from '../../support/run-op.ts';
import { handlerRef } from '../../support/handler.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

// A host as parseDpkgQuery gives it (see test/unit/facts/apt.test.ts for the captured output).
const dpkg: DpkgPackages = parseDpkgQuery({
  stdout: [
    'amd64',
    'curl\tamd64\t7.88.1-10+deb12u14\tinstall ok installed\t',
    'bc\tamd64\t1.07.1-3+b1\tdeinstall ok config-files\t',
    'binutils-common\tamd64\t2.40-2\tinstall reinstreq half-installed\t',
    'libc6\tamd64\t2.36-9+deb12u14\tinstall ok installed\t',
    'mawk\tamd64\t1.3.4.20200120-3.1\thold ok installed\tawk',
    'nginx\tamd64\t1.22.1-9+deb12u9\tinstall ok installed\t',
    '',
  ].join('\n'),
  stderr: '',
  exitCode: 0,
});

const fresh: AptLists = { kind: 'fetched', ageSeconds: 600, sourcesChanged: false };
const stale: AptLists = { kind: 'fetched', ageSeconds: 7200, sourcesChanged: false };
const repoAdded: AptLists = { kind: 'fetched', ageSeconds: 600, sourcesChanged: true };
const never: AptLists = { kind: 'never' };
const candidates: Candidates = {
  curl: { kind: 'version', version: '7.88.1-10+deb12u15' },
  nginx: { kind: 'version', version: '1.22.1-9+deb12u9' },
  mawk: { kind: 'version', version: '1.3.4.20200120-4' },
  libc6: { kind: 'none' },
};

// The whole wrapper once, as text: every apt-get runs through it (see aptGetCommand).
const wrapped = (args: string, timeout = 600): string => String.raw`start=$(date +%s)
while :; do
  left=$((start + ${timeout} - $(date +%s))); [ "$left" -gt 0 ] || left=0
  out=$(LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout="$left" -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${args} 2>&1) && break
  s=$?
  case $out in *'Could not get lock'*|*'Unable to acquire the dpkg frontend lock'*|*'Unable to lock '*) ;; *) printf '%s\n' "$out" >&2; exit "$s";; esac
  if [ "$((start + ${timeout} - $(date +%s)))" -gt 0 ]; then sleep 5; continue; fi
  printf '%s\n' "$out" >&2
  held='a lock (its holder has just gone)'
  for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
    p=$(awk -v i="$(stat -c %i "$f" 2>/dev/null)" '$6 ~ (":" i "$") && $5 > 0 { print $5; exit }' /proc/locks 2>/dev/null)
    if [ -n "$p" ]; then held="$f held by process $p ($(cat "/proc/$p/comm" 2>/dev/null))"; break; fi
  done
  printf 'apt is busy: %s for %s s (lock timeout ${timeout} s)\n' "$held" "$(($(date +%s) - start))" >&2
  exit "$s"
done
printf '%s\n' "$out"`;
const UPDATE = wrapped('update');
const STAMP = 'touch /var/lib/apt/periodic/update-success-stamp';

function commands(change: Change | undefined): string[] | undefined {
  return change?.actions.map((a) => a.command.toString());
}

type Case = [title: string, op: ReturnType<typeof apt.packages>, lists: AptLists, expected: string[] | undefined];

const cases: Case[] = [
  ['present: installed → nothing, even with stale lists', apt.packages({ names: ['curl', 'nginx'] }), stale, undefined],
  ['present: only the missing one is installed', apt.packages({ names: ['curl', 'git'] }), fresh, [wrapped('install git')]],
  ['present: stale lists are refreshed first', apt.packages({ names: ['git'] }), stale, [UPDATE, STAMP, wrapped('install git')]],
  ['present: lists never fetched', apt.packages({ names: ['git'], cacheMaxAgeSeconds: 1e9 }), never, [UPDATE, STAMP, wrapped('install git')]],
  ['present: a repository added since the last update', apt.packages({ names: ['docker-ce'] }), repoAdded, [UPDATE, STAMP, wrapped('install docker-ce')]],
  ['present: cacheMaxAgeSeconds 0 always refreshes', apt.packages({ names: ['git'], cacheMaxAgeSeconds: 0 }), fresh, [UPDATE, STAMP, wrapped('install git')]],
  ['present: config files left, interrupted → install', apt.packages({ names: ['bc', 'binutils-common'] }), fresh, [wrapped('install bc binutils-common')]],
  ['present: held counts as installed', apt.packages({ names: ['mawk'] }), stale, undefined],
  ['present: a virtual name provided by mawk', apt.packages({ names: ['awk'] }), stale, undefined],
  ['present: duplicates once', apt.packages({ names: ['git', 'git'] }), fresh, [wrapped('install git')]],
  ['present: foreign architecture', apt.packages({ names: ['libc6', 'libc6:i386'] }), fresh, [wrapped('install libc6:i386')]],
  ['absent: removes installed and interrupted ones', apt.packages({ names: ['curl', 'binutils-common', 'bc', 'git'], state: 'absent' }), fresh, [wrapped('remove curl binutils-common')]],
  ['absent: never updates, never removes a provider', apt.packages({ names: ['git', 'awk'], state: 'absent' }), never, undefined],
  ['absent + purge: also config files', apt.packages({ names: ['curl', 'bc'], state: 'absent', purge: true }), fresh, [wrapped('purge curl bc')]],
  ['absent + purge: nothing left', apt.packages({ names: ['git'], state: 'absent', purge: true }), fresh, undefined],
  ['latest: upgrade the outdated, install the missing', apt.packages({ names: ['curl', 'nginx', 'git'], state: 'latest' }), fresh, [wrapped('install curl git')]],
  ['latest: up to date → nothing', apt.packages({ names: ['nginx'], state: 'latest' }), fresh, undefined],
  ['latest: no candidate (local .deb) → nothing', apt.packages({ names: ['libc6'], state: 'latest' }), fresh, undefined],
  ['latest: held and provided are left alone', apt.packages({ names: ['mawk', 'awk'], state: 'latest' }), stale, undefined],
  ['latest: sources changed → refresh', apt.packages({ names: ['nginx'], state: 'latest' }), repoAdded, [UPDATE, STAMP, wrapped('install nginx')]],
  ['latest: stale lists → refresh, then install all', apt.packages({ names: ['nginx', 'curl', 'mawk'], state: 'latest' }), stale, [UPDATE, STAMP, wrapped('install nginx curl')]],
];

t.test('apt.packages plans exactly these commands', async (t) => {
  for (const [title, op, lists, expected] of cases) {
    t.same(commands(op.plan({ dpkg, lists, candidates })), expected, title);
  }
});

t.test('apt.packages: summaries say what and why', async (t) => {
  t.equal(apt.packages({ names: ['curl', 'git'] }).plan({ dpkg, lists: fresh })?.summary, 'install git');
  t.equal(apt.packages({ names: ['git'] }).plan({ dpkg, lists: stale })?.summary, 'apt-get update (lists 120 min old), install git');
  t.equal(apt.packages({ names: ['git'] }).plan({ dpkg, lists: never })?.summary, 'apt-get update (lists never fetched), install git');
  t.equal(apt.packages({ names: ['git'] }).plan({ dpkg, lists: repoAdded })?.summary, 'apt-get update (sources changed since the last update), install git');
  t.equal(
    apt.packages({ names: ['curl', 'git'], state: 'latest' }).plan({ dpkg, lists: fresh, candidates })?.summary,
    'upgrade curl 7.88.1-10+deb12u14 → 7.88.1-10+deb12u15, install git',
  );
  t.equal(apt.packages({ names: ['bc'], state: 'absent', purge: true }).plan({ dpkg, lists: fresh })?.summary, 'purge bc');
});

t.test('apt.packages: stable step names, notify and name override', async (t) => {
  t.equal(apt.packages({ names: ['nginx', 'curl'] }).name, 'apt.packages nginx, curl');
  t.equal(apt.packages({ names: ['nginx'], state: 'latest' }).name, 'apt.packages nginx (latest)');
  t.equal(apt.packages({ names: ['nginx'], state: 'absent' }).name, 'apt.packages nginx (absent)');
  t.equal(apt.packages({ names: ['nginx'], state: 'absent', purge: true }).name, 'apt.packages nginx (purged)');
  t.equal(apt.packages({ names: ['nginx'], name: 'web server' }).name, 'web server');
  t.same(apt.packages({ names: ['nginx'], notify: handlerRef('restart nginx') }).notify, ['restart nginx']);
  t.same(Object.keys(apt.packages({ names: ['nginx'] }).facts), ['dpkg', 'lists', 'release'], 'apt-cache only for latest');
  t.same(Object.keys(apt.packages({ names: ['nginx'], state: 'latest' }).facts), ['dpkg', 'lists', 'release', 'candidates']);
});

t.test('apt.packages: bad input is refused at once', async (t) => {
  t.throws(() => apt.packages({ names: [] }), TackleError);
  t.throws(() => apt.packages({ names: ['-o=APT::x'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx=1.22'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx curl'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx'], purge: true }), /purge only applies/);
  t.throws(() => apt.packages({ names: ['nginx'], state: 'installed' as 'present' }), /state must be one of/);
  t.throws(() => apt.packages({ names: ['nginx'], cacheMaxAgeSeconds: -1 }), /cacheMaxAgeSeconds/);
  t.throws(() => apt.packages({ names: ['nginx'], cacheMaxAgeSeconds: Number.NaN }), /cacheMaxAgeSeconds/);
  t.throws(() => apt.packages({ names: ['nginx'], lockTimeoutSeconds: -1 }), /lockTimeoutSeconds/);
  t.throws(() => apt.packages({ names: ['nginx'], lockTimeoutSeconds: 1.5 }), /lockTimeoutSeconds/);
});

t.test('lockTimeoutSeconds reaches every apt-get of the step', async (t) => {
  const op = apt.packages({ names: ['git'], lockTimeoutSeconds: 30 });
  t.same(commands(op.plan({ dpkg, lists: stale })), [wrapped('update', 30), STAMP, wrapped('install git', 30)]);
  t.same(commands(apt.packages({ names: ['curl'], state: 'absent', lockTimeoutSeconds: 0 }).plan({ dpkg, lists: fresh })), [wrapped('remove curl', 0)]);
});

// The wrapper run by dash against a fake apt-get that fails on a lock `failures` times, then succeeds.
async function fakeApt(failures: number, lockLine: string): Promise<(timeout: number) => Promise<{ code: number; stdout: string; stderr: string; ms: number }>> {
  const dir = tempDir('fake-apt');
  const script = [
    '#!/bin/sh',
    `n=$(cat ${dir}/calls 2>/dev/null || echo 0); echo $((n + 1)) > ${dir}/calls`,
    'echo "frontend=$DEBIAN_FRONTEND lang=$LC_ALL args=$*"',
    `if [ "$n" -lt ${failures} ]; then echo '${lockLine}' >&2; exit 100; fi`,
    'echo done',
  ].join('\n');
  await writeFile(join(dir, 'apt-get'), `${script}\n`);
  await chmod(join(dir, 'apt-get'), 0o755);
  return async (timeout) => {
    const started = Date.now();
    const r = await run('env', [`PATH=${dir}:${process.env.PATH ?? ''}`, 'dash', '-c', aptGetCommand(sh`install nginx`, timeout).reveal()]);
    return { ...r, ms: Date.now() - started };
  };
}

const HELD = 'E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 812 (unattended-upgr)';

t.test('wrapper: noninteractive, C locale, and the lock timeout handed to apt-get', { skip: !existsSync('/bin/dash') && 'needs dash' }, async (t) => {
  const r = await (await fakeApt(0, HELD))(600);
  t.equal(r.code, 0);
  t.match(r.stdout, /^frontend=noninteractive lang=C args=-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install nginx\ndone\n$/);
});

t.test('wrapper: a lock still held when the time is up fails with the lock, its holder and the wait', { skip: !existsSync('/bin/dash') && 'needs dash' }, async (t) => {
  const r = await (await fakeApt(99, HELD))(0);
  t.equal(r.code, 100, "apt-get's exit code");
  // The holder is read from this machine's /proc/locks, where no apt runs (the e2e test names one).
  // The wait is whole seconds of wall time: a busy machine can make it 1 s.
  t.match(r.stderr, /\napt is busy: .+ for \d+ s \(lock timeout 0 s\)\n$/, 'the last line says why');
  t.match(r.stderr, /It is held by process 812/, "apt's own words are kept above it");
  // What apt says after it waited for DPkg::Lock::Timeout: no "Could not get lock" any more.
  const waited = await (await fakeApt(99, 'E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?'))(0);
  t.match(waited.stderr, /\napt is busy: .+ for \d+ s \(lock timeout 0 s\)\n$/);
  const lists = await (await fakeApt(99, 'E: Unable to lock directory /var/lib/apt/lists/'))(0);
  t.match(lists.stderr, /\napt is busy: /);
});

t.test('wrapper: a lock apt-get does not wait for (lists, archives) is tried again until it is free', { skip: !existsSync('/bin/dash') && 'needs dash' }, async (t) => {
  const r = await (await fakeApt(1, HELD))(30);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /Lock::Timeout=2[4-5] .*\ndone\n$/, 'the second try waits only for the time left');
  t.ok(r.ms >= 5000 && r.ms < 15_000, `one retry after 5 s (${r.ms} ms)`);
});

t.test('wrapper: any other failure is passed on at once, without "apt is busy"', { skip: !existsSync('/bin/dash') && 'needs dash' }, async (t) => {
  const r = await (await fakeApt(99, 'E: Unable to locate package nginx'))(60);
  t.equal(r.code, 100);
  t.notMatch(r.stderr, /apt is busy/);
  t.ok(r.ms < 5000, 'no waiting');
});

// The real fact commands, parsers and planner together, on this machine, without applying anything.
t.test('dry-run on this machine', { skip: !existsSync('/usr/bin/dpkg-query') && 'needs dpkg' }, async (t) => {
  const ok = await runOp(apt.packages({ names: ['dpkg'] }), { dryRun: true });
  t.match(ok, { name: 'apt.packages dpkg', status: 'ok' });
  const missing = await runOp(apt.packages({ names: ['tackle-no-such-package'] }), { dryRun: true });
  t.match(missing, { status: 'changed' });
  t.match(missing.commands?.at(-1), / apt-get .* install tackle-no-such-package 2>&1\)/);
  const gone = await runOp(apt.packages({ names: ['tackle-no-such-package'], state: 'latest' }), { dryRun: true });
  // With lists older than an hour the summary says 'install or upgrade'; either way it installs.
    t.match(gone, { status: 'changed', summary: /install (or upgrade )?tackle-no-such-package/ });
});

t.test('effects: the packages installed, fresh lists, and what a known package ships; an unknown package may change anything', async (t) => {
  const install = apt.packages({ names: ['ufw'] }).plan({ dpkg, lists: stale });
  const effects = install?.effects;
  t.match((effects?.facts?.['apt.dpkg'] as DpkgPackages).entries.at(-1), { name: 'ufw', state: 'installed' }, 'dpkg lists ufw installed');
  t.same(effects?.facts?.['apt.lists'], { kind: 'fetched', ageSeconds: 0, sourcesChanged: false }, 'the lists were just fetched');
  t.match(effects?.facts?.['ufw.state'], { kind: 'ufw', active: false, rules: [] }, 'ufw is installed, inactive, without rules');
  t.ok(effects?.writes?.includes('/etc/ufw/'), 'its files are written');
  t.equal(effects?.touches, undefined, 'nothing else is touched');
  const other = apt.packages({ names: ['postfix'] }).plan({ dpkg, lists: fresh });
  t.equal(other?.effects?.touches?.('sshd.config'), true, 'a package it does not know may change any fact');
  const none = { nativeArch: 'amd64', entries: [] };
  const nginx = (release: AptRelease) => apt.packages({ names: ['nginx'] }).plan({ dpkg: none, lists: never, release })?.effects?.facts?.['nginx.install'];
  t.same(nginx({ release: 'debian bookworm', otherSources: false }), { kind: 'installed', version: '1.22.1' }, "nginx -v will say the release's upstream version, lists or not");
  t.equal(nginx({ release: 'debian bookworm', otherSources: true }), UNKNOWN, 'another repository may provide it');
  t.equal(nginx({ release: 'plan9 x', otherSources: false }), UNKNOWN, 'a release it does not know');
});
