// scripts/health.ts against two lab hosts: lab1 with a small tmpfs that gets filled past its
// threshold, lab2 serving HTTP and TLS with a certificate that runs out in 10 days.
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { labInventory } from './support/cli.ts';

const lab = await withLab(t, 2);

// lab2: an HTTP server, and a TLS server whose certificate (also checked as a file) has 10 days left.
const setup = await lab.ssh(
  'lab2',
  [
    'set -e',
    'mkdir -p /etc/tackle-test && cd /etc/tackle-test',
    'openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 10 -subj /CN=lab2 2>/dev/null',
    'systemd-run --unit=tls-test openssl s_server -quiet -accept 8443 -cert /etc/tackle-test/cert.pem -key /etc/tackle-test/key.pem -www',
    'systemd-run --unit=web-test python3 -m http.server 8080 --bind 127.0.0.1 --directory /etc/tackle-test',
    // Ready before the report runs: poll, never sleep a fixed time.
    'for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/ && curl -sk -o /dev/null https://127.0.0.1:8443/ && exit 0; sleep 0.1; done; exit 1',
  ].join('\n'),
);
if (setup.code !== 0) throw new Error(`lab2 setup failed: ${setup.stderr}`);
// lab1: a 1 MiB filesystem of its own; the fleet-wide disk thresholds are loose, this mount's are not.
const small = await lab.ssh('lab1', 'mkdir -p /mnt/small && mount -t tmpfs -o size=1m tmpfs /mnt/small');
if (small.code !== 0) throw new Error(`mounting a tmpfs on lab1 failed: ${small.stderr}`);

const inventory = await labInventory(lab, {
  lab1: { vars: { health: { disk: { warning: 95, critical: 99 }, mounts: { '/mnt/small': { warning: 80, critical: 90 } }, services: ['ssh'] } } },
  lab2: { vars: { health: { services: ['ssh'], http: [{ url: 'http://127.0.0.1:8080/', body: 'cert.pem' }], certificates: ['/etc/tackle-test/cert.pem'], tls: ['127.0.0.1:8443 lab2'] } } },
});
const healthCli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'scripts/health.ts', '--inventory', inventory, ...args], { timeoutMs: 120_000 });

// The one CLI's JSON report; each host's findings are its `data`.
interface Report {
  task: string;
  hosts: Array<{ name: string; status: string; data?: { host: string; severity: string; checks: Array<{ check: string; subject: string; value: string; severity: string }> } }>;
}
const check = (r: Report, host: string, name: string, subject = '') => r.hosts.find((h) => h.name === host)?.data?.checks.find((c) => c.check === name && c.subject === subject);
const severities = (r: Report) => r.hosts.map((h) => [h.name, h.data?.severity]);

t.test('a healthy fleet with a certificate 10 days from expiry: warning, exit 3', async (t) => {
  const r = await healthCli('--json', '-');
  t.equal(r.code, 3, 'exit code 3: a warning', { stdout: r.stdout.slice(-3000), stderr: r.stderr });
  const report = JSON.parse(r.stdout) as Report;
  t.match(report, { task: 'health', hosts: [{ name: 'lab1', status: 'ok' }, { name: 'lab2', status: 'ok' }] });
  t.same(severities(report), [['lab1', 'ok'], ['lab2', 'warning']]);
  t.match(check(report, 'lab1', 'disk', '/mnt/small'), { value: /^0 % used/, severity: 'ok' });
  t.match(check(report, 'lab1', 'disk', '/'), { severity: 'ok' });
  t.match(check(report, 'lab1', 'memory'), { value: /^[\d.]+ % used \(/ });
  t.match(check(report, 'lab1', 'load'), { value: /^[\d.]+ [\d.]+ [\d.]+ \(\d+ CPUs?\)$/ });
  t.match(check(report, 'lab1', 'failed units'), { value: 'none', severity: 'ok' });
  t.match(check(report, 'lab2', 'service', 'ssh'), { value: 'active', severity: 'ok' });
  t.match(check(report, 'lab2', 'http', 'http://127.0.0.1:8080/'), { value: '200', severity: 'ok' });
  t.match(check(report, 'lab2', 'certificate', '/etc/tackle-test/cert.pem'), { value: /^(9|10) day\(s\) left/, severity: 'warning' });
  t.match(check(report, 'lab2', 'tls', '127.0.0.1:8443 lab2'), { value: /^(9|10) day\(s\) left/, severity: 'warning' });
});

t.test('a filesystem filled past its threshold: critical, exit 2', async (t) => {
  t.equal((await lab.ssh('lab1', 'dd if=/dev/zero of=/mnt/small/fill bs=1k count=950 2>/dev/null; df -P /mnt/small | tail -1')).code, 0);
  const r = await healthCli('--json', '-');
  t.equal(r.code, 2, 'exit code 2: critical', { stdout: r.stdout.slice(-3000) });
  const report = JSON.parse(r.stdout) as Report;
  t.same(severities(report), [['lab1', 'critical'], ['lab2', 'warning']]);
  t.match(check(report, 'lab1', 'disk', '/mnt/small'), { value: /^9\d % used \(\d+ KiB free of 1\.0 MiB\)$/, severity: 'critical' });
  const table = await healthCli();
  t.equal(table.code, 2);
  t.match(table.stdout, /^HOST\s+CHECK\s+VALUE\s+STATUS\n/m, 'the table in place of the recap');
  t.match(table.stdout, /\n\s+disk \/mnt\/small\s+9\d % used \(\d+ KiB free of 1\.0 MiB\)\s+CRITICAL\n/);
  t.match(table.stdout, /2 host\(s\): 0 ok, 1 warning, 1 critical\n$/);
});

t.test('an unreachable host is critical; bad settings are a vars error (exit 1) as for any task', async (t) => {
  await lab.stop('lab2');
  const r = await healthCli('--json', '-', '--limit', 'lab2');
  t.equal(r.code, 2);
  t.match(JSON.parse(r.stdout), { hosts: [{ name: 'lab2', status: 'unreachable', error: { phase: 'connect' } }] });
  t.match(r.stderr, /\nlab2\s+reachable\s+.*(lab2|10\.200\.\d+\.12).*CRITICAL\n/, 'the table names it critical');
  const bad = await run(process.execPath, ['--import', 'tsx', 'scripts/health.ts', '--inventory', await labInventory(lab, { lab1: { vars: { health: { disk: { warning: 'high' } } } } })]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^error: .*\n {2}- host lab1: var health\.disk\.warning must be a number/m);
});
