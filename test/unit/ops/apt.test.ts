import { existsSync } from 'node:fs';
import t from 'tap';
import type { Change } from '../../../lib/engine/operation.ts';
import { parseDpkgQuery, type AptLists, type Candidates, type DpkgPackages } from '../../../lib/facts/apt.ts';
import { apt } from '../../../lib/ops/apt.ts';
import { runOp } from '../../support/run-op.ts';
import { handlerRef } from '../../support/handler.ts';

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

const GET = 'DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold';
const UPDATE =
  `n=0; until out=$(LC_ALL=C ${GET} update 2>&1); do s=$?; case $out in *'Could not get lock'*) ` +
  `if [ "$n" -lt 24 ]; then n=$((n+1)); sleep 5; continue; fi;; esac; printf '%s\\n' "$out" >&2; exit "$s"; done; printf '%s\\n' "$out"`;
const STAMP = 'touch /var/lib/apt/periodic/update-success-stamp';

function commands(change: Change | undefined): string[] | undefined {
  return change?.actions.map((a) => a.command.toString());
}

type Case = [title: string, op: ReturnType<typeof apt.packages>, lists: AptLists, expected: string[] | undefined];

const cases: Case[] = [
  ['present: installed → nothing, even with stale lists', apt.packages({ names: ['curl', 'nginx'] }), stale, undefined],
  ['present: only the missing one is installed', apt.packages({ names: ['curl', 'git'] }), fresh, [`${GET} install git`]],
  ['present: stale lists are refreshed first', apt.packages({ names: ['git'] }), stale, [UPDATE, STAMP, `${GET} install git`]],
  ['present: lists never fetched', apt.packages({ names: ['git'], cacheMaxAgeSeconds: 1e9 }), never, [UPDATE, STAMP, `${GET} install git`]],
  ['present: a repository added since the last update', apt.packages({ names: ['docker-ce'] }), repoAdded, [UPDATE, STAMP, `${GET} install docker-ce`]],
  ['present: cacheMaxAgeSeconds 0 always refreshes', apt.packages({ names: ['git'], cacheMaxAgeSeconds: 0 }), fresh, [UPDATE, STAMP, `${GET} install git`]],
  ['present: config files left, interrupted → install', apt.packages({ names: ['bc', 'binutils-common'] }), fresh, [`${GET} install bc binutils-common`]],
  ['present: held counts as installed', apt.packages({ names: ['mawk'] }), stale, undefined],
  ['present: a virtual name provided by mawk', apt.packages({ names: ['awk'] }), stale, undefined],
  ['present: duplicates once', apt.packages({ names: ['git', 'git'] }), fresh, [`${GET} install git`]],
  ['present: foreign architecture', apt.packages({ names: ['libc6', 'libc6:i386'] }), fresh, [`${GET} install libc6:i386`]],
  ['absent: removes installed and interrupted ones', apt.packages({ names: ['curl', 'binutils-common', 'bc', 'git'], state: 'absent' }), fresh, [`${GET} remove curl binutils-common`]],
  ['absent: never updates, never removes a provider', apt.packages({ names: ['git', 'awk'], state: 'absent' }), never, undefined],
  ['absent + purge: also config files', apt.packages({ names: ['curl', 'bc'], state: 'absent', purge: true }), fresh, [`${GET} purge curl bc`]],
  ['absent + purge: nothing left', apt.packages({ names: ['git'], state: 'absent', purge: true }), fresh, undefined],
  ['latest: upgrade the outdated, install the missing', apt.packages({ names: ['curl', 'nginx', 'git'], state: 'latest' }), fresh, [`${GET} install curl git`]],
  ['latest: up to date → nothing', apt.packages({ names: ['nginx'], state: 'latest' }), fresh, undefined],
  ['latest: no candidate (local .deb) → nothing', apt.packages({ names: ['libc6'], state: 'latest' }), fresh, undefined],
  ['latest: held and provided are left alone', apt.packages({ names: ['mawk', 'awk'], state: 'latest' }), stale, undefined],
  ['latest: sources changed → refresh', apt.packages({ names: ['nginx'], state: 'latest' }), repoAdded, [UPDATE, STAMP, `${GET} install nginx`]],
  ['latest: stale lists → refresh, then install all', apt.packages({ names: ['nginx', 'curl', 'mawk'], state: 'latest' }), stale, [UPDATE, STAMP, `${GET} install nginx curl`]],
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
  t.same(Object.keys(apt.packages({ names: ['nginx'] }).facts), ['dpkg', 'lists'], 'apt-cache only for latest');
  t.same(Object.keys(apt.packages({ names: ['nginx'], state: 'latest' }).facts), ['dpkg', 'lists', 'candidates']);
});

t.test('apt.packages: misuse is a TypeError at once', async (t) => {
  t.throws(() => apt.packages({ names: [] }), TypeError);
  t.throws(() => apt.packages({ names: ['-o=APT::x'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx=1.22'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx curl'] }), /not a Debian package name/);
  t.throws(() => apt.packages({ names: ['nginx'], purge: true }), /purge only applies/);
  t.throws(() => apt.packages({ names: ['nginx'], state: 'installed' as 'present' }), /state must be one of/);
  t.throws(() => apt.packages({ names: ['nginx'], cacheMaxAgeSeconds: -1 }), /cacheMaxAgeSeconds/);
  t.throws(() => apt.packages({ names: ['nginx'], cacheMaxAgeSeconds: Number.NaN }), /cacheMaxAgeSeconds/);
});

// The real fact commands, parsers and planner together, on this machine, without applying anything.
t.test('dry-run on this machine', { skip: !existsSync('/usr/bin/dpkg-query') && 'needs dpkg' }, async (t) => {
  const ok = await runOp(apt.packages({ names: ['dpkg'] }), { dryRun: true });
  t.match(ok, { name: 'apt.packages dpkg', status: 'ok' });
  const missing = await runOp(apt.packages({ names: ['tackle-no-such-package'] }), { dryRun: true });
  t.match(missing, { status: 'changed' });
  t.match(missing.commands?.at(-1), /apt-get .* install tackle-no-such-package$/);
  const gone = await runOp(apt.packages({ names: ['tackle-no-such-package'], state: 'latest' }), { dryRun: true });
  // With lists older than an hour the summary says 'install or upgrade'; either way it installs.
    t.match(gone, { status: 'changed', summary: /install (or upgrade )?tackle-no-such-package/ });
});

t.test('services: started with the install, or checked when the packages are there', async (t) => {
  const unit = (activeState: string, unitFileState: string) => ({
    kind: 'unit' as const, id: 'nginx.service', names: ['nginx.service'], loadState: 'loaded', activeState, subState: activeState === 'active' ? 'running' : 'dead',
    unitFileState, fragmentPath: '/lib/systemd/system/nginx.service', canReload: true, needDaemonReload: false,
  });
  const missing = { kind: 'unit' as const, id: 'git-daemon.service', names: ['git-daemon.service'], loadState: 'not-found', activeState: 'inactive', subState: 'dead', unitFileState: '', fragmentPath: '', canReload: false, needDaemonReload: false };
  const install = apt.packages({ names: ['git'], services: ['git-daemon'] }).plan({ dpkg, lists: fresh, 'unit:git-daemon': missing });
  t.same(commands(install), [`${GET} install git`, 'systemctl enable --now git-daemon'], 'installing starts the unit in the same step');
  t.equal(install?.summary, 'install git, enable and start git-daemon');
  const present = apt.packages({ names: ['nginx'], services: ['nginx'] });
  t.equal(present.plan({ dpkg, lists: stale, 'unit:nginx': unit('active', 'enabled') }), undefined, 'installed and running: nothing');
  t.same(commands(present.plan({ dpkg, lists: stale, 'unit:nginx': unit('inactive', 'disabled') })), ['systemctl enable nginx.service', 'systemctl start nginx.service']);
  t.throws(() => apt.packages({ names: ['nginx'], state: 'absent', services: ['nginx'] }), TypeError);
});
