// Fleet health report: per host disk use per mount, memory, load, failed systemd units, the
// services and HTTP endpoints it should serve, and TLS certificate days left. Each host is read
// in one round trip; nothing is changed. Exit code: 0 all ok, 1 a warning, 2 something critical
// (or a host unreachable), 3 a usage or inventory error.
//
//   npx tsx scripts/health.ts
//   npx tsx scripts/health.ts --limit web --json
//   npx tsx scripts/health.ts --prometheus /var/lib/prometheus/node-exporter/tackle_health.prom
//
// Thresholds and what to check come from the inventory var `health` (defaults: disk 80/90 %,
// memory 75/90 %, certificates 14/7 days left):
//   vars: { health: { disk: { warning: 85, critical: 95 }, mounts: { '/var/lib/postgresql': { critical: 80 } },
//                     services: ['nginx', 'postgresql'], http: ['http://127.0.0.1/health'],
//                     certificates: ['/etc/letsencrypt/live/example.com/cert.pem'], tls: ['127.0.0.1:443 example.com'] } }
import { resolve } from 'node:path';
import { checkShape, isMain, openConnection, selectHosts, VarError } from '../lib/index.ts';
import { evaluateHealth, exitCodeForSeverity, healthFacts, healthSettings, healthTable, healthVar, unreachableHealth, worst, type HealthSettings, type HostHealth, type Severity } from '../lib/health/evaluate.ts';
import { connectContext } from '../lib/connection/open.ts';
import { loadInventoryFile } from '../lib/inventory/load.ts';
import { strayVars } from '../lib/inventory/vars.ts';
import { renderTable } from '../lib/cli/table.ts';
import { collectFacts, reportArgs, type ReportIo, REPORT_USAGE } from '../lib/health/report.ts';
import { healthMetrics } from '../lib/health/metrics.ts';
import { renderTextfile, writeTextfile } from '../lib/metrics/textfile.ts';

const USAGE = `Usage: npx tsx scripts/health.ts [options]\n\n${REPORT_USAGE}  --prometheus FILE        also write the figures and severities to FILE in Prometheus' textfile format\n\nExit code: 0 ok, 1 warning, 2 critical, 3 usage or inventory error.\n`;


const COLOR: Record<Severity, number> = { ok: 32, warning: 33, critical: 31 };

/** Runs the report; resolves with the exit code. */
export async function main(io: ReportIo): Promise<number> {
  const args = reportArgs(io, USAGE, ['prometheus'], 3);
  if (typeof args === 'number') return args;
  const settings = new Map<string, HealthSettings>();
  let inventory;
  let hosts;
  try {
    inventory = await loadInventoryFile(resolve(io.cwd, args.inventory));
    hosts = selectHosts(inventory, args.limit);
    const problems: string[] = [];
    for (const h of hosts) {
      // A misspelt threshold (`health.dsik`) would leave the default in force without a word.
      for (const stray of strayVars({ health: healthVar }, h.vars)) io.stderr.write(`warning: host ${h.name}: var ${stray.path} is not a health setting${stray.suggestion ? `; did you mean ${stray.suggestion}?` : ''}\n`);
      try {
        settings.set(h.name, healthSettings(checkShape({ health: healthVar }, h.vars).health));
      } catch (err) {
        if (!(err instanceof VarError)) throw err;
        problems.push(...err.problems.map((p) => `host ${h.name}: var ${p.message}`));
      }
    }
    if (problems.length) throw new Error(`health settings:\n  - ${problems.join('\n  - ')}`);
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 3;
  }

  const ctx = connectContext(io.env, { acceptNewHostKeys: args.acceptNewHostKeys });
  const inv = inventory;
  const now = new Date();
  const plans = new Map([...settings].map(([name, s]) => [name, healthFacts(s)]));
  const results = await collectFacts(
    hosts,
    (h) => openConnection(h, inv, ctx),
    (h) => plans.get(h.name)?.facts ?? [],
    (values, h) => evaluateHealth(h.name, settings.get(h.name) as HealthSettings, (plans.get(h.name) as ReturnType<typeof healthFacts>).assemble(values), now),
    args.concurrency,
  );
  const reports: HostHealth[] = results.map((r) => (r.kind === 'ok' ? r.value : unreachableHealth(r.host.name, r.error.reason)));
  const severity = worst(reports.map((r) => r.severity));

  if (args.json) {
    io.stdout.write(`${JSON.stringify({ generatedAt: now.toISOString(), severity, hosts: reports }, null, 2)}\n`);
  } else {
    const color = io.stdout.isTTY === true && io.env.NO_COLOR === undefined;
    const { header, rows } = healthTable(reports);
    io.stdout.write(renderTable(header, rows, (line, row) => (color && row.severity !== 'ok' ? `\u001b[${COLOR[row.severity]}m${line}\u001b[0m` : line)));
    const count = (s: Severity) => reports.filter((r) => r.severity === s).length;
    io.stdout.write(`\n${reports.length} host(s): ${count('ok')} ok, ${count('warning')} warning, ${count('critical')} critical\n`);
  }
  const metricsFile = args.own.prometheus;
  if (metricsFile !== undefined) {
    try {
      await writeTextfile(resolve(io.cwd, metricsFile), renderTextfile(healthMetrics(reports, now)));
    } catch (err) {
      // Monitoring would go on reading the old figures: as bad as a critical finding.
      io.stderr.write(`error: cannot write the metrics file ${metricsFile}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  return exitCodeForSeverity(severity);
}

if (isMain(import.meta.url, process.argv)) {
  process.exitCode = await main({ argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
}
