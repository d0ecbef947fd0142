import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import type { ApplyContext } from '../../../lib/ops/operation.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import {
  connectFromController,
  describeHealth,
  describeUnhealthy,
  describeProbe,
  fetchFromController,
  health,
  judgeHttp,
  judgeTcp,
  judgeUnit,
  unitStop,
  waitForHealth,
  type Clock,
  type HealthOutcome,
  type Probe,
} from '../../../lib/ops/health.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

const httpProbe = (opts: Parameters<typeof health.http>[1] = {}) => health.http('http://127.0.0.1:8000/health', opts) as Probe & { kind: 'http' };

t.test('probes are built and described', async (t) => {
  t.same(health.http('https://app.test/health', { body: 'ok', from: 'controller' }), { kind: 'http', url: 'https://app.test/health', status: 200, body: 'ok', from: 'controller', insecure: false, timeoutMs: 5000 });
  t.equal(describeProbe(health.http('http://x/h', { status: 204, body: /up/ })), 'GET http://x/h → 204 with body matching /up/ (from the host)');
  t.equal(describeProbe(health.tcp(5432)), 'TCP 127.0.0.1:5432 open (from the host)');
  t.equal(describeProbe(health.unit('app.service')), 'unit app.service active');
  t.equal(describeHealth([health.unit('a'), health.tcp(1, { from: 'controller', address: '10.0.0.1' })], { deadlineMs: 90_000 }), 'unit a active, TCP 10.0.0.1:1 open (from here), within 90 s');
  t.throws(() => health.http('localhost:80'), TackleError);
  t.throws(() => health.http('http://x/', { status: 99 }), TackleError);
  t.throws(() => health.http('http://x/', { from: 'there' as never }), /from must be/);
  t.throws(() => health.tcp(0), TackleError);
  t.throws(() => health.unit('-x'), TackleError);
  t.throws(() => health.check([]), TackleError);
});

t.test('judging one answer (pure)', async (t) => {
  t.equal(judgeHttp(httpProbe(), { kind: 'response', status: 200, body: '' }), undefined);
  t.equal(judgeHttp(httpProbe(), { kind: 'response', status: 500, body: 'db  down\n' }), 'GET http://127.0.0.1:8000/health answered 500, expected 200: db down');
  t.equal(judgeHttp(httpProbe({ body: 'ok' }), { kind: 'response', status: 200, body: 'starting' }), 'GET http://127.0.0.1:8000/health answered 200 but its body does not contain "ok": starting');
  t.equal(judgeHttp(httpProbe({ body: /^ok$/m }), { kind: 'response', status: 200, body: 'x\nok\n' }), undefined);
  t.equal(judgeHttp(httpProbe(), { kind: 'error', reason: 'Connection refused' }), 'GET http://127.0.0.1:8000/health: Connection refused');
  t.equal(judgeTcp(health.tcp(22) as Probe & { kind: 'tcp' }, { kind: 'closed', reason: 'Connection refused' }), 'TCP 127.0.0.1:22: Connection refused');
  const unit = health.unit('app') as Probe & { kind: 'unit' };
  t.equal(judgeUnit(unit, { kind: 'states', states: { app: 'active' } }), undefined);
  t.equal(judgeUnit(unit, { kind: 'states', states: { app: 'activating' } }), 'unit app is activating');
  t.equal(judgeUnit(unit, { kind: 'unavailable', reason: 'no systemd' }), 'unit app: no systemd');
});

/** Time that passes only when slept through, so backoff is tested without waiting. */
function fakeClock(): Clock & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
}

t.test('waiting: backoff doubles up to the cap and stops at the deadline', async (t) => {
  let answers = 0;
  const server = createServer((_req, res) => {
    answers++;
    res.writeHead(answers >= 5 ? 200 : 503).end(answers >= 5 ? 'ok' : 'starting');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  const conn = new LocalConnection('local');
  const clock = fakeClock();
  const ok = await waitForHealth(conn, [health.http(url, { from: 'controller', body: 'ok' })], { firstDelayMs: 100, maxDelayMs: 500, deadlineMs: 10_000 }, { clock });
  t.match(ok, { kind: 'healthy', attempts: 5 });
  t.same(clock.slept, [100, 200, 400, 500]);
  t.equal(conn.stats().channels, 0, 'probes from the controller never touch the host');

  const never = fakeClock();
  const bad = await waitForHealth(conn, [health.http(`${url}x`, { from: 'controller', status: 204 })], { firstDelayMs: 1000, deadlineMs: 2500 }, { clock: never });
  t.match(bad, { kind: 'unhealthy', attempts: 3, reason: /answered 200, expected 204: ok/ });
  t.same(never.slept, [1000, 1500], 'the last wait ends at the deadline, not beyond');
});

t.test('waiting ends at once when the service stopped for good, with that reason first', async (t) => {
  const dir = tempDir('stop');
  const state = join(dir, 'state');
  await writeFile(state, 'activating\n');
  // A stop sign read like unitStop's: the unit's state, here from a file the test changes.
  const stop = defineFact('test.stop', sh`cat ${state}`, ({ stdout }) => (stdout.trim() === 'failed' ? 'unit app failed' : undefined));
  const conn = new LocalConnection('local');
  const clock = fakeClock();
  const sleep = clock.sleep;
  clock.sleep = async (ms) => {
    await sleep(ms);
    if (clock.slept.length === 2) await writeFile(state, 'failed\n');
  };
  const out = await waitForHealth(conn, [health.tcp(1, { from: 'controller' })], { firstDelayMs: 100, deadlineMs: 60_000 }, { clock, stops: [stop] });
  t.match(out, { kind: 'unhealthy', attempts: 3, ended: 'stopped', reason: /^unit app failed; TCP 127\.0\.0\.1:1: .*ECONNREFUSED/ });
  t.same(clock.slept, [100, 200], 'no more waiting once it failed, far from the 60 s deadline');
  t.match(describeUnhealthy(out as HealthOutcome & { kind: 'unhealthy' }), /^not healthy after 3 attempts in 0\.3 s, and it will not come up by waiting: unit app failed; TCP/);

  const deadline = await waitForHealth(conn, [health.tcp(1, { from: 'controller' })], { firstDelayMs: 100, deadlineMs: 250 }, { clock: fakeClock() });
  t.match(deadline, { kind: 'unhealthy', ended: 'deadline' });
  t.match(describeUnhealthy(deadline as HealthOutcome & { kind: 'unhealthy' }), /^not healthy after 3 attempts in 0\.3 s: TCP/);
});

t.test('a unit stops for good only when systemd says failed', async (t) => {
  const stop = unitStop('app.service');
  t.equal(stop.command.toString(), 'systemctl is-active -- app.service');
  t.equal(stop.parse({ stdout: 'failed\n', stderr: '', exitCode: 3 }), 'unit app.service failed');
  for (const state of ['activating', 'active', 'inactive', 'deactivating']) t.equal(stop.parse({ stdout: `${state}\n`, stderr: '', exitCode: 3 }), undefined, `${state}: it may still come up`);
  t.equal(stop.parse({ stdout: '', stderr: 'System has not been booted with systemd', exitCode: 1 }), undefined, 'no systemd: the probes say what is wrong');
});

t.test('from the controller: HTTP and TCP, failures as values', async (t) => {
  const server = createServer((_req, res) => res.writeHead(200).end('x'.repeat(70_000)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const r = await fetchFromController(`http://127.0.0.1:${port}/`, { timeoutMs: 2000, insecure: false });
  t.match(r, { kind: 'response', status: 200 });
  t.equal(r.kind === 'response' ? r.body.length : 0, 64 * 1024, 'the body is cut at the limit');
  t.same(await connectFromController('127.0.0.1', port, 2000), { kind: 'open' });
  server.close();
  t.match(await fetchFromController(`http://127.0.0.1:${port}/`, { timeoutMs: 2000, insecure: false }), { kind: 'error', reason: /ECONNREFUSED/ });
  t.match(await connectFromController('127.0.0.1', port, 2000), { kind: 'closed', reason: /ECONNREFUSED/ });
});

t.test('health.check fails the step with the last reason', async (t) => {
  const check = health.check([health.tcp(1, { from: 'controller' })], { deadlineMs: 1, firstDelayMs: 1 });
  t.match(check.describe, /^wait until healthy: TCP 127\.0\.0\.1:1 open \(from here\), within 0 s$/);
  const ctx: ApplyContext = { host: 'h', connection: new LocalConnection('h'), openFresh: () => Promise.reject(new Error('no')) };
  await t.rejects(check.run(ctx), { name: 'TackleError', phase: 'operation', reason: /^not healthy after \d+ attempts? in [\d.]+ s: TCP 127\.0\.0\.1:1: .*ECONNREFUSED/ });
});
