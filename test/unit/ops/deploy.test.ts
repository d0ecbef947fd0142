import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, readlink, readdir, writeFile, mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import type { Change } from '../../../lib/ops/operation.ts';
import { type Release, type ReleaseRecord, type ReleasesState, type Slot } from '../../../lib/facts/deploy.ts';
import { colorUnit, deploy, planRelease, planRollback, previousRelease, releaseId, releaseLayout, restartStops, rollbackTarget, switchUpstreamCommand, upstreamConf, type BlueGreen, type DesiredRelease } from '../../../lib/ops/deploy.ts';
import { health } from '../../../lib/ops/health.ts';
import { runOp } from '../../support/run-op.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

const NOW = new Date('2025-03-04T05:06:07.890Z');
const layout = releaseLayout('shop');
const git = (ref: string) => ({ kind: 'git' as const, repo: 'https://git.example.com/shop.git', ref });
const desired = (over: Partial<DesiredRelease> = {}): DesiredRelease => ({
  layout,
  source: git('v2'),
  keep: 3,
  hook: undefined,
  owner: undefined,
  now: NOW,
  restart: { systemd: 'shop.service' },
  health: [health.http('http://127.0.0.1:8000/health')],
  wait: { deadlineMs: 30_000 },
  ...over,
});
const rel = (id: string, extra: Partial<Release> = {}): Release => ({ id, ...extra });
const A = rel('20250101T000000Z-v1', { ref: 'v1', commit: 'a'.repeat(40) });
const B = rel('20250102T000000Z-v2', { ref: 'v2', commit: 'b'.repeat(40) });
const C = rel('20250103T000000Z-v3', { ref: 'v3', commit: 'c'.repeat(40) });
const present = (current: string | undefined, releases: Release[], slots: Slot[] = []): ReleasesState => ({
  kind: 'present',
  current: current ? { kind: 'release', id: current, exists: releases.some((r) => r.id === current) } : { kind: 'none' },
  releases,
  records: [],
  slots,
});
const script = (c: Change | undefined): string => c?.actions[0]?.command.toString() ?? '';

t.test('release ids: UTC time, then a file-safe ref; unique', async (t) => {
  t.equal(releaseId(NOW, 'v2'), '20250304T050607Z-v2');
  t.equal(releaseId(NOW, 'feature/ä x'), '20250304T050607Z-feature-x');
  t.equal(releaseId(NOW, '..'), '20250304T050607Z-release');
  t.equal(releaseId(NOW, 'v2', ['20250304T050607Z-v2']), '20250304T050607Z-v2-2');
});

t.test('planning: a new release from facts, converged when the current release is that commit', async (t) => {
  const first = planRelease(desired(), { kind: 'missing' }, { kind: 'commit', commit: 'b'.repeat(40), name: 'refs/tags/v2' });
  t.equal(first?.summary, 'release 20250304T050607Z-v2 (v2), the first');
  const s = script(first);
  t.match(s, `git clone --quiet --mirror -- https://git.example.com/shop.git /srv/shop/repo.tmp`);
  t.match(s, `commit=${'b'.repeat(40)}; git --git-dir=/srv/shop/repo cat-file -e`, 'the planned commit is the one deployed');
  t.match(s, 'git --git-dir=/srv/shop/repo archive --format=tar -o /srv/shop/releases/.20250304T050607Z-v2.tar "$commit"');
  t.match(s, 'ln -s -- releases/20250304T050607Z-v2 /srv/shop/.current.tmp && mv -T -- /srv/shop/.current.tmp /srv/shop/current');
  t.notMatch(s, /rm -rf -- \/srv\/shop\/releases\/2/, 'nothing to prune');
  t.same(first?.checks?.map((c) => c.describe), [
    'restart (systemctl reset-failed shop.service 2>/dev/null; systemctl restart shop.service), then wait until healthy: GET http://127.0.0.1:8000/health → 200 (from the host), within 30 s; there is no previous release to go back to',
  ]);

  t.equal(planRelease(desired(), present(B.id, [A, B]), { kind: 'commit', commit: B.commit as string, name: 'refs/tags/v2' }), undefined, 'converged');
  t.equal(planRelease(desired({ source: git('b'.repeat(7)) }), present(B.id, [A, B]), { kind: 'not-found' }), undefined, 'a short commit id matches by prefix');
  t.equal(planRelease(desired({ source: git('b'.repeat(40)) }), present(B.id, [A, B]), { kind: 'no-git' }), undefined);

  const moved = planRelease(desired({ source: git('main') }), present(B.id, [A, B]), { kind: 'commit', commit: 'd'.repeat(40), name: 'refs/heads/main' });
  t.equal(moved?.summary, 'release 20250304T050607Z-main (main), replacing 20250102T000000Z-v2');
  t.match(moved?.checks?.[0]?.describe, /if not, switch back to 20250102T000000Z-v2, restart it and check again/);
  t.match(script(moved), /if \[ -d \/srv\/shop\/repo \]; then\n  git --git-dir=\/srv\/shop\/repo remote set-url origin/);
});

t.test('planning: refs that cannot be resolved now', async (t) => {
  const later = planRelease(desired(), { kind: 'missing' }, { kind: 'no-git' });
  t.equal(later?.summary, 'release 20250304T050607Z-v2 (v2), the first', 'the same summary as once git is installed: a dry-run says what the run will');
  t.equal(planRelease(desired(), { kind: 'missing' }, { kind: 'unavailable', reason: 'could not read from remote repository' })?.summary, 'release 20250304T050607Z-v2 (v2, not resolved now: could not read from remote repository), the first');
  t.match(script(later), 'commit=$(git --git-dir=/srv/shop/repo rev-parse --verify --quiet \'v2^{commit}\')');
  t.throws(() => planRelease(desired(), { kind: 'missing' }, { kind: 'not-found' }), { name: 'TackleError', phase: 'operation', reason: 'v2 is not a branch or tag of https://git.example.com/shop.git' });
});

t.test('planning: pruning keeps the newest, the live one and never more than asked', async (t) => {
  const old = ['20240101T000000Z-a', '20240102T000000Z-b', '20240103T000000Z-c', '20240104T000000Z-d'].map((id) => rel(id));
  // Live is the oldest (a rollback went far back): it stays, as do the 3 newest with the new one.
  const c = planRelease(desired({ keep: 3 }), present(old[0]?.id, old), { kind: 'commit', commit: 'e'.repeat(40), name: 'refs/tags/v2' });
  t.match(c?.summary, /prune 1 old$/);
  t.match(script(c), /\nrm -rf -- \/srv\/shop\/releases\/20240102T000000Z-b$/);
  const foreign = planRelease(desired({ keep: 1 }), present(A.id, [A, rel('hand-made')]), { kind: 'commit', commit: 'e'.repeat(40), name: 'refs/tags/v2' });
  t.notMatch(script(foreign), /hand-made/, 'directories tackle did not make are left alone');
  t.notMatch(script(foreign), new RegExp(`rm -rf -- /srv/shop/releases/${A.id}`), 'the live release (the way back) is kept even with keep: 1');
});

t.test('planning: refusals and options', async (t) => {
  const other: ReleasesState = { kind: 'present', current: { kind: 'other', target: '/opt/shop' }, releases: [], records: [], slots: [] };
  t.throws(() => planRelease(desired(), other, { kind: 'not-found' }), { name: 'TackleError', reason: /\/srv\/shop\/current is a link to \/opt\/shop, not a link into \/srv\/shop\/releases; tackle will not replace it/ });
  const hooked = planRelease(desired({ hook: sh`./manage migrate --token ${secret('s3cret')}`, owner: 'shop:shop' }), present(A.id, [A]), { kind: 'commit', commit: 'b'.repeat(40), name: 'x' });
  const s = script(hooked);
  t.match(s, '(cd /srv/shop/releases/20250304T050607Z-v2 || exit\nexport RELEASE_DIR=/srv/shop/releases/20250304T050607Z-v2 APP_DIR=/srv/shop PREVIOUS_RELEASE_DIR=/srv/shop/releases/20250101T000000Z-v1\n./manage migrate --token ***\n)');
  t.notMatch(s, /s3cret/, 'secrets in the hook stay masked');
  t.match(s, 'chown -R -- shop:shop /srv/shop/releases/.20250304T050607Z-v2.tmp');
  t.match(hooked?.summary, /pre-deploy hook/);
  t.throws(() => deploy.release({ app: 'a b', source: { git: { repo: 'r', ref: 'main' } } }), TackleError);
  t.throws(() => deploy.release({ app: 'a', source: { git: { repo: 'r', ref: '--upload-pack=x' } } }), /not a git branch/);
  t.throws(() => deploy.release({ app: 'a', source: { git: { repo: 'r', ref: 'a..b' } } }), TackleError);
  t.throws(() => deploy.release({ app: 'a', keep: 0, source: { git: { repo: 'r', ref: 'main' } } }), /keep must be/);
  t.throws(() => deploy.release({ app: 'a', root: 'srv', source: { git: { repo: 'r', ref: 'main' } } }), /absolute/);
  t.equal(deploy.release({ app: 'shop', source: { git: { repo: 'r', ref: 'v2' } } }).name, 'deploy.release shop v2');
  t.equal(deploy.release({ app: 'shop', source: { image: { tag: '1.4.2' } } }).name, 'deploy.release shop image 1.4.2');
});

t.test('planning: compose image tag releases', async (t) => {
  const img = (tag: string) => desired({ source: { kind: 'image', tag, envFile: '.env', variable: 'IMAGE_TAG', template: undefined }, restart: { compose: {} } });
  const cur = rel('20250101T000000Z-1.4.1', { image: '1.4.1' });
  const c = planRelease(img('1.4.2'), present(cur.id, [cur]), undefined);
  t.equal(c?.summary, 'release 20250304T050607Z-1.4.2 (image 1.4.2), replacing 20250101T000000Z-1.4.1');
  const s = script(c);
  t.match(s, 'cp -a -- /srv/shop/releases/20250101T000000Z-1.4.1/. /srv/shop/releases/.20250304T050607Z-1.4.2.tmp');
  t.match(s, "grep -v -e '^IMAGE_TAG=' -- /srv/shop/releases/.20250304T050607Z-1.4.2.tmp/.env || :; fi; printf '%s=%s\\n' IMAGE_TAG 1.4.2; }");
  t.match(
    c?.checks?.[0]?.describe,
    'restart (cd /srv/shop/releases/20250304T050607Z-1.4.2 && if docker compose version >/dev/null 2>&1; then docker compose --project-name shop up -d --remove-orphans; else docker-compose --project-name shop up -d --remove-orphans; fi)',
    'the v2 plugin where the host has it, else Debian 12’s docker-compose v1',
  );
  t.equal(planRelease(img('1.4.1'), present(cur.id, [cur]), undefined), undefined, 'converged: the tag is live');
  t.throws(() => planRelease(img('1.4.2'), { kind: 'missing' }, undefined), { name: 'TackleError', reason: /give image.template/ });
});

t.test('planning: rollback to the previous or a named release', async (t) => {
  const s = { layout, restart: { systemd: 'shop.service' }, health: [], wait: {} };
  t.equal(previousRelease([A, B, C], C.id)?.id, B.id);
  t.equal(previousRelease([A, B, C], A.id), undefined);
  const back = planRollback(s, present(B.id, [A, B, C]), undefined);
  t.equal(back?.summary, `switch /srv/shop/current from ${B.id} back to ${A.id}`, 'C is newer than the current release (a failed deploy): not "previous"');
  t.equal(script(back), `rm -rf -- /srv/shop/.current.tmp && ln -s -- releases/${A.id} /srv/shop/.current.tmp && mv -T -- /srv/shop/.current.tmp /srv/shop/current`);
  t.equal(planRollback(s, present(C.id, [A, B, C]), B.id)?.summary, `switch /srv/shop/current from ${C.id} back to ${B.id}`);
  t.equal(planRollback(s, present(B.id, [A, B, C]), B.id), undefined, 'already there');
  t.throws(() => planRollback(s, present(A.id, [A, B]), undefined), { name: 'TackleError', reason: `no release before ${A.id} ran healthily; there is nothing to roll back to, name the release to go to` });
  t.throws(() => planRollback(s, present(A.id, [A]), 'nope'), { name: 'TackleError', reason: `there is no release nope in /srv/shop/releases (there are: ${A.id})` });
  t.throws(() => planRollback(s, { kind: 'missing' }, undefined), { name: 'TackleError', reason: /nothing of shop was deployed here/ });
  t.equal(deploy.rollback({ app: 'shop', to: B.id }).name, `deploy.rollback shop to ${B.id}`);
});

// Issue 10 item 5: blue/green. Blue runs on 3001, green on 3002; the upstream file says which is live.
const BG: BlueGreen = {
  ports: [3001, 3002],
  upstream: 'shop',
  file: '/etc/nginx/conf.d/upstream-shop.conf',
  unit: 'shop@.service',
  health: (port) => [health.unit(colorUnit('shop@.service', port)), health.http(`http://127.0.0.1:${port}/health`)],
  stopPrevious: false,
  drainMs: 5000,
};
const bgDesired = (over: Partial<DesiredRelease> = {}) => desired({ restart: { systemd: 'shop@.service' }, health: [], blueGreen: BG, ...over });
const onPort = (port: number) => ({ kind: 'port' as const, port });
const V2REF = { kind: 'commit' as const, commit: 'b'.repeat(40), name: 'refs/tags/v2' };

t.test('blue/green planning: the new release starts on the color not live, its link switched, not current', async (t) => {
  const first = planRelease(bgDesired(), { kind: 'missing' }, V2REF, { kind: 'missing' });
  t.equal(first?.summary, 'release 20250304T050607Z-v2 (v2), the first, on blue (port 3001)');
  t.match(script(first), 'ln -s -- releases/20250304T050607Z-v2 /srv/shop/.current-3001.tmp && mv -T -- /srv/shop/.current-3001.tmp /srv/shop/current-3001');
  t.notMatch(script(first), /\/srv\/shop\/current\b(?!-)/, 'current is not touched before the color is healthy');
  t.equal(
    first?.checks?.[0]?.describe,
    'blue (port 3001): restart (systemctl reset-failed shop@3001.service 2>/dev/null; systemctl restart shop@3001.service), then wait until healthy: unit shop@3001.service active, GET http://127.0.0.1:3001/health → 200 (from the host), within 30 s; then switch upstream shop to port 3001 (/etc/nginx/conf.d/upstream-shop.conf, nginx -t, reload); if not healthy, stop blue: no traffic moves',
  );

  const next = planRelease(bgDesired(), present(A.id, [A], [{ port: 3001, id: A.id }]), V2REF, onPort(3001));
  t.equal(next?.summary, `release 20250304T050607Z-v2 (v2), replacing ${A.id}, on green (port 3002) beside blue (port 3001)`);
  t.match(script(next), 'mv -T -- /srv/shop/.current-3002.tmp /srv/shop/current-3002');
  t.match(next?.checks?.[0]?.describe, /^green \(port 3002\): restart \(.*shop@3002\.service\).* then switch upstream shop to port 3002 .*; blue \(port 3001\) keeps running, for a rollback without restart; if not healthy, stop green: traffic stays on blue \(port 3001\)$/);
  const stopping = planRelease(bgDesired({ blueGreen: { ...BG, stopPrevious: true, drainMs: 2000 } }), present(A.id, [A]), V2REF, onPort(3001));
  t.match(stopping?.checks?.[0]?.describe, 'stop blue (port 3001) 2000 ms later');

  t.equal(planRelease(bgDesired(), present(B.id, [A, B]), V2REF, onPort(3002)), undefined, 'converged: v2 is current and a color is live');
  t.match(planRelease(bgDesired(), present(B.id, [A, B]), V2REF, { kind: 'missing' })?.summary, /on blue \(port 3001\)$/, 'current but no upstream yet (a plain deploy before): deployed on blue');
  t.match(planRelease(bgDesired(), present(A.id, [A]), V2REF, onPort(8000))?.summary, /on blue \(port 3001\)$/, 'a port not of the two counts as no color live');
  t.throws(() => planRelease(bgDesired(), present(A.id, [A]), V2REF, { kind: 'other', reason: 'it names no server, not one 127.0.0.1:PORT' }), {
    name: 'TackleError',
    reason: /upstream-shop\.conf was not written by tackle \(it names no server/,
  });
});

t.test('blue/green planning: pruning keeps the release each color still runs', async (t) => {
  const old = ['20240101T000000Z-a', '20240102T000000Z-b', '20240103T000000Z-c', '20240104T000000Z-d'].map((id) => rel(id));
  // d is live on green; b still runs on blue, which the new release is about to replace: b may go.
  const c = planRelease(bgDesired({ keep: 2 }), present('20240104T000000Z-d', old, [{ port: 3001, id: '20240102T000000Z-b' }, { port: 3002, id: '20240104T000000Z-d' }]), V2REF, onPort(3002));
  t.match(script(c), /\nrm -rf -- \/srv\/shop\/releases\/20240101T000000Z-a \/srv\/shop\/releases\/20240102T000000Z-b \/srv\/shop\/releases\/20240103T000000Z-c$/);
  // Live on blue (after a rollback), d on green: the new release replaces d; a, live, stays even with keep: 1.
  const d = planRelease(bgDesired({ keep: 1 }), present('20240101T000000Z-a', old, [{ port: 3001, id: '20240101T000000Z-a' }, { port: 3002, id: '20240104T000000Z-d' }]), V2REF, onPort(3001));
  t.match(script(d), /\nrm -rf -- \/srv\/shop\/releases\/20240102T000000Z-b \/srv\/shop\/releases\/20240103T000000Z-c \/srv\/shop\/releases\/20240104T000000Z-d$/);
  // No color live (the upstream file is gone): the deploy goes to blue; what green runs stays.
  const e = planRelease(bgDesired({ keep: 1 }), present('20240104T000000Z-d', old, [{ port: 3002, id: '20240102T000000Z-b' }]), V2REF, { kind: 'missing' });
  t.match(script(e), /\nrm -rf -- \/srv\/shop\/releases\/20240101T000000Z-a \/srv\/shop\/releases\/20240103T000000Z-c$/);
});

t.test('blue/green rollback: the other color takes the traffic back, without a restart when it still runs that release', async (t) => {
  const s = { layout, restart: { systemd: 'shop@.service' }, health: [], wait: {}, blueGreen: BG };
  const states = (blue: string, green: string) => ({ kind: 'states' as const, states: { 'shop@3001.service': blue, 'shop@3002.service': green } });
  const state = { ...(present(B.id, [A, B], [{ port: 3001, id: A.id }, { port: 3002, id: B.id }]) as ReleasesState & { kind: 'present' }), records: [rec('deploy', A, 'ok'), rec('deploy', B, 'ok', A)] };

  const instant = planRollback(s, state, undefined, { upstream: onPort(3002), units: states('active', 'active') });
  t.equal(instant?.summary, `switch upstream shop from green (port 3002) (${B.id}) back to ${A.id} on blue (port 3001), which runs it already: no restart`);
  t.equal(script(instant), `[ "$(readlink -- /srv/shop/current-3001)" = releases/${A.id} ] || { printf 'tackle: %s no longer points at %s; plan again\\n' /srv/shop/current-3001 ${A.id} >&2; exit 1; }`, 'only a check that blue still runs it');
  t.match(instant?.checks?.[0]?.describe, /^blue \(port 3001\) runs \S+-v1 already: no restart, wait until healthy: unit shop@3001\.service active, GET http:\/\/127\.0\.0\.1:3001\/health .*then switch upstream shop to port 3001/);

  const stopped = planRollback(s, state, undefined, { upstream: onPort(3002), units: states('inactive', 'active') });
  t.equal(stopped?.summary, `switch upstream shop from green (port 3002) (${B.id}) back to ${A.id} on blue (port 3001)`);
  t.equal(script(stopped), `rm -rf -- /srv/shop/.current-3001.tmp && ln -s -- releases/${A.id} /srv/shop/.current-3001.tmp && mv -T -- /srv/shop/.current-3001.tmp /srv/shop/current-3001`);
  t.match(stopped?.checks?.[0]?.describe, /^blue \(port 3001\): restart \(systemctl reset-failed shop@3001\.service/);

  const elsewhere = planRollback(s, { ...state, slots: [{ port: 3001, id: 'other' }] }, undefined, { upstream: onPort(3002), units: states('active', 'active') });
  t.equal(elsewhere?.actions.length, 1, 'blue runs another release: relinked and restarted');
  t.equal(planRollback(s, state, B.id, { upstream: onPort(3002), units: states('active', 'active') }), undefined, 'already live');
  t.throws(() => planRollback(s, state, undefined, { upstream: { kind: 'missing' }, units: states('active', 'active') }), { name: 'TackleError', reason: /names neither port 3001 nor 3002: no color is live/ });
});

t.test('blue/green options are checked at once', async (t) => {
  const base = { app: 'shop', source: { git: { repo: 'r', ref: 'v2' } } };
  t.throws(() => deploy.release({ ...base, restart: { systemd: 'shop.service' }, blueGreen: { ports: [3001, 3002], upstream: 'shop' } }), /template unit/);
  t.throws(() => deploy.release({ ...base, restart: { systemd: 'shop@.service' }, blueGreen: { ports: [3001, 3001], upstream: 'shop' } }), /two different port numbers/);
  t.throws(() => deploy.release({ ...base, restart: { systemd: 'shop@.service' }, blueGreen: { ports: [3001, 3002], upstream: 'shop; evil' } }), /upstream must be a name/);
  t.throws(() => deploy.release({ ...base, restart: { systemd: 'shop@.service' }, blueGreen: { ports: [3001, 3002], upstream: 'shop', file: 'rel.conf' } }), /absolute path ending in .conf/);
  t.equal(deploy.release({ ...base, restart: { systemd: 'shop@' }, blueGreen: { ports: [3001, 3002], upstream: 'shop' } }).name, 'deploy.release shop v2');
  t.equal(colorUnit('shop@.service', 3002), 'shop@3002.service');
  t.equal(colorUnit('shop@', 3001), 'shop@3001');
});

t.test('switching the upstream for real (fake nginx and systemctl): written, checked, reloaded; restored when nginx -t refuses', async (t) => {
  const dir = tempDir('upstream');
  const bin = join(dir, 'bin');
  await mkdir(bin);
  // nginx -t fails while the file names port 9999; systemctl logs what it is asked.
  await writeFile(join(bin, 'nginx'), `#!/bin/sh\nif grep -q 9999 ${dir}/upstream-shop.conf; then echo 'nginx: [emerg] no' >&2; exit 1; fi\necho ok\n`, { mode: 0o755 });
  await writeFile(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> ${dir}/systemctl.log\n`, { mode: 0o755 });
  const bg: BlueGreen = { ...BG, ports: [3001, 9999], file: join(dir, 'upstream-shop.conf') };
  const run = (port: number) => {
    try {
      execFileSync('sh', ['-c', switchUpstreamCommand(bg, port).toString()], { env: { PATH: `${bin}:/usr/bin:/bin` }, stdio: 'pipe' });
      return '';
    } catch (err) {
      return String((err as { stderr: Buffer }).stderr);
    }
  };
  t.equal(run(3001), '');
  t.equal(await readFile(bg.file, 'utf8'), upstreamConf('shop', 3001));
  t.equal(await readFile(join(dir, 'systemctl.log'), 'utf8'), 'is-active --quiet nginx.service\nreload nginx.service\n');
  t.match(run(9999), /tackle: nginx -t rejected the new .*\/upstream-shop\.conf; the previous version is back in place:\nnginx: \[emerg\] no/);
  t.equal(await readFile(bg.file, 'utf8'), upstreamConf('shop', 3001), 'the previous file is back');
  t.same((await readdir(dir)).sort(), ['bin', 'systemctl.log', 'upstream-shop.conf'], 'no temporary file left');
});

// Issue 8 item 9, as the host's records have it after: deploy v1, v2, v3 (rolled back
// automatically), rollback to v1, v2 again (a new directory, newer than v3).
const V1 = rel('20250101T000000Z-v1', { ref: 'v1' });
const V2 = rel('20250102T000000Z-v2', { ref: 'v2' });
const V3 = rel('20250103T000000Z-v3', { ref: 'v3' });
const V2b = rel('20250105T000000Z-v2', { ref: 'v2' });
const rec = (action: 'deploy' | 'rollback', release: Release, result: ReleaseRecord['result'], previous?: Release): ReleaseRecord => ({
  time: '2025-01-01T00:00:00Z',
  action,
  release: release.id,
  result,
  ...(previous ? { previous: previous.id } : {}),
});
const SEQUENCE = [rec('deploy', V1, 'ok'), rec('deploy', V2, 'ok', V1), rec('deploy', V3, 'rolled-back', V2), rec('rollback', V1, 'ok', V2), rec('deploy', V2b, 'ok', V1)];
const withRecords = (current: string, releases: Release[], records: ReleaseRecord[]) => ({ ...(present(current, releases) as ReleasesState & { kind: 'present' }), records });

t.test('rollback target: the release that ran healthily before the current one, never a broken one', async (t) => {
  const s = { layout, restart: { systemd: 'shop.service' }, health: [], wait: {} };
  const all = [V1, V2, V3, V2b];
  t.same(rollbackTarget(withRecords(V2b.id, all, SEQUENCE), V2b.id), { target: V1, skipped: [] }, 'the recorded previous of v2 (again) is v1; v3 is no candidate');
  t.equal(previousRelease(all, V2b.id)?.id, V3.id, 'while by directory order it would be the broken v3');
  t.equal(planRollback(s, withRecords(V2b.id, all, SEQUENCE), undefined)?.summary, `switch /srv/shop/current from ${V2b.id} back to ${V1.id}`);

  // v4 deployed over the broken v3 by hand (--to): its recorded previous is v3, which is passed over.
  const V4 = rel('20250106T000000Z-v4');
  const overBroken = [...SEQUENCE, rec('rollback', V3, 'failed', V2b), rec('deploy', V4, 'ok', V3)];
  t.same(rollbackTarget(withRecords(V4.id, [...all, V4], overBroken), V4.id), { target: V2, skipped: [`${V3.id}: its last record is failed`] }, 'then what was live when v3 was deployed');
  t.match(planRollback(s, withRecords(V4.id, [...all, V4], overBroken), undefined)?.summary, `back to ${V2.id} (passed over ${V3.id}: its last record is failed)`);

  // Without records (releases made before they were kept) the order of ids, still passing over broken ones.
  t.same(rollbackTarget(withRecords(V2b.id, all, []), V2b.id), { target: V3, skipped: [] });
  t.same(rollbackTarget(withRecords(V2b.id, all, [rec('deploy', V3, 'rolled-back', V2)]), V2b.id), { target: V2, skipped: [`${V3.id}: its last record is rolled-back`] });
  t.same(rollbackTarget(withRecords(V2b.id, [V1, V2b], SEQUENCE.slice(0, 1)), V2b.id), { target: V1, skipped: [] });

  // A release healthy again later counts as healthy: its newest record decides.
  t.same(rollbackTarget(withRecords(V2b.id, all, [...SEQUENCE.slice(0, 4), rec('deploy', V2b, 'ok', V3), rec('rollback', V3, 'ok', V2b), rec('rollback', V2b, 'ok', V3)]), V2b.id).target, V3);

  // Nothing healthy before: refused, naming what was passed over; records that loop end.
  const broken = [rec('deploy', V1, 'failed'), rec('deploy', V2, 'ok', V1)];
  t.throws(() => planRollback(s, withRecords(V2.id, [V1, V2], broken), undefined), {
    name: 'TackleError',
    reason: `no release before ${V2.id} ran healthily (passed over ${V1.id}: its last record is failed); there is nothing to roll back to, name the release to go to`,
  });
  const loop = [rec('deploy', V1, 'rolled-back', V2), rec('deploy', V2, 'ok', V1)];
  t.same(rollbackTarget(withRecords(V2.id, [V1, V2], loop), V2.id), { target: undefined, skipped: [`${V1.id}: its last record is rolled-back`] });
  t.same(rollbackTarget(withRecords(V2.id, [V2], SEQUENCE), V2.id), { target: undefined, skipped: [`${V1.id}: removed`] }, 'a pruned release is no way back');

  // Named by hand, a broken release is still tried; the plan says what it is known for.
  const named = planRollback(s, withRecords(V1.id, all, SEQUENCE), V3.id);
  t.equal(named?.summary, `switch /srv/shop/current from ${V1.id} back to ${V3.id} (its last record is rolled-back)`);
  t.equal(named?.checks?.[0]?.describe, `restart (systemctl reset-failed shop.service 2>/dev/null; systemctl restart shop.service); if not, switch back to ${V1.id}, restart it and check again`);
});

t.test('what ends a health wait early: the restarted unit failed, or a compose container exited', async (t) => {
  t.same(restartStops({ systemd: 'shop.service' }, [health.http('http://x/')], 'shop').map((f) => f.command.toString()), ['systemctl is-active -- shop.service']);
  t.same(restartStops({ systemd: 'shop.service' }, [health.unit('shop.service')], 'shop'), [], 'a unit probe watches it already');
  t.same(restartStops({ compose: {} }, [], 'Shop').map((f) => f.command.toString()), [
    "docker ps -a --filter label=com.docker.compose.project=shop --format '{{.Label \"com.docker.compose.service\"}}\t{{.Status}}'",
  ]);
  t.same(restartStops({ command: sh`./restart` }, [], 'shop'), []);
  t.same(restartStops(undefined, [], 'shop'), []);
});

// The whole cycle for real on this machine: a git repository with three tags, a "service" that
// is a node HTTP server answering from whatever `current` points at, health checked from here.
t.test('real run: deploy, converge, fail and roll back, roll back by hand, records', async (t) => {
  const root = tempDir('deploy');
  const repo = join(root, 'src');
  await mkdir(repo);
  const g = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { stdio: 'pipe' });
  g('init', '-q', '-b', 'main');
  for (const [tag, state] of [['a', 'ok'], ['b', 'ok'], ['c', 'broken']] as const) {
    await writeFile(join(repo, 'health'), `${state}\n`);
    await writeFile(join(repo, 'name'), `release ${tag}\n`);
    g('add', '.');
    g('commit', '-q', '-m', tag);
    g('tag', tag);
  }
  const app = join(root, 'srv', 'web');
  const server = createServer((req, res) => {
    readFile(join(app, 'current', req.url === '/health' ? 'health' : 'name'), 'utf8').then(
      (text) => res.writeHead(req.url === '/health' && text !== 'ok\n' ? 500 : 200).end(text),
      () => res.writeHead(503).end('no current release\n'),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const conn = new LocalConnection('local');
  const opts = (ref: string, now: string) => ({
    app: 'web',
    root: join(root, 'srv'),
    source: { git: { repo, ref } },
    keep: 2,
    restart: { command: sh`echo "$RELEASE_DIR" >> ../../restarts` },
    health: [health.http(`${url}/health`, { from: 'controller', body: 'ok' })],
    wait: { deadlineMs: 1500, firstDelayMs: 50 },
    now: new Date(now),
  });
  const serving = async () => (await fetch(`${url}/`)).text();

  const a = await runOp(deploy.release(opts('a', '2025-01-01T00:00:00Z')), { connection: conn });
  t.equal(a.status, 'changed', a.error?.message ?? '');
  t.equal(await serving(), 'release a\n');
  t.equal(await readlink(join(app, 'current')), 'releases/20250101T000000Z-a');
  t.equal((await runOp(deploy.release(opts('a', '2025-01-01T00:01:00Z')), { connection: conn })).status, 'ok', 'converged: same commit');

  // A failing hook stops the deploy before the switch, and leaves no half-made release.
  const hooked = await runOp(deploy.release({ ...opts('b', '2025-01-01T12:00:00Z'), hook: sh`echo 'no migration' >&2; exit 3` }), { connection: conn });
  t.equal(hooked.status, 'failed');
  t.match(hooked.error?.stderrTail, /no migration\ntackle: the pre-deploy hook failed \(exit 3\)/);
  t.same(await readdir(join(app, 'releases')), ['20250101T000000Z-a'], 'the new release was removed');
  t.equal(await serving(), 'release a\n', 'still on a');

  // The hook gets the real secret; every output shows ***.
  const hook = sh`test "$(cat name)" = 'release b' && test ${secret('s3cret')} = "$(printf s3c)ret" && touch ../../hook-ran`;
  const b = await runOp(deploy.release({ ...opts('b', '2025-01-02T00:00:00Z'), hook }), { connection: conn });
  t.equal(b.status, 'changed', b.error?.message ?? '');
  t.ok((await readFile(join(app, 'hook-ran'), 'utf8')) === '', 'the hook ran in the new release, with the secret');
  t.notMatch(JSON.stringify(b), /s3cret/, 'the secret is masked in the step');
  t.match(b.commands?.[0], 'test *** = "$(printf s3c)ret"');
  t.equal(await serving(), 'release b\n');

  const c = await runOp(deploy.release(opts('c', '2025-01-03T00:00:00Z')), { connection: conn });
  t.equal(c.status, 'failed');
  t.match(c.error?.reason, /^failed \(rolled back\): rolled back to 20250102T000000Z-b: not healthy after \d+ attempts in [\d.]+ s: GET http:\/\/127\.0\.0\.1:\d+\/health answered 500, expected 200: broken$/);
  t.equal(await serving(), 'release b\n', 'back on b and serving');
  t.equal(await readlink(join(app, 'current')), 'releases/20250102T000000Z-b');
  t.same((await readdir(join(app, 'releases'))).sort(), ['20250102T000000Z-b', '20250103T000000Z-c'], 'keep 2: a was pruned when c was made; b, the live one then, stays');

  const service = { app: 'web', root: join(root, 'srv'), restart: opts('a', NOW.toISOString()).restart, health: opts('a', NOW.toISOString()).health, wait: { deadlineMs: 1500 } };
  const none = await runOp(deploy.rollback(service), { connection: conn });
  t.equal(none.error?.reason, 'deploy.rollback: no release before 20250102T000000Z-b ran healthily (passed over 20250101T000000Z-a: removed); there is nothing to roll back to, name the release to go to', 'c is newer than b (and rolled back): no way back');
  const back = await runOp(deploy.rollback({ ...service, to: '20250103T000000Z-c' }), { connection: conn });
  t.equal(back.status, 'failed', 'a named release that is unhealthy');
  t.match(back.error?.reason, /^failed \(switched back to 20250102T000000Z-b\): 20250103T000000Z-c: not healthy after/);
  t.equal(await serving(), 'release b\n', 'switched back to b, serving');
  t.equal(await readlink(join(app, 'current')), 'releases/20250102T000000Z-b');
  t.equal((await runOp(deploy.rollback({ ...service, to: '20250102T000000Z-b' }), { connection: conn })).status, 'ok', 'already on it');

  const restarts = (await readFile(join(app, 'restarts'), 'utf8')).trim().split('\n').map((l) => l.replace(/.*\//, ''));
  t.same(restarts, ['20250101T000000Z-a', '20250102T000000Z-b', '20250103T000000Z-c', '20250102T000000Z-b', '20250103T000000Z-c', '20250102T000000Z-b'], 'each restart ran in the real release directory');
  const records = (await readFile(join(app, 'releases.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  t.same(
    records.map((r) => [r.action, r.release, r.result, r.previous]),
    [
      ['deploy', '20250101T000000Z-a', 'ok', undefined],
      ['deploy', '20250101T120000Z-b', 'failed', '20250101T000000Z-a'],
      ['deploy', '20250102T000000Z-b', 'ok', '20250101T000000Z-a'],
      ['deploy', '20250103T000000Z-c', 'rolled-back', '20250102T000000Z-b'],
      ['rollback', '20250103T000000Z-c', 'failed', '20250102T000000Z-b'],
    ],
  );
  t.match(records[3], { ref: 'c', commit: /^[0-9a-f]{40}$/, reason: /answered 500/ });
});
