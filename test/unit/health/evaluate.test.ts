import { readFileSync } from 'node:fs';
import t from 'tap';
import type { FactOutput } from '../../../lib/facts/fact.ts';
import { parseDockerPorts } from '../../../lib/facts/docker.ts';
import { parseDf, parseFailedUnits, parseLoadavg, parseMeminfo } from '../../../lib/facts/health.ts';
import { dockerPortChecks, evaluateHealth, severityRank, healthFacts, healthSettings, healthTable, healthVar, unreachableHealth, worst, type HealthFacts } from '../../../lib/health/evaluate.ts';
import { checkShape } from '../../../lib/inventory/vars.ts';

// The facts of a real lab host (test/unit/facts/fixtures/health.json): a 1 MiB tmpfs at /mnt/small
// filled to 93 %, memory 3.5 % used, load 1.48 over 2 CPUs, broken.service failed.
const lab = JSON.parse(readFileSync(new URL('../facts/fixtures/health.json', import.meta.url), 'utf8')) as Record<string, FactOutput>;
const real = (): HealthFacts => ({
  disk: parseDf(lab.df as FactOutput),
  memory: parseMeminfo(lab.mem as FactOutput),
  load: parseLoadavg(lab.load as FactOutput),
  failed: parseFailedUnits(lab.failed as FactOutput),
  services: undefined,
  http: [],
  certificates: [],
  tls: [],
});
const settings = (health: unknown) => healthSettings(checkShape({ health: healthVar }, { health }).health);
const NOW = new Date('2026-11-22T00:00:00Z');

t.test('defaults: disk 80/90, memory 75/90, certificates 14/7 days', async (t) => {
  const s = healthSettings(undefined);
  t.same([s.disk, s.memory, s.certificateDays, s.load, s.failedUnits], [{ warning: 80, critical: 90 }, { warning: 75, critical: 90 }, { warning: 14, critical: 7 }, undefined, 'warning']);
});

t.test('a real host: the full tmpfs is critical, everything else judged', async (t) => {
  const r = evaluateHealth('lab1', healthSettings(undefined), real(), NOW);
  t.equal(r.severity, 'critical');
  const find = (check: string, subject = '') => r.checks.find((c) => c.check === check && c.subject === subject);
  t.same(find('disk', '/mnt/small'), { check: 'disk', subject: '/mnt/small', value: '93 % used (72 KiB free of 1.0 MiB)', severity: 'critical', figure: 93 });
  t.same(find('disk', '/'), { check: 'disk', subject: '/', value: '23 % used (78.2 GiB free of 252.0 GiB)', severity: 'ok', figure: 23 });
  t.equal(find('disk', '/mnt/with space')?.severity, 'ok');
  t.same(find('memory'), { check: 'memory', subject: '', value: '3.5 % used (22.7 GiB available of 23.5 GiB)', severity: 'ok', figure: 3.5 });
  t.same(find('load'), { check: 'load', subject: '', value: '1.25 1.48 1.4 (2 CPUs)', severity: 'ok', figure: 0.74 });
  t.same(find('failed units'), { check: 'failed units', subject: '', value: 'broken.service', severity: 'warning', figure: 1 });
  t.equal(severityRank(r.severity), 2);
});

t.test('thresholds from the inventory: per mount, ignored mounts, load, failed units', async (t) => {
  const s = settings({ mounts: { '/mnt/small': { warning: 95, critical: 99 } }, load: { warning: 0.5 }, failedUnits: 'ok', ignoreMounts: ['/run/**'] });
  const r = evaluateHealth('lab1', s, real(), NOW);
  t.equal(r.checks.find((c) => c.subject === '/mnt/small')?.severity, 'ok', 'its own thresholds');
  t.notOk(r.checks.some((c) => c.subject.startsWith('/run')), 'ignored mounts are not listed');
  t.equal(r.checks.find((c) => c.check === 'load')?.severity, 'warning', '1.48 / 2 CPUs = 0.74 per CPU ≥ 0.5');
  t.equal(r.checks.find((c) => c.check === 'failed units')?.severity, 'ok');
  t.equal(r.severity, 'warning');
  t.same(settings({ disk: { critical: 70 } }).disk, { warning: 70, critical: 70 }, 'the default warning follows a lower critical');
  t.same(settings({ certificateDays: { warning: 3 } }).certificateDays, { warning: 3, critical: 3 });
  t.throws(() => settings({ disk: { warning: 95, critical: 90 } }), { name: 'VarError', message: /health\.disk must be a warning at or below the critical threshold/ });
  t.throws(() => settings({ http: ['localhost'] }), { name: 'VarError', message: /health\.http\[0\]\.url must be an http\(s\) URL/ });
  t.throws(() => settings({ tls: ['example.com'] }), { name: 'VarError', message: /health\.tls\[0\] must be "address:port"/ });
  t.throws(() => settings({ mounts: { '/x': { warning: 'high' } } }), { name: 'VarError', message: /health\.mounts\./ });
});

t.test('services, HTTP endpoints, certificates', async (t) => {
  const s = settings({ services: ['ssh', 'nginx'], http: ['http://127.0.0.1/', { url: 'http://127.0.0.1/health', body: 'ok' }], certificates: ['/etc/a.pem', '/etc/b.pem', '/etc/c.pem'], tls: ['127.0.0.1:443 app.test'] });
  const { facts, assemble } = healthFacts(s);
  t.same(facts.map((f) => f.key), [
    'health.disk',
    'health.memory',
    'health.load',
    'health.failedUnits',
    'health.unitStates ssh nginx',
    'health.http http://127.0.0.1/ 5',
    'health.http http://127.0.0.1/health 5',
    'health.certFile /etc/a.pem',
    'health.certFile /etc/b.pem',
    'health.certFile /etc/c.pem',
    'health.certEndpoint 127.0.0.1:443 app.test',
    'docker.ports',
  ]);
  const base = real();
  const values = assemble([
    base.disk,
    base.memory,
    base.load,
    { kind: 'units', failed: [] },
    { kind: 'states', states: { ssh: 'active', nginx: 'failed' } },
    { kind: 'response', status: 200, body: 'hi' },
    { kind: 'response', status: 200, body: 'starting' },
    { kind: 'certificate', notAfter: '2026-12-30T00:00:00.000Z' },
    { kind: 'certificate', notAfter: '2026-12-01T12:00:00.000Z' },
    { kind: 'missing' },
    { kind: 'certificate', notAfter: '2026-11-20T00:00:00.000Z' },
  ]);
  const r = evaluateHealth('web1', s, values, NOW);
  const rows = r.checks.filter((c) => c.check !== 'disk').map((c) => [c.check, c.subject, c.value, c.severity]);
  t.same(rows, [
    ['memory', '', '3.5 % used (22.7 GiB available of 23.5 GiB)', 'ok'],
    ['load', '', '1.25 1.48 1.4 (2 CPUs)', 'ok'],
    ['failed units', '', 'none', 'ok'],
    ['service', 'ssh', 'active', 'ok'],
    ['service', 'nginx', 'failed', 'critical'],
    ['http', 'http://127.0.0.1/', '200', 'ok'],
    ['http', 'http://127.0.0.1/health', '200, body without "ok"', 'critical'],
    ['certificate', '/etc/a.pem', '38 day(s) left (2026-12-30)', 'ok'],
    ['certificate', '/etc/b.pem', '9 day(s) left (2026-12-01)', 'warning'],
    ['certificate', '/etc/c.pem', 'missing', 'critical'],
    ['tls', '127.0.0.1:443 app.test', 'expired 2 day(s) ago (2026-11-20)', 'critical'],
  ]);
});

t.test('facts that cannot be read, unreachable hosts, the table', async (t) => {
  const r = evaluateHealth('ct1', healthSettings(undefined), { ...real(), disk: { kind: 'unavailable', reason: 'df: not found' }, failed: { kind: 'unavailable', reason: 'System has not been booted with systemd' } }, NOW);
  t.same(r.checks[0], { check: 'disk', subject: '', value: 'cannot tell: df: not found', severity: 'warning' });
  t.match(r.checks.find((c) => c.check === 'failed units'), { value: 'n/a: System has not been booted with systemd', severity: 'ok' }, 'no systemd (a container) is not a problem by itself');
  const down = unreachableHealth('web9', 'no SSH answer from 10.0.0.9:22 within 10 s');
  t.equal(down.severity, 'critical');
  t.equal(worst(['ok', 'warning', 'ok']), 'warning');
  t.equal(worst([]), 'ok');
  const { header, rows } = healthTable([down, r]);
  t.same(header, ['HOST', 'CHECK', 'VALUE', 'STATUS']);
  t.same(rows[0], { cells: ['web9', 'reachable', 'no SSH answer from 10.0.0.9:22 within 10 s', 'CRITICAL'], severity: 'critical' });
  t.same(rows[1]?.cells.slice(0, 2), ['ct1', 'disk'], 'the host is named on its first row');
  t.equal(rows[2]?.cells[0], '', 'and only there');
});

t.test('docker ports: critical only when published on a public address that ufw does not allow and no guard filters', async (t) => {
  const facts = (ps: string[], guard: number, ufw: string[]) =>
    parseDockerPorts({ stdout: ['docker', ...ps, '--- guard', String(guard), '--- ufw', ...ufw, ''].join('\n'), stderr: '', exitCode: 0 });
  const ufwOn = (...tuples: string[]) => ['ufw', 'status Status: active', 'IPV6=yes', ...tuples];
  const PS = ['pg\t0.0.0.0:5432->5432/tcp, :::5432->5432/tcp', 'local\t127.0.0.1:6379->6379/tcp', 'web\t0.0.0.0:8080-8081->80-81/tcp'];
  const rows = (d: ReturnType<typeof facts>) => dockerPortChecks(d).map((c) => `${c.subject}: ${c.severity}: ${c.value}`);
  t.same(rows(facts(PS, 0, ufwOn('v4 allow tcp 8080:8081 0.0.0.0/0 any 0.0.0.0/0 in', 'v4 allow tcp 5432 0.0.0.0/0 any 10.0.0.0/8 in'))), [
    '0.0.0.0:5432/tcp (pg): critical: reachable from anywhere: Docker publishes it past ufw, which does not allow 5432/tcp',
    '127.0.0.1:6379/tcp (local): ok: loopback only',
    '0.0.0.0:8080-8081/tcp (web): ok: published, and ufw allows it',
  ], 'a rule for some sources only is bypassed too; the IPv6 binding is not judged');
  t.same(rows(facts(PS.slice(2), 0, ufwOn('v4 allow tcp 8080 0.0.0.0/0 any 0.0.0.0/0 in'))), ['0.0.0.0:8080-8081/tcp (web): critical: reachable from anywhere: Docker publishes it past ufw, which does not allow 8080-8081/tcp'], 'half a range allowed is not allowed');
  t.same(rows(facts(PS.slice(0, 1), 2, ufwOn())), ['0.0.0.0:5432/tcp (pg): ok: published, filtered by the ufw policy in DOCKER-USER']);
  t.same(rows(facts(PS.slice(0, 1), 0, ['ufw', 'status Status: inactive'])), ['0.0.0.0:5432/tcp (pg): ok: published, no active ufw to bypass']);
  t.same(rows(facts(PS.slice(0, 1), 0, ['missing'])), ['0.0.0.0:5432/tcp (pg): ok: published, no active ufw to bypass']);
  t.same(dockerPortChecks({ kind: 'missing' }), []);
  t.same(dockerPortChecks({ kind: 'unavailable', reason: 'Cannot connect to the Docker daemon' }), [{ check: 'docker', subject: '', value: 'cannot tell: Cannot connect to the Docker daemon', severity: 'warning' }]);
  const r = evaluateHealth('db1', healthSettings(undefined), { ...real(), disk: { kind: 'mounts', mounts: [] }, failed: { kind: 'units', failed: [] }, docker: facts(PS.slice(0, 1), 0, ufwOn()) }, NOW);
  t.equal(r.severity, 'critical', 'the host is critical');
});
