// The health report's figures and severities as Prometheus metrics (scripts/health.ts
// --prometheus FILE): every check's severity, and the measured number behind the checks that
// have one, in base units (ratios, not percent; expiry as a Unix time).
import type { Metric, Sample } from '../metrics/textfile.ts';
import { severityRank, type HealthCheck, type HostHealth } from './evaluate.ts';

/** A metric for the checks that have a figure: its name, HELP, labels beside `host`, and the figure in base units. */
interface Figure {
  name: string;
  help: string;
  labels(c: HealthCheck): Record<string, string>;
  scale(figure: number): number;
}

const none = () => ({});
const same = (n: number) => n;
const certificate: Figure = { name: 'tackle_health_certificate_expiry_timestamp_seconds', help: 'Unix time at which the certificate (a file, or served over TLS) expires.', labels: (c) => ({ check: c.check, subject: c.subject }), scale: same };
const FIGURES: Readonly<Record<string, Figure>> = {
  disk: { name: 'tackle_health_disk_used_ratio', help: 'Used fraction of the filesystem mounted here (0 to 1).', labels: (c) => ({ mount: c.subject }), scale: (p) => p / 100 },
  memory: { name: 'tackle_health_memory_used_ratio', help: 'Used fraction of memory (total less available; 0 to 1).', labels: none, scale: (p) => p / 100 },
  load: { name: 'tackle_health_load5_per_cpu', help: 'Five-minute load average divided by the number of CPUs.', labels: none, scale: same },
  'failed units': { name: 'tackle_health_failed_units', help: 'Number of failed systemd units.', labels: none, scale: same },
  http: { name: 'tackle_health_http_status_code', help: 'HTTP status the endpoint answered the host with.', labels: (c) => ({ url: c.subject }), scale: same },
  certificate,
  tls: certificate,
};

/**
 * The report of every host as metrics: whether it was read (`tackle_health_up`), its worst
 * severity and each check's (0 ok, 1 warning, 2 critical), the checks' figures, and when the
 * report ran. Pure.
 *
 * @example renderTextfile(healthMetrics(reports, new Date()))
 */
export function healthMetrics(hosts: readonly HostHealth[], at: Date): Metric[] {
  const figures = new Map<string, Sample[]>();
  for (const h of hosts) {
    for (const c of h.checks) {
      const f = FIGURES[c.check];
      if (!f || c.figure === undefined) continue;
      const labels = { host: h.host, ...f.labels(c) };
      figures.set(f.name, [...(figures.get(f.name) ?? []), { labels, value: f.scale(c.figure) }]);
    }
  }
  const checkLabels = (host: string, c: HealthCheck) => ({ host, check: c.check, subject: c.subject });
  return [
    { name: 'tackle_health_last_run_timestamp_seconds', help: 'Unix time at which the health report read the hosts.', type: 'gauge', samples: [{ labels: {}, value: at.getTime() / 1000 }] },
    { name: 'tackle_health_up', help: '1 if the host could be read, 0 if not.', type: 'gauge', samples: hosts.map((h) => ({ labels: { host: h.host }, value: h.error === undefined ? 1 : 0 })) },
    { name: 'tackle_health_severity', help: 'Worst severity of the host: 0 ok, 1 warning, 2 critical.', type: 'gauge', samples: hosts.map((h) => ({ labels: { host: h.host }, value: severityRank(h.severity) })) },
    { name: 'tackle_health_check_severity', help: 'Severity of one check: 0 ok, 1 warning, 2 critical.', type: 'gauge', samples: hosts.flatMap((h) => h.checks.map((c) => ({ labels: checkLabels(h.host, c), value: severityRank(c.severity) }))) },
    ...[...new Set(Object.values(FIGURES))].map((f): Metric => ({ name: f.name, help: f.help, type: 'gauge', samples: figures.get(f.name) ?? [] })),
  ];
}
