import { readFileSync } from 'node:fs';
import t from 'tap';
import type { FactOutput } from '../../../lib/facts/fact.ts';
import { composeStopped, gitRemoteRef, parseComposeStopped, parseLsRemote, parseReleasesState, releaseIdOfTarget, releasesState } from '../../../lib/facts/deploy.ts';

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
  }, 'the temp dir of a release being made is not listed; a line that is not JSON is skipped');
  t.same(parseReleasesState(out('releases /srv/nothing'), '/srv/nothing'), { kind: 'missing' });
  t.same(parseReleasesState(out('releases /srv/other'), '/srv/other'), { kind: 'present', current: { kind: 'other', target: '/opt/elsewhere' }, releases: [], records: [] });
  t.same(parseReleasesState(out('releases /srv/plain'), '/srv/plain'), { kind: 'present', current: { kind: 'other', target: '(not a symlink)' }, releases: [], records: [] });
  t.same(parseReleasesState({ stdout: 'present\ncurrent link releases/gone\nrecords\n', stderr: '', exitCode: 0 }, '/srv/a'), {
    kind: 'present',
    current: { kind: 'release', id: 'gone', exists: false },
    releases: [],
    records: [],
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
  t.same(parseLsRemote('main', { stdout: 'git is not installed\n', stderr: '', exitCode: 0 }), { kind: 'unavailable', reason: 'git is not installed on the host' });
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
