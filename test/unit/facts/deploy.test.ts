import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { FactOutput } from '../../../lib/facts/fact.ts';
import { composeStopped, gitRemoteRef, liveUpstream, parseComposeStopped, parseLiveUpstream, parseLsRemote, parseReleasesState, releaseIdOfTarget, releasesState } from '../../../lib/facts/deploy.ts';
import { tempDir } from '../../support/temp-dir.ts';

// Real outputs; see the fixture's _comment for how each was made.
const lab = JSON.parse(readFileSync(new URL('./fixtures/deploy.json', import.meta.url), 'utf8')) as Record<string, FactOutput>;
const out = (name: string): FactOutput => {
  const o = lab[name];
  if (!o) throw new Error(`no fixture ${name}`);
  return o;
};

t.test('releases: current link, markers, records', async (t) => {
  t.same(parseReleasesState(out('releases /srv/shop'), '/srv/shop'), {
    kind: 'present',
    current: { kind: 'release', id: '20250102T000000Z-v2', exists: true },
    releases: [
      { id: '20250101T000000Z-v1', ref: 'v1', commit: '5f55c9c3ba44ac914ab1d83ede329b1383bd41f5', createdAt: '2025-01-01T00:00:00.000Z' },
      { id: '20250102T000000Z-v2', image: '1.4.2', createdAt: '2025-01-02T00:00:00.000Z' },
      { id: 'hand-made' },
    ],
    records: [
      { time: '2025-01-01T00:00:05.000Z', action: 'deploy', release: '20250101T000000Z-v1', result: 'ok', ref: 'v1', commit: '5f55c9c3ba44ac914ab1d83ede329b1383bd41f5' },
      { time: '2025-01-02T00:00:09.000Z', action: 'deploy', release: '20250102T000000Z-v2', result: 'rolled-back', image: '1.4.2', previous: '20250101T000000Z-v1', reason: 'not healthy' },
    ],
    slots: [],
  }, 'the temp dir of a release being made is not listed; a line that is not JSON is skipped');
  t.same(parseReleasesState(out('releases /srv/nothing'), '/srv/nothing'), { kind: 'missing' });
  t.same(parseReleasesState(out('releases /srv/other'), '/srv/other'), { kind: 'present', current: { kind: 'other', target: '/opt/elsewhere' }, releases: [], records: [], slots: [] });
  t.same(parseReleasesState(out('releases /srv/plain'), '/srv/plain'), { kind: 'present', current: { kind: 'other', target: '(not a symlink)' }, releases: [], records: [], slots: [] });
  t.same(parseReleasesState({ stdout: 'present\ncurrent link releases/gone\nrecords\n', stderr: '', exitCode: 0 }, '/srv/a'), {
    kind: 'present',
    current: { kind: 'release', id: 'gone', exists: false },
    releases: [],
    records: [],
    slots: [],
  });
  t.throws(() => parseReleasesState({ stdout: 'present\ncurrent none\n', stderr: '', exitCode: 0 }), /ended early/);
  t.throws(() => parseReleasesState({ stdout: '', stderr: 'Permission denied', exitCode: 2 }), /Permission denied/);
  t.equal(releasesState('/srv/shop').key, 'deploy.releases /srv/shop');
});

t.test('link targets into releases/', async (t) => {
  t.equal(releaseIdOfTarget('releases/x', '/srv/a'), 'x');
  t.equal(releaseIdOfTarget('./releases/x/', '/srv/a'), 'x');
  t.equal(releaseIdOfTarget('/srv/a/releases/x', '/srv/a'), 'x');
  t.equal(releaseIdOfTarget('/srv/b/releases/x', '/srv/a'), undefined);
  t.equal(releaseIdOfTarget('releases/x/y', '/srv/a'), undefined);
});

t.test('ls-remote resolved as rev-parse would', async (t) => {
  t.same(parseLsRemote('v1', out('ls-remote v1')), { kind: 'commit', commit: 'f4c2da5100be6803a94d971b06d4089c8b0a6497', name: 'refs/tags/v1' }, 'an annotated tag: the commit it points at');
  t.same(parseLsRemote('main', out('ls-remote main')), { kind: 'commit', commit: 'f4c2da5100be6803a94d971b06d4089c8b0a6497', name: 'refs/heads/main' });
  t.same(parseLsRemote('light', out('ls-remote light')), { kind: 'commit', commit: 'f4c2da5100be6803a94d971b06d4089c8b0a6497', name: 'refs/tags/light' });
  t.same(parseLsRemote('x', out('ls-remote x')), { kind: 'not-found' }, 'ls-remote matches feature/x by its tail; git rev-parse x would not');
  t.same(parseLsRemote('main', out('ls-remote missing repo')), { kind: 'unavailable', reason: "fatal: '/nonexistent/repo.git' does not appear to be a git repository" });
  t.same(parseLsRemote('main', { stdout: 'git is not installed\n', stderr: '', exitCode: 0 }), { kind: 'no-git' }, 'resolved by the release once git is installed');
  t.match(gitRemoteRef('https://g.test/a.git', 'v1').command.toString(), "GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes' timeout 60 git ls-remote -- https://g.test/a.git v1 'v1^{}'");
});

t.test('a compose project stopped for good: a container exited non-zero, or dead', async (t) => {
  t.equal(composeStopped('shop').command.toString(), "docker ps -a --filter label=com.docker.compose.project=shop --format '{{.Label \"com.docker.compose.service\"}}\t{{.Status}}'");
  const out = (stdout: string, exitCode = 0): FactOutput => ({ stdout, stderr: '', exitCode });
  t.equal(parseComposeStopped(out('web\tUp 3 seconds\ndb\tUp 2 minutes (healthy)\n')), undefined);
  t.equal(parseComposeStopped(out('web\tRestarting (1) 2 seconds ago\n')), undefined, 'a restart policy is still trying');
  t.equal(parseComposeStopped(out('migrate\tExited (0) 5 seconds ago\nweb\tUp 4 seconds\n')), undefined, 'a one-shot job that finished');
  t.equal(parseComposeStopped(out('web\tExited (1) 2 seconds ago\nworker\tDead\n')), 'container of web exited with code 1; container of worker is dead');
  t.equal(parseComposeStopped(out('', 127)), undefined, 'no docker: the probes say what is wrong');
});

/** Runs a fact's command with the local sh, as a host would, and parses what it printed. */
function runLocally<T>(fact: { command: { toString(): string }; parse(out: FactOutput): T }): T {
  const stdout = execFileSync('sh', ['-c', fact.command.toString()], { encoding: 'utf8' });
  return fact.parse({ stdout, stderr: '', exitCode: 0 });
}

t.test('blue/green: each color\'s current-PORT link and the port recorded with a release', async (t) => {
  const dir = tempDir('bg');
  for (const id of ['20250101T000000Z-v1', '20250102T000000Z-v2']) mkdirSync(join(dir, 'releases', id), { recursive: true });
  symlinkSync('releases/20250102T000000Z-v2', join(dir, 'current'));
  symlinkSync('releases/20250101T000000Z-v1', join(dir, 'current-3001'));
  symlinkSync('releases/20250102T000000Z-v2', join(dir, 'current-3002'));
  symlinkSync('/opt/elsewhere', join(dir, 'current-4000'));
  writeFileSync(join(dir, 'releases.jsonl'), '{"time":"t","action":"deploy","release":"20250102T000000Z-v2","result":"ok","port":3002,"color":"green"}\n{"time":"t","action":"deploy","release":"x","result":"ok","port":"3001","color":"red"}\n');
  const state = runLocally(releasesState(dir));
  t.match(state, {
    kind: 'present',
    current: { kind: 'release', id: '20250102T000000Z-v2', exists: true },
    slots: [
      { port: 3001, id: '20250101T000000Z-v1' },
      { port: 3002, id: '20250102T000000Z-v2' },
    ],
  }, 'a link out of releases/ is no color');
  t.equal(state.kind === 'present' ? state.slots.length : 0, 2);
  t.same(state.kind === 'present' ? state.records : [], [
    { time: 't', action: 'deploy', release: '20250102T000000Z-v2', result: 'ok', port: 3002, color: 'green' },
    { time: 't', action: 'deploy', release: 'x', result: 'ok' },
  ], 'a port that is not a number, a color that is not blue or green, are dropped');
});

t.test('blue/green: the live port from the upstream file', async (t) => {
  const dir = tempDir('up');
  const file = join(dir, 'upstream-app.conf');
  t.same(runLocally(liveUpstream(file)), { kind: 'missing' });
  writeFileSync(file, '# Managed by tackle\nupstream app {\n    server 127.0.0.1:3002;\n}\n');
  t.same(runLocally(liveUpstream(file)), { kind: 'port', port: 3002 });
  t.same(parseLiveUpstream({ stdout: 'file\nupstream app { server 10.0.0.5:80; server 10.0.0.6:80; }\n', stderr: '', exitCode: 0 }), { kind: 'other', reason: 'it names 10.0.0.5:80, 10.0.0.6:80, not one 127.0.0.1:PORT' });
  t.same(parseLiveUpstream({ stdout: 'file\n', stderr: '', exitCode: 0 }), { kind: 'other', reason: 'it names no server, not one 127.0.0.1:PORT' });
  t.throws(() => parseLiveUpstream({ stdout: '', stderr: 'Permission denied', exitCode: 1 }), /Permission denied/);
});
