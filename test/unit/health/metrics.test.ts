import t from 'tap';
import { unreachableHealth, type HostHealth } from '../../../lib/health/evaluate.ts';
import { healthMetrics } from '../../../lib/health/metrics.ts';
import { renderTextfile } from '../../../lib/metrics/textfile.ts';
import { parseExposition, sampleValue } from '../../support/exposition.ts';

const web1: HostHealth = {
  host: 'web1',
  severity: 'warning',
  checks: [
    { check: 'disk', subject: '/', value: '23 % used (…)', severity: 'ok', figure: 23 },
    { check: 'disk', subject: '/mnt/with "quotes"', value: '93 % used (…)', severity: 'critical', figure: 93 },
    { check: 'memory', subject: '', value: '3.5 % used (…)', severity: 'ok', figure: 3.5 },
    { check: 'load', subject: '', value: '1.25 1.48 1.4 (2 CPUs)', severity: 'ok', figure: 0.74 },
    { check: 'failed units', subject: '', value: 'broken.service', severity: 'warning', figure: 1 },
    { check: 'service', subject: 'nginx', value: 'active', severity: 'ok' },
    { check: 'http', subject: 'http://127.0.0.1/health', value: '200', severity: 'ok', figure: 200 },
    { check: 'certificate', subject: '/etc/ssl/a.pem', value: '10 day(s) left', severity: 'warning', figure: 1796860800 },
    { check: 'tls', subject: '127.0.0.1:443 a.test', value: '10 day(s) left', severity: 'warning', figure: 1796860800 },
  ],
};

t.test('every check has a severity, every figure a metric in base units, an unreachable host is down', async (t) => {
  const text = renderTextfile(healthMetrics([web1, unreachableHealth('db1', 'connection refused')], new Date('2026-11-30T12:00:00Z')));
  const f = parseExposition(text);
  t.equal(sampleValue(f, 'tackle_health_last_run_timestamp_seconds'), 1796040000);
  t.equal(sampleValue(f, 'tackle_health_up', { host: 'web1' }), 1);
  t.equal(sampleValue(f, 'tackle_health_up', { host: 'db1' }), 0);
  t.equal(sampleValue(f, 'tackle_health_severity', { host: 'web1' }), 1);
  t.equal(sampleValue(f, 'tackle_health_severity', { host: 'db1' }), 2);
  t.equal(sampleValue(f, 'tackle_health_check_severity', { host: 'web1', check: 'disk', subject: '/mnt/with "quotes"' }), 2);
  t.equal(sampleValue(f, 'tackle_health_check_severity', { host: 'web1', check: 'service', subject: 'nginx' }), 0);
  t.equal(sampleValue(f, 'tackle_health_check_severity', { host: 'db1', check: 'reachable' }), 2);
  t.equal(f.get('tackle_health_check_severity')?.samples.length, web1.checks.length + 1);
  t.equal(sampleValue(f, 'tackle_health_disk_used_ratio', { host: 'web1', mount: '/' }), 0.23);
  t.equal(sampleValue(f, 'tackle_health_memory_used_ratio', { host: 'web1' }), 0.035);
  t.equal(sampleValue(f, 'tackle_health_load5_per_cpu', { host: 'web1' }), 0.74);
  t.equal(sampleValue(f, 'tackle_health_failed_units', { host: 'web1' }), 1);
  t.equal(sampleValue(f, 'tackle_health_http_status_code', { host: 'web1', url: 'http://127.0.0.1/health' }), 200);
  t.equal(sampleValue(f, 'tackle_health_certificate_expiry_timestamp_seconds', { host: 'web1', check: 'tls' }), 1796860800);
  t.equal(f.get('tackle_health_certificate_expiry_timestamp_seconds')?.samples.length, 2, 'files and TLS endpoints in one metric');
  for (const [name, fam] of f) t.ok(fam.help && fam.type === 'gauge', `${name}: HELP and TYPE`);
});
