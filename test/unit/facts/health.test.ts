import { readFileSync } from 'node:fs';
import t from 'tap';
import type { FactOutput } from '../../../lib/facts/fact.ts';
import {
  certificateEndpoint,
  certificateFile,
  diskUsage,
  failedUnits,
  httpResponse,
  loadAverage,
  memoryInfo,
  parseCertificateEnd,
  parseDf,
  parseFailedUnits,
  parseHttpResponse,
  parseLoadavg,
  parseMeminfo,
  parseTcpPort,
  parseUnitStates,
  tcpPort,
  unitStates,
} from '../../../lib/facts/health.ts';

// Real output of each fact's command on a lab host; see the fixture's _comment.
const lab = JSON.parse(readFileSync(new URL('./fixtures/health.json', import.meta.url), 'utf8')) as Record<string, FactOutput>;
const out = (name: string): FactOutput => {
  const o = lab[name];
  if (!o) throw new Error(`no fixture ${name}`);
  return o;
};

t.test('df: every mount, spaces in mount points, df\'s own percentage', async (t) => {
  const disk = parseDf(out('df'));
  if (disk.kind !== 'mounts') throw new Error('expected mounts');
  t.equal(disk.mounts.length, 10);
  t.same(disk.mounts[0], { filesystem: 'overlay', type: 'overlay', mount: '/', sizeKb: 264212084, usedKb: 24341696, availableKb: 82049216, usePercent: 23 });
  t.same(disk.mounts.find((m) => m.mount === '/mnt/small'), { filesystem: 'tmpfs', type: 'tmpfs', mount: '/mnt/small', sizeKb: 1024, usedKb: 952, availableKb: 72, usePercent: 93 });
  t.ok(disk.mounts.some((m) => m.mount === '/mnt/with space'));
  t.same(parseDf({ stdout: 'Filesystem Type 1024-blocks Used Available Capacity Mounted on\nnone proc 0 0 0 - /proc\n', stderr: '', exitCode: 0 }), {
    kind: 'mounts',
    mounts: [{ filesystem: 'none', type: 'proc', mount: '/proc', sizeKb: 0, usedKb: 0, availableKb: 0, usePercent: 0 }],
  });
  t.match(parseDf({ stdout: '', stderr: 'sh: 1: df: not found\n', exitCode: 127 }), { kind: 'unavailable', reason: /df: not found/ });
  t.throws(() => parseDf({ stdout: 'Filesystem Type\ngarbage\n', stderr: '', exitCode: 0 }), /unexpected df line/);
  t.match(diskUsage().command.toString(), /df -P -T -k/);
});

t.test('meminfo and loadavg', async (t) => {
  t.same(parseMeminfo(out('mem')), { kind: 'memory', totalKb: 24683656, availableKb: 23828136, swapTotalKb: 0, swapFreeKb: 0 });
  t.same(parseMeminfo({ stdout: 'MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n', stderr: '', exitCode: 0 }), { kind: 'memory', totalKb: 1000, availableKb: 250, swapTotalKb: 0, swapFreeKb: 0 }, 'old kernels: free + buffers + cached');
  t.match(parseMeminfo({ stdout: '', stderr: 'cat: /proc/meminfo: No such file or directory', exitCode: 1 }), { kind: 'unavailable' });
  t.same(parseLoadavg(out('load')), { kind: 'load', one: 1.25, five: 1.48, fifteen: 1.4, cpus: 2 });
  t.match(parseLoadavg({ stdout: 'x', stderr: '', exitCode: 0 }), { kind: 'unavailable' });
  t.equal(memoryInfo().key, 'health.memory');
  t.equal(loadAverage().key, 'health.load');
});

t.test('systemd: failed units and unit states', async (t) => {
  t.same(parseFailedUnits(out('failed')), { kind: 'units', failed: [{ unit: 'broken.service', load: 'loaded', active: 'failed', sub: 'failed', description: 'broken.service' }] });
  t.same(parseFailedUnits({ stdout: '', stderr: '', exitCode: 0 }), { kind: 'units', failed: [] });
  t.match(parseFailedUnits({ stdout: '', stderr: 'System has not been booted with systemd as init system (PID 1). Can\'t operate.\n', exitCode: 1 }), { kind: 'unavailable', reason: /not been booted with systemd/ });
  t.same(parseUnitStates(['ssh', 'nosuch', 'broken'], out('states')), { kind: 'states', states: { ssh: 'active', nosuch: 'inactive', broken: 'failed' } });
  t.match(parseUnitStates(['a', 'b'], { stdout: '', stderr: 'Failed to connect to bus', exitCode: 1 }), { kind: 'unavailable', reason: 'Failed to connect to bus' });
  t.match(failedUnits().command.toString(), /systemctl --failed/);
  t.equal(unitStates(['ssh', 'nginx.service']).command.toString(), 'systemctl is-active -- ssh nginx.service');
  t.throws(() => unitStates([]), TypeError);
  t.throws(() => unitStates(['-x']), TypeError);
});

t.test('HTTP from the host: status and body, or why not', async (t) => {
  t.match(parseHttpResponse(out('http404')), { kind: 'response', status: 404, body: /Error code: 404/ });
  t.match(parseHttpResponse(out('http200')), { kind: 'response', status: 200, body: /^-----BEGIN CERTIFICATE-----/ });
  t.same(parseHttpResponse(out('refused')), { kind: 'error', reason: "(7) Failed to connect to 127.0.0.1 port 8124 after 0 ms: Couldn't connect to server" });
  t.same(parseHttpResponse({ stdout: '127 \n', stderr: 'sh: 2: curl: not found\n', exitCode: 0 }), { kind: 'error', reason: 'curl is not installed on the host' });
  t.same(parseHttpResponse({ stdout: '', stderr: 'mktemp: failed', exitCode: 1 }), { kind: 'error', reason: 'mktemp: failed' });
  const cmd = httpResponse('https://example.test/health?a=1&b=2', { insecure: true, timeoutMs: 2500 }).command.toString();
  t.match(cmd, /curl -sS -k --max-time 2\.5 -o "\$f" -w '%\{http_code\}' -- 'https:\/\/example\.test\/health\?a=1&b=2'/, 'the URL is one quoted word');
  t.throws(() => httpResponse('ftp://x'), TypeError);
  t.throws(() => httpResponse('http://a b'), TypeError);
});

t.test('TCP from the host', async (t) => {
  t.same(parseTcpPort(out('tcpOpen')), { kind: 'open' });
  t.same(parseTcpPort(out('tcpClosed')), { kind: 'closed', reason: 'Connection refused' });
  t.same(parseTcpPort(out('tcpTimeout')), { kind: 'closed', reason: 'no answer before the timeout' });
  t.equal(tcpPort('127.0.0.1', 5432).command.toString(), `timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' tcp 127.0.0.1 5432`);
  t.throws(() => tcpPort('127.0.0.1', 0), TypeError);
  t.throws(() => tcpPort('a;b', 1), TypeError);
});

t.test('certificates: file and endpoint expiry', async (t) => {
  t.same(parseCertificateEnd(out('cert')), { kind: 'certificate', notAfter: '2026-12-02T02:45:29.000Z' });
  t.same(parseCertificateEnd(out('certMissing')), { kind: 'missing' });
  t.same(parseCertificateEnd(out('certBad')), { kind: 'error', reason: 'Could not read certificate from /etc/hostname; Unable to load certificate' });
  t.same(parseCertificateEnd(out('endpointNoTls')), { kind: 'error', reason: 'no certificate was presented (no TLS server answered there)' });
  t.same(parseCertificateEnd({ stdout: 'notAfter=Jan 31 23:59:59 2030 GMT\n', stderr: '', exitCode: 0 }), { kind: 'certificate', notAfter: '2030-01-31T23:59:59.000Z' });
  t.same(parseCertificateEnd({ stdout: '', stderr: 'sh: openssl: not found', exitCode: 127 }), { kind: 'error', reason: 'openssl is not installed on the host' });
  t.match(certificateFile('/etc/ssl/x.pem').command.toString(), /openssl x509 -enddate -noout -in \/etc\/ssl\/x\.pem/);
  t.match(certificateEndpoint('127.0.0.1', 443, 'app.test').command.toString(), /s_client -connect 127\.0\.0\.1:443 -servername app\.test/);
  t.throws(() => certificateEndpoint('x', 70000), TypeError);
});
