// Fleet health report: per host disk use per mount, memory, load, failed systemd units, the
// services and HTTP endpoints it should serve, and TLS certificate days left. A read-only task on
// the one CLI: each host is read in one round trip, nothing is changed, no host lock is taken.
// Exit code (the CLI's table): 0 all ok, 3 a warning, 2 something critical or a host unreachable,
// 1 a usage, inventory or vars error.
//
//   npx tsx scripts/health.ts
//   npx tsx scripts/health.ts --limit web --json -          # the JSON report on stdout
//   npx tsx scripts/health.ts --prometheus /var/lib/prometheus/node-exporter/tackle_health.prom
//
// Thresholds and what to check come from the inventory var `health` (defaults: disk 80/90 %,
// memory 75/90 %, certificates 14/7 days left):
//   vars: { health: { disk: { warning: 85, critical: 95 }, mounts: { '/var/lib/postgresql': { critical: 80 } },
//                     services: ['nginx', 'postgresql'], http: ['http://127.0.0.1/health'],
//                     certificates: ['/etc/letsencrypt/live/example.com/cert.pem'], tls: ['127.0.0.1:443 example.com'] } }
import { resolve } from 'node:path';
import { type CliOutput, EXIT, healthExitCode, healthMetrics, healthOf, healthTable, healthTask, renderTable, renderTextfile, runIfMain, type Severity, writeTextfile } from '../lib/index.ts';

const COLOR: Record<Severity, number> = { ok: 32, warning: 33, critical: 31 };

/** The table people read, the metrics file, and the exit code by the worst finding. */
export const healthOutput: CliOutput = {
  flags: { prometheus: { type: 'string', description: "also write the figures and severities to FILE in Prometheus' textfile format" } },
  render(report, paint) {
    const hosts = healthOf(report);
    const { header, rows } = healthTable(hosts);
    const count = (s: Severity) => hosts.filter((r) => r.severity === s).length;
    const table = renderTable(header, rows, (line, row) => (row.severity === 'ok' ? line : paint(COLOR[row.severity], line)));
    return `${table}\n${hosts.length} host(s): ${count('ok')} ok, ${count('warning')} warning, ${count('critical')} critical${report.interrupted ? ' (interrupted)' : ''}\n`;
  },
  async finish(report, end) {
    const hosts = healthOf(report);
    const file = end.flags.prometheus;
    if (typeof file === 'string') {
      try {
        await writeTextfile(resolve(end.cwd, file), renderTextfile(healthMetrics(hosts, new Date(report.startedAt))));
      } catch (err) {
        // Monitoring would go on reading the old figures: as bad as a critical finding.
        end.stderr.write(`error: cannot write the metrics file ${file}: ${(err as Error).message}\n`);
        return end.code === EXIT.ok ? EXIT.failed : end.code;
      }
    }
    return healthExitCode(end.code, hosts);
  },
};

await runIfMain(import.meta, healthTask, healthOutput);
