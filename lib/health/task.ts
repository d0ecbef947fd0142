// The fleet health report as a read-only task on the one runner: each host's facts read in one
// round trip and judged against its `health` var. The runner checks the vars, connects, takes no
// lock and puts each host's findings in the report (`hosts[].data`); scripts/health.ts shows them.
import { EXIT, type HostReport, type JsonReport } from '../engine/report.ts';
import { defineTask } from '../engine/task.ts';
import { evaluateHealth, healthFacts, healthSettings, healthVar, unreachableHealth, worst, type HostHealth } from './evaluate.ts';

/**
 * Reads disk, memory, load, failed units, services, HTTP endpoints and certificates of each host
 * and resolves with its {@link HostHealth}. Changes nothing.
 *
 * @example await runCli(healthTask, io) // then healthOf(report) for the findings
 */
export const healthTask = defineTask({
  name: 'health',
  readOnly: true,
  vars: { health: healthVar },
  async run(host): Promise<HostHealth> {
    const settings = healthSettings(host.vars.health);
    const { facts, assemble } = healthFacts(settings);
    return evaluateHealth(host.name, settings, assemble(await host.facts(facts)), new Date());
  },
});

/** The findings healthTask left on a host of the report; undefined when it left none (the host was not read). */
function findings(h: HostReport): HostHealth | undefined {
  const d = h.data as Partial<HostHealth> | undefined;
  return d?.host === h.name && Array.isArray(d.checks) ? (d as HostHealth) : undefined;
}

/**
 * Each host's health in a report of {@link healthTask}: its findings, or a critical `reachable`
 * check with the reason it could not be read.
 *
 * @example healthOf(report).map((h) => h.severity) // ['ok', 'critical']
 */
export function healthOf(report: JsonReport): HostHealth[] {
  return report.hosts.map((h) => findings(h) ?? unreachableHealth(h.name, h.error?.reason ?? `not read (${h.status})`));
}

/**
 * The exit code of a health run: the run's own when it is not 0 (usage error, a host failed or
 * unreachable, interrupted), else by the worst finding: 0 ok, 3 warning, 2 critical (see EXIT).
 *
 * @example healthExitCode(EXIT.ok, hosts) // 3 when a certificate runs out within 14 days
 */
export function healthExitCode(code: number, hosts: readonly HostHealth[]): number {
  if (code !== EXIT.ok) return code;
  const severity = worst(hosts.map((h) => h.severity));
  return severity === 'critical' ? EXIT.failed : severity === 'warning' ? EXIT.warning : EXIT.ok;
}
