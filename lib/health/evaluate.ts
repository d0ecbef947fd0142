// The fleet health report's logic, all pure: settings from inventory vars, the facts to read in
// one round trip, their evaluation against thresholds into severities, and the table's cells.
import picomatch from 'picomatch';
import {
  certificateEndpoint,
  certificateFile,
  diskUsage,
  failedUnits,
  httpResponse,
  loadAverage,
  memoryInfo,
  unitStates,
  type Certificate,
  type DiskUsage,
  type FailedUnits,
  type HttpResponse,
  type LoadAverage,
  type MemoryInfo,
  type UnitStates,
} from '../facts/health.ts';
import { dockerPorts, type DockerPorts, type PublishedPort } from '../facts/docker.ts';
import type { Fact } from '../facts/fact.ts';
import type { UfwRule } from '../facts/ufw.ts';
import { VarError, VarType, v } from '../inventory/vars.ts';

export type Severity = 'ok' | 'warning' | 'critical';

/** Percentages (disk, memory), load per CPU, or days left (certificates: lower is worse). */
export interface Thresholds {
  warning: number;
  critical: number;
}

export interface HttpEndpoint {
  url: string;
  status: number;
  body?: string;
}

/** A TLS server to read the certificate of, from the host: `address:port`, SNI name. */
export interface TlsEndpoint {
  address: string;
  port: number;
  serverName: string;
}

/** Everything the report looks at on one host, with defaults filled in. */
export interface HealthSettings {
  disk: Thresholds;
  /** Per mount point, overriding `disk`. */
  mounts: Readonly<Record<string, Thresholds>>;
  /** Mount points (globs) left out: read-only images and container layers are always full. */
  ignoreMounts: readonly string[];
  ignoreTypes: readonly string[];
  memory: Thresholds;
  /** Five-minute load per CPU; no judgement without it. */
  load: Thresholds | undefined;
  certificateDays: Thresholds;
  /** What any failed systemd unit makes the host. */
  failedUnits: Severity;
  services: readonly string[];
  http: readonly HttpEndpoint[];
  certificates: readonly string[];
  tls: readonly TlsEndpoint[];
}

/** Thresholds and ignored mounts when the inventory says nothing. @example DEFAULTS.disk // { warning: 80, critical: 90 } */
export const DEFAULTS = {
  disk: { warning: 80, critical: 90 },
  memory: { warning: 75, critical: 90 },
  certificateDays: { warning: 14, critical: 7 },
  // Read-only images, container layers, kernel filesystems, and the files nspawn binds in.
  ignoreMounts: ['/snap/**', '/var/snap/**', '/var/lib/docker/**', '/run/docker/**', '/sys/**', '/proc/**', '/run/host/**'],
  ignoreTypes: ['squashfs', 'iso9660', 'udf', 'devtmpfs', 'nsfs', 'proc', 'sysfs', 'cgroup', 'cgroup2'],
} as const;

/** A `{ warning, critical }` pair within `bounds`; when both are given they must not cross. */
function limits(bounds: { min: number; max?: number }, higherIsWorse: boolean) {
  const level = v.number(bounds).optional();
  const crossed = (t: { warning?: number | undefined; critical?: number | undefined }) =>
    t.warning !== undefined && t.critical !== undefined && (higherIsWorse ? t.warning > t.critical : t.warning < t.critical);
  return v
    .object({ warning: level, critical: level })
    .refine((t) => !crossed(t), `a warning ${higherIsWorse ? 'at or below' : 'at or above'} the critical threshold`)
    .optional();
}
/** Thresholds in percent used. */
const percentUsed = () => limits({ min: 0, max: 100 }, true);

const endpointObject = v.object({ url: v.url(), status: v.integer({ min: 100, max: 599 }).default(200), body: v.string().optional() });

/** An HTTP endpoint: a URL, or `{ url, status?, body? }`. */
const httpEndpoint = new VarType<HttpEndpoint>(
  'an http(s) URL or { url, status?, body? }',
  (value, path) => {
    const e = endpointObject.check(typeof value === 'string' ? { url: value } : value, path);
    return { url: e.url, status: e.status, ...(e.body === undefined ? {} : { body: e.body }) };
  },
  endpointObject.structure,
);

/** A TLS endpoint: `address:port` or `address:port servername`. */
const tlsEndpoint = new VarType<TlsEndpoint>('"address:port" or "address:port servername"', (value, path) => {
  const m = typeof value === 'string' ? /^([A-Za-z0-9.:_-]+?):(\d{1,5})(?:\s+([A-Za-z0-9.*_-]+))?$/.exec(value.trim()) : null;
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new VarError(path, '"address:port" or "address:port servername"', value);
  return { address: m[1] ?? '', port: Number(m[2]), serverName: m[3] ?? m[1] ?? '' };
});

/**
 * The shape of the inventory var `health` (every field optional), for a task's or script's
 * `vars`. Thresholds: disk and memory in percent used, load per CPU, certificates in days left.
 *
 * @example
 * // inventory.ts
 * vars: { health: { disk: { warning: 85 }, mounts: { '/var/lib/postgresql': { critical: 80 } }, services: ['nginx'], http: ['https://127.0.0.1/health'] } }
 */
export const healthVar = v
  .object({
    disk: percentUsed(),
    /** `{ '/data': { warning: 70, critical: 85 } }`: thresholds by mount point. */
    mounts: v.record(v.path(), percentUsed()).optional(),
    ignoreMounts: v.array(v.match(/^\//, 'an absolute path or glob such as "/snap/**"')).optional(),
    memory: percentUsed(),
    /** Load per CPU. */
    load: limits({ min: 0 }, true),
    /** Days left. */
    certificateDays: limits({ min: 0 }, false),
    failedUnits: v.oneOf('ok', 'warning', 'critical').optional(),
    services: v.array(v.unitName()).optional(),
    http: v.array(httpEndpoint).optional(),
    /** Certificate files on the host. */
    certificates: v.array(v.path()).optional(),
    tls: v.array(tlsEndpoint).optional(),
  })
  .optional();

type HealthVar = NonNullable<ReturnType<typeof healthVar.check>>;

function pair(given: { warning?: number | undefined; critical?: number | undefined } | undefined, fallback: Thresholds, higherIsWorse: boolean): Thresholds {
  let warning = given?.warning ?? fallback.warning;
  let critical = given?.critical ?? fallback.critical;
  // The var's check refused two given thresholds that cross; when only one is given, the other
  // (a default) follows it rather than contradict it.
  if (higherIsWorse ? warning > critical : warning < critical) {
    if (given?.warning === undefined) warning = critical;
    else critical = warning;
  }
  return { warning, critical };
}

/**
 * Settings with defaults from the (already checked) `health` var.
 *
 * @example healthSettings(undefined).disk // { warning: 80, critical: 90 }
 */
export function healthSettings(h: HealthVar | undefined): HealthSettings {
  const disk = pair(h?.disk, DEFAULTS.disk, true);
  return {
    disk,
    mounts: Object.fromEntries(Object.entries(h?.mounts ?? {}).map(([m, t]) => [m, pair(t, disk, true)])),
    ignoreMounts: h?.ignoreMounts ?? DEFAULTS.ignoreMounts,
    ignoreTypes: DEFAULTS.ignoreTypes,
    memory: pair(h?.memory, DEFAULTS.memory, true),
    load: h?.load?.warning === undefined && h?.load?.critical === undefined ? undefined : pair(h?.load, { warning: Infinity, critical: Infinity }, true),
    certificateDays: pair(h?.certificateDays, DEFAULTS.certificateDays, false),
    failedUnits: h?.failedUnits ?? 'warning',
    services: h?.services ?? [],
    http: h?.http ?? [],
    certificates: h?.certificates ?? [],
    tls: h?.tls ?? [],
  };
}

/** The facts one host's report needs, read in one exec. */
export interface HealthFacts {
  disk: DiskUsage;
  memory: MemoryInfo;
  load: LoadAverage;
  failed: FailedUnits;
  services: UnitStates | undefined;
  http: HttpResponse[];
  certificates: Certificate[];
  tls: Certificate[];
  /** Read on every host; absent only in reports assembled without it. */
  docker?: DockerPorts;
}

/**
 * The facts for these settings, in a fixed order, and how to put their values back together.
 *
 * @example
 * const { facts, assemble } = healthFacts(settings);
 * const values = assemble(await gatherFacts(conn, facts));
 */
export function healthFacts(s: HealthSettings): { facts: Fact<unknown>[]; assemble(values: readonly unknown[]): HealthFacts } {
  const facts: Fact<unknown>[] = [
    diskUsage(),
    memoryInfo(),
    loadAverage(),
    failedUnits(),
    ...(s.services.length ? [unitStates(s.services)] : []),
    ...s.http.map((e) => httpResponse(e.url)),
    ...s.certificates.map((c) => certificateFile(c)),
    ...s.tls.map((e) => certificateEndpoint(e.address, e.port, e.serverName)),
    dockerPorts,
  ] as Fact<unknown>[];
  const assemble = (values: readonly unknown[]): HealthFacts => {
    let i = 0;
    const take = <T>(): T => values[i++] as T;
    return {
      disk: take(),
      memory: take(),
      load: take(),
      failed: take(),
      services: s.services.length ? take() : undefined,
      http: s.http.map(() => take()),
      certificates: s.certificates.map(() => take()),
      tls: s.tls.map(() => take()),
      docker: take(),
    };
  };
  return { facts, assemble };
}

/** One line of the report. */
export interface HealthCheck {
  /** `disk`, `memory`, `load`, `failed units`, `service`, `http`, `certificate`, `tls`. */
  check: string;
  /** The mount, unit, URL or file; empty for host-wide checks. */
  subject: string;
  value: string;
  severity: Severity;
  /**
   * The measured number behind `value`, for metrics: percent used (disk, memory), five-minute
   * load per CPU, the count of failed units, the HTTP status, the certificate's expiry in Unix
   * seconds. Absent when nothing was measured.
   */
  figure?: number;
}

export interface HostHealth {
  host: string;
  severity: Severity;
  checks: HealthCheck[];
  /** Set when the host could not be read at all (that is critical). */
  error?: string;
}

const RANK: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

/** The worse of some severities; `ok` for none. @example worst(['ok', 'warning']) // 'warning' */
export function worst(severities: readonly Severity[]): Severity {
  return severities.reduce<Severity>((a, b) => (RANK[b] > RANK[a] ? b : a), 'ok');
}

/** A severity as a number for metrics: 0 ok, 1 warning, 2 critical. @example severityRank('warning') // 1 */
export function severityRank(s: Severity): 0 | 1 | 2 {
  return RANK[s] as 0 | 1 | 2;
}

function above(value: number, t: Thresholds): Severity {
  return value >= t.critical ? 'critical' : value >= t.warning ? 'warning' : 'ok';
}

function below(value: number, t: Thresholds): Severity {
  return value <= t.critical ? 'critical' : value <= t.warning ? 'warning' : 'ok';
}

const DAY_MS = 86_400_000;

function certificateCheck(check: string, subject: string, c: Certificate, s: HealthSettings, now: Date): HealthCheck {
  if (c.kind === 'missing') return { check, subject, value: 'missing', severity: 'critical' };
  if (c.kind === 'error') return { check, subject, value: c.reason, severity: 'critical' };
  const days = Math.floor((Date.parse(c.notAfter) - now.getTime()) / DAY_MS);
  const value = days < 0 ? `expired ${-days} day(s) ago (${c.notAfter.slice(0, 10)})` : `${days} day(s) left (${c.notAfter.slice(0, 10)})`;
  return { check, subject, value, severity: below(days, s.certificateDays), figure: Date.parse(c.notAfter) / 1000 };
}

function percent(n: number): string {
  return `${Number.isInteger(n) ? n : n.toFixed(1)} %`;
}

/**
 * Pure: one host's facts judged against its settings. `now` dates the certificates.
 *
 * @example
 * const report = evaluateHealth('web1', healthSettings(undefined), facts, new Date());
 * report.severity // 'critical' when a disk is 93 % full
 */
export function evaluateHealth(host: string, s: HealthSettings, f: HealthFacts, now: Date): HostHealth {
  const checks: HealthCheck[] = [];
  if (f.disk.kind === 'unavailable') checks.push({ check: 'disk', subject: '', value: `cannot tell: ${f.disk.reason}`, severity: 'warning' });
  else {
    const ignored = picomatch([...s.ignoreMounts], { dot: true });
    // A mount listed twice (stacked mounts) counts once, as the last one mounted.
    const byMount = new Map(f.disk.mounts.filter((m) => m.sizeKb > 0 && !s.ignoreTypes.includes(m.type) && !ignored(m.mount)).map((m) => [m.mount, m]));
    for (const m of byMount.values()) {
      const t = s.mounts[m.mount] ?? s.disk;
      checks.push({ check: 'disk', subject: m.mount, value: `${percent(m.usePercent)} used (${gib(m.availableKb)} free of ${gib(m.sizeKb)})`, severity: above(m.usePercent, t), figure: m.usePercent });
    }
  }
  if (f.memory.kind === 'unavailable') checks.push({ check: 'memory', subject: '', value: `cannot tell: ${f.memory.reason}`, severity: 'warning' });
  else {
    const used = f.memory.totalKb === 0 ? 0 : Math.round(((f.memory.totalKb - f.memory.availableKb) * 1000) / f.memory.totalKb) / 10;
    checks.push({ check: 'memory', subject: '', value: `${percent(used)} used (${gib(f.memory.availableKb)} available of ${gib(f.memory.totalKb)})`, severity: above(used, s.memory), figure: used });
  }
  if (f.load.kind === 'unavailable') checks.push({ check: 'load', subject: '', value: `cannot tell: ${f.load.reason}`, severity: s.load ? 'warning' : 'ok' });
  else {
    const perCpu = f.load.cpus > 0 ? f.load.five / f.load.cpus : f.load.five;
    checks.push({ check: 'load', subject: '', value: `${f.load.one} ${f.load.five} ${f.load.fifteen} (${f.load.cpus} CPU${f.load.cpus === 1 ? '' : 's'})`, severity: s.load ? above(perCpu, s.load) : 'ok', figure: perCpu });
  }
  if (f.failed.kind === 'unavailable') checks.push({ check: 'failed units', subject: '', value: `n/a: ${f.failed.reason.split('\n')[0]}`, severity: 'ok' });
  else {
    const names = f.failed.failed.map((u) => u.unit);
    checks.push({ check: 'failed units', subject: '', value: names.length ? names.join(', ') : 'none', severity: names.length ? s.failedUnits : 'ok', figure: names.length });
  }
  for (const unit of s.services) {
    const state = f.services?.kind === 'states' ? f.services.states[unit] : undefined;
    const value = f.services?.kind === 'unavailable' ? `cannot tell: ${f.services.reason}` : (state ?? 'unknown');
    checks.push({ check: 'service', subject: unit, value, severity: state === 'active' ? 'ok' : 'critical' });
  }
  s.http.forEach((e, i) => {
    const r = f.http[i];
    if (!r || r.kind === 'error') return checks.push({ check: 'http', subject: e.url, value: r?.reason ?? 'no answer', severity: 'critical' });
    const bodyOk = e.body === undefined || r.body.includes(e.body);
    const value = r.status !== e.status ? `${r.status}, expected ${e.status}` : bodyOk ? String(r.status) : `${r.status}, body without ${JSON.stringify(e.body)}`;
    checks.push({ check: 'http', subject: e.url, value, severity: r.status === e.status && bodyOk ? 'ok' : 'critical', figure: r.status });
  });
  s.certificates.forEach((c, i) => checks.push(certificateCheck('certificate', c, f.certificates[i] ?? { kind: 'error', reason: 'not read' }, s, now)));
  s.tls.forEach((e, i) => checks.push(certificateCheck('tls', `${e.address}:${e.port}${e.serverName !== e.address ? ` ${e.serverName}` : ''}`, f.tls[i] ?? { kind: 'error', reason: 'not read' }, s, now)));
  if (f.docker) checks.push(...dockerPortChecks(f.docker));
  return { host, severity: worst(checks.map((c) => c.severity)), checks };
}

/**
 * One `docker port` check per published host port, judged against the firewall. Docker DNATs an
 * IPv4 published port in the nat table and forwards it to the container, so ufw's INPUT rules
 * never see it: a port on a non-loopback address that ufw does not allow to everyone is reachable
 * anyway (critical), unless tackle's DOCKER-USER guard (ufw.dockerUser) applies the ufw policy
 * there. IPv6 bindings are left out: Docker 20.10 (Debian 12) does not manage ip6tables by
 * default and serves them through docker-proxy, a local socket ufw does filter.
 *
 * @example dockerPortChecks({ kind: 'missing' }) // []
 */
export function dockerPortChecks(d: DockerPorts): HealthCheck[] {
  if (d.kind === 'missing') return [];
  if (d.kind === 'unavailable') return [{ check: 'docker', subject: '', value: `cannot tell: ${d.reason}`, severity: 'warning' }];
  return d.published
    .filter((p) => !p.address.includes(':'))
    .map((p) => {
      const ports = p.hostPort === p.hostPortEnd ? String(p.hostPort) : `${p.hostPort}-${p.hostPortEnd}`;
      const subject = `${p.address}:${ports}/${p.proto} (${p.container})`;
      if (p.address.startsWith('127.')) return { check: 'docker port', subject, value: 'loopback only', severity: 'ok' };
      if (d.ufw.kind !== 'ufw' || !d.ufw.active) return { check: 'docker port', subject, value: `published, no active ufw to bypass${d.ufw.kind === 'unavailable' ? ` (cannot read ufw: ${d.ufw.reason})` : ''}`, severity: 'ok' };
      if (ufwAllowsEveryone(d.ufw.rules, p)) return { check: 'docker port', subject, value: 'published, and ufw allows it', severity: 'ok' };
      if (d.guarded) return { check: 'docker port', subject, value: 'published, filtered by the ufw policy in DOCKER-USER', severity: 'ok' };
      return { check: 'docker port', subject, value: `reachable from anywhere: Docker publishes it past ufw, which does not allow ${ports}/${p.proto}`, severity: 'critical' };
    });
}

/** Whether ufw lets anyone in to every port of `p` (a rule limited to some sources is bypassed too). */
function ufwAllowsEveryone(rules: readonly UfwRule[], p: PublishedPort): boolean {
  const covers = (dport: string, port: number) =>
    dport === 'any' || dport.split(',').some((part) => {
      const [a = '', b] = part.split(':');
      return b === undefined ? Number(a) === port : Number(a) <= port && port <= Number(b);
    });
  const open = rules.filter((r) => !r.route && r.direction === 'in' && (r.action === 'allow' || r.action === 'limit') && r.src === 'any' && !r.interfaceIn && !r.dapp && r.families.includes('v4') && (r.proto === 'any' || r.proto === p.proto));
  for (let port = p.hostPort; port <= p.hostPortEnd; port++) if (!open.some((r) => covers(r.dport, port))) return false;
  return true;
}

/** A host that could not be read: critical, with the reason. @example unreachableHealth('web1', 'no route').severity // 'critical' */
export function unreachableHealth(host: string, reason: string): HostHealth {
  return { host, severity: 'critical', checks: [{ check: 'reachable', subject: '', value: reason, severity: 'critical' }], error: reason };
}

function gib(kb: number): string {
  if (kb >= 1024 * 1024) return `${(kb / 1024 / 1024).toFixed(1)} GiB`;
  if (kb >= 1024) return `${(kb / 1024).toFixed(1)} MiB`;
  return `${kb} KiB`;
}

/**
 * The report as table cells, one row per check, the host named on its first row; the renderer
 * pads and colours them.
 *
 * @example const { header, rows } = healthTable(reports);
 */
export function healthTable(hosts: readonly HostHealth[]): { header: string[]; rows: Array<{ cells: string[]; severity: Severity }> } {
  const rows = hosts.flatMap((h) => h.checks.map((c, i) => ({ cells: [i === 0 ? h.host : '', c.subject ? `${c.check} ${c.subject}` : c.check, c.value, c.severity.toUpperCase()], severity: c.severity })));
  return { header: ['HOST', 'CHECK', 'VALUE', 'STATUS'], rows };
}
