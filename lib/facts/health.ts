import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

// ---------------------------------------------------------------- disk

/** One mounted filesystem as `df -P -T -k` prints it; sizes in KiB. */
export interface MountUsage {
  filesystem: string;
  type: string;
  mount: string;
  sizeKb: number;
  usedKb: number;
  availableKb: number;
  /** df's own Capacity: used / (used + available), rounded up, as df does. */
  usePercent: number;
}

export type DiskUsage = { kind: 'mounts'; mounts: MountUsage[] } | { kind: 'unavailable'; reason: string };

/**
 * Every mounted filesystem's use, from `df -P -T -k` (POSIX format: one line per mount even
 * with long device names). df exits 1 when one mount cannot be read (a stale NFS share) but
 * still lists the others; those are kept.
 *
 * @example
 * const disk = await host.fact(diskUsage());
 * if (disk.kind === 'mounts') for (const m of disk.mounts) console.log(m.mount, m.usePercent);
 */
export function diskUsage(): Fact<DiskUsage> {
  return defineFact('health.disk', sh`LC_ALL=C df -P -T -k`, parseDf);
}

/**
 * Pure parser of `df -P -T -k`. The mount point is the rest of the line after the Capacity
 * column, so one with spaces survives.
 *
 * @example parseDf({ stdout: 'Filesystem Type 1024-blocks Used Available Capacity Mounted on\ntmpfs tmpfs 1024 952 72 93% /mnt/small\n', stderr: '', exitCode: 0 })
 */
export function parseDf({ stdout, stderr, exitCode }: FactOutput): DiskUsage {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0 || !/^Filesystem\s/.test(lines[0] ?? '')) return { kind: 'unavailable', reason: stderr.trim() || `df exited with code ${exitCode}` };
  const mounts: MountUsage[] = [];
  for (const line of lines.slice(1)) {
    const m = /^(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+|-)%?\s+(.+)$/.exec(line);
    if (!m) throw new Error(`unexpected df line ${JSON.stringify(line)}`);
    const [, filesystem = '', type = '', size, used, available, capacity, mount = ''] = m;
    const usedKb = Number(used);
    const availableKb = Number(available);
    const usePercent = capacity === '-' ? (usedKb + availableKb === 0 ? 0 : Math.ceil((usedKb * 100) / (usedKb + availableKb))) : Number(capacity);
    mounts.push({ filesystem, type, mount, sizeKb: Number(size), usedKb, availableKb, usePercent });
  }
  return { kind: 'mounts', mounts };
}

// ---------------------------------------------------------------- memory and load

export type MemoryInfo = { kind: 'memory'; totalKb: number; availableKb: number; swapTotalKb: number; swapFreeKb: number } | { kind: 'unavailable'; reason: string };

/**
 * Memory from /proc/meminfo. "Used" is what is not available: MemAvailable counts reclaimable
 * cache, so a busy page cache is not mistaken for pressure.
 *
 * @example
 * const mem = await host.fact(memoryInfo());
 */
export function memoryInfo(): Fact<MemoryInfo> {
  return defineFact('health.memory', sh`cat /proc/meminfo`, parseMeminfo);
}

/**
 * Pure parser of /proc/meminfo. Kernels before 3.14 lack MemAvailable: free + buffers + cached
 * stands in for it.
 *
 * @example parseMeminfo({ stdout: 'MemTotal: 1000 kB\nMemAvailable: 250 kB\n', stderr: '', exitCode: 0 }) // { kind: 'memory', totalKb: 1000, availableKb: 250, … }
 */
export function parseMeminfo({ stdout, stderr, exitCode }: FactOutput): MemoryInfo {
  const values = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const m = /^(\w+(?:\(\w+\))?):\s+(\d+)/.exec(line);
    if (m) values.set(m[1] ?? '', Number(m[2]));
  }
  const total = values.get('MemTotal');
  if (exitCode !== 0 || total === undefined) return { kind: 'unavailable', reason: stderr.trim() || 'no MemTotal in /proc/meminfo' };
  const available = values.get('MemAvailable') ?? (values.get('MemFree') ?? 0) + (values.get('Buffers') ?? 0) + (values.get('Cached') ?? 0);
  return { kind: 'memory', totalKb: total, availableKb: available, swapTotalKb: values.get('SwapTotal') ?? 0, swapFreeKb: values.get('SwapFree') ?? 0 };
}

export type LoadAverage = { kind: 'load'; one: number; five: number; fifteen: number; cpus: number } | { kind: 'unavailable'; reason: string };

/**
 * Load averages from /proc/loadavg and the number of CPUs this host may use (`nproc`), so
 * load can be judged per CPU.
 *
 * @example
 * const load = await host.fact(loadAverage());
 */
export function loadAverage(): Fact<LoadAverage> {
  return defineFact('health.load', sh`cat /proc/loadavg && nproc`, parseLoadavg);
}

/**
 * Pure parser of `cat /proc/loadavg; nproc`.
 *
 * @example parseLoadavg({ stdout: '1.60 1.48 1.37 1/302 53\n2\n', stderr: '', exitCode: 0 }) // { kind: 'load', one: 1.6, five: 1.48, fifteen: 1.37, cpus: 2 }
 */
export function parseLoadavg({ stdout, stderr, exitCode }: FactOutput): LoadAverage {
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) \S+ \S+\n(\d+)/.exec(stdout);
  if (exitCode !== 0 || !m) return { kind: 'unavailable', reason: stderr.trim() || `unexpected output ${JSON.stringify(stdout.slice(0, 80))}` };
  return { kind: 'load', one: Number(m[1]), five: Number(m[2]), fifteen: Number(m[3]), cpus: Number(m[4]) };
}

// ---------------------------------------------------------------- systemd

export interface FailedUnit {
  unit: string;
  load: string;
  active: string;
  sub: string;
  description: string;
}

export type FailedUnits = { kind: 'units'; failed: FailedUnit[] } | { kind: 'unavailable'; reason: string };

/**
 * Units systemd reports failed (`systemctl --failed`); unavailable without a running systemd.
 *
 * @example
 * const f = await host.fact(failedUnits());
 * if (f.kind === 'units' && f.failed.length) console.log(f.failed.map((u) => u.unit));
 */
export function failedUnits(): Fact<FailedUnits> {
  return defineFact('health.failedUnits', sh`systemctl --failed --no-legend --plain --full --no-pager`, parseFailedUnits);
}

/**
 * Pure parser of `systemctl --failed --no-legend --plain --full`: `UNIT LOAD ACTIVE SUB DESCRIPTION`.
 *
 * @example parseFailedUnits({ stdout: 'broken.service loaded failed failed broken.service\n', stderr: '', exitCode: 0 })
 */
export function parseFailedUnits({ stdout, stderr, exitCode }: FactOutput): FailedUnits {
  if (exitCode !== 0) return { kind: 'unavailable', reason: stderr.trim() || `systemctl exited with code ${exitCode}` };
  const failed = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [unit = '', load = '', active = '', sub = '', ...rest] = line.trim().split(/\s+/);
      return { unit, load, active, sub, description: rest.join(' ') };
    });
  return { kind: 'units', failed };
}

export type UnitStates = { kind: 'states'; states: Record<string, string> } | { kind: 'unavailable'; reason: string };

/**
 * `systemctl is-active` of each unit: `active`, `inactive`, `failed`, `activating`…
 * (`inactive` for a unit that does not exist).
 *
 * @example
 * const s = await host.fact(unitStates(['nginx', 'postgresql']));
 * if (s.kind === 'states' && s.states.nginx !== 'active') console.log('nginx is down');
 */
export function unitStates(units: readonly string[]): Fact<UnitStates> {
  if (units.length === 0) throw new TypeError('unitStates: give at least one unit');
  for (const u of units) if (!/^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$/.test(u)) throw new TypeError(`unitStates: ${JSON.stringify(u)} is not a unit name`);
  return defineFact(`health.unitStates ${units.join(' ')}`, sh`systemctl is-active -- ${units}`, (out) => parseUnitStates(units, out));
}

/**
 * Pure parser of `systemctl is-active A B …`: one state per line, in the order asked. Its exit
 * code is 0 only when every unit is active, so it is not an error.
 *
 * @example parseUnitStates(['ssh', 'nosuch'], { stdout: 'active\ninactive\n', stderr: '', exitCode: 3 }) // { kind: 'states', states: { ssh: 'active', nosuch: 'inactive' } }
 */
export function parseUnitStates(units: readonly string[], { stdout, stderr }: FactOutput): UnitStates {
  const lines = stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== units.length) return { kind: 'unavailable', reason: stderr.trim() || `systemctl is-active printed ${lines.length} states for ${units.length} units` };
  return { kind: 'states', states: Object.fromEntries(units.map((u, i) => [u, lines[i] ?? ''])) };
}

// ---------------------------------------------------------------- HTTP and TCP, from the host

/** Bodies beyond this are cut: enough for a health page or an error message. @example body.length <= BODY_LIMIT */
export const BODY_LIMIT = 64 * 1024;

export type HttpResponse = { kind: 'response'; status: number; body: string } | { kind: 'error'; reason: string };

export interface HttpRequestOptions {
  /** Per request (curl --max-time); default 5000. */
  timeoutMs?: number;
  /** Accept any TLS certificate (curl -k). */
  insecure?: boolean;
}

/**
 * One GET of `url` with curl on the host: its status and (the start of) its body, or why no
 * response came. Redirects are not followed, so a 301 is a 301.
 *
 * @example
 * const r = await host.fact(httpResponse('http://127.0.0.1:8080/health'));
 * if (r.kind === 'response' && r.status === 200) console.log('healthy');
 */
export function httpResponse(url: string, opts: HttpRequestOptions = {}): Fact<HttpResponse> {
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new TypeError(`httpResponse: ${JSON.stringify(url)} is not an http(s) URL`);
  const seconds = String((opts.timeoutMs ?? 5000) / 1000);
  const insecure = opts.insecure ? raw(' -k') : raw('');
  // The body goes to a temp file so the status can be printed first, whatever the body holds.
  const command = sh`f=$(mktemp) || exit 1
code=$(curl -sS${insecure} --max-time ${seconds} -o "$f" -w '%{http_code}' -- ${url}); rc=$?
printf '%s %s\n' "$rc" "$code"; head -c ${BODY_LIMIT} "$f"; rm -f "$f"`;
  return defineFact(`health.http ${url}${opts.insecure ? ' -k' : ''} ${seconds}`, command, parseHttpResponse);
}

/**
 * Pure parser of {@link httpResponse}'s script: `CURL_EXIT HTTP_CODE` then the body.
 *
 * @example parseHttpResponse({ stdout: '0 200\nok', stderr: '', exitCode: 0 }) // { kind: 'response', status: 200, body: 'ok' }
 */
export function parseHttpResponse({ stdout, stderr, exitCode }: FactOutput): HttpResponse {
  const nl = stdout.indexOf('\n');
  const m = /^(\d+) (\d{3})?$/.exec(nl < 0 ? stdout : stdout.slice(0, nl));
  if (!m) return { kind: 'error', reason: stderr.trim() || `the check could not run (exit code ${exitCode})` };
  const curlExit = Number(m[1]);
  if (curlExit === 127) return { kind: 'error', reason: 'curl is not installed on the host' };
  if (curlExit !== 0) return { kind: 'error', reason: stderr.trim().replace(/^curl: /, '') || `curl exited with code ${curlExit}` };
  return { kind: 'response', status: Number(m[2]), body: stdout.slice(nl + 1) };
}

export type TcpPort = { kind: 'open' } | { kind: 'closed'; reason: string };

/**
 * Whether a TCP connection to `address:port` succeeds from the host (bash's /dev/tcp, under
 * `timeout`; bash is essential on Debian and Ubuntu).
 *
 * @example
 * const p = await host.fact(tcpPort('127.0.0.1', 5432));
 */
export function tcpPort(address: string, port: number, timeoutMs = 3000): Fact<TcpPort> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`tcpPort: ${port} is not a port number`);
  if (!/^[A-Za-z0-9.:_-]+$/.test(address)) throw new TypeError(`tcpPort: ${JSON.stringify(address)} is not a host name or address`);
  const seconds = String(timeoutMs / 1000);
  return defineFact(`health.tcp ${address}:${port}`, sh`timeout ${seconds} bash -c 'exec 3<>"/dev/tcp/$1/$2"' tcp ${address} ${String(port)}`, parseTcpPort);
}

/**
 * Pure parser of {@link tcpPort}'s command.
 *
 * @example parseTcpPort({ stdout: '', stderr: 'Connection refused', exitCode: 1 }) // { kind: 'closed', reason: 'Connection refused' }
 */
export function parseTcpPort({ stderr, exitCode }: FactOutput): TcpPort {
  if (exitCode === 0) return { kind: 'open' };
  if (exitCode === 124) return { kind: 'closed', reason: 'no answer before the timeout' };
  // bash says `tcp: connect: Connection refused` first, then the same again naming /dev/tcp.
  const why = /connect: (.+)/.exec(stderr)?.[1] ?? stderr.trim().split('\n')[0];
  return { kind: 'closed', reason: why || `exit code ${exitCode}` };
}

// ---------------------------------------------------------------- TLS certificates

export type Certificate = { kind: 'certificate'; notAfter: string } | { kind: 'missing' } | { kind: 'error'; reason: string };

/**
 * The expiry of a PEM certificate file on the host (`openssl x509 -enddate`).
 *
 * @example
 * const c = await host.fact(certificateFile('/etc/letsencrypt/live/example.com/cert.pem'));
 */
export function certificateFile(path: string): Fact<Certificate> {
  return defineFact(`health.certFile ${path}`, sh`if [ -e ${path} ]; then openssl x509 -enddate -noout -in ${path}; else echo missing; fi`, parseCertificateEnd);
}

/**
 * The expiry of the certificate a TLS server presents, fetched on the host with
 * `openssl s_client` (SNI = `serverName`, default the host part).
 *
 * @example
 * const c = await host.fact(certificateEndpoint('127.0.0.1', 443, 'example.com'));
 */
export function certificateEndpoint(address: string, port: number, serverName = address, timeoutMs = 10_000): Fact<Certificate> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`certificateEndpoint: ${port} is not a port number`);
  const seconds = String(timeoutMs / 1000);
  return defineFact(
    `health.certEndpoint ${address}:${port} ${serverName}`,
    sh`timeout ${seconds} openssl s_client -connect ${`${address}:${port}`} -servername ${serverName} 2>/dev/null </dev/null | openssl x509 -enddate -noout`,
    parseCertificateEnd,
  );
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Pure parser of `openssl x509 -enddate`: `notAfter=Dec  2 02:45:29 2026 GMT` → ISO time.
 *
 * @example parseCertificateEnd({ stdout: 'notAfter=Dec  2 02:45:29 2026 GMT\n', stderr: '', exitCode: 0 }) // { kind: 'certificate', notAfter: '2026-12-02T02:45:29.000Z' }
 */
export function parseCertificateEnd({ stdout, stderr, exitCode }: FactOutput): Certificate {
  if (stdout.trim() === 'missing') return { kind: 'missing' };
  const m = /notAfter=(\w{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4}) GMT/.exec(stdout);
  const month = MONTHS.indexOf(m?.[1] ?? '');
  if (!m || month < 0) {
    if (exitCode === 127) return { kind: 'error', reason: 'openssl is not installed on the host' };
    // From s_client's pipe: the connection failed, or the server spoke no TLS.
    if (stderr.includes('from <stdin>')) return { kind: 'error', reason: 'no certificate was presented (no TLS server answered there)' };
    const why = stderr.trim().split('\n').filter((l) => !/^[0-9A-F]{8,}:error:/.test(l)).join('; ');
    return { kind: 'error', reason: why || 'no certificate could be read' };
  }
  return { kind: 'certificate', notAfter: new Date(Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]))).toISOString() };
}
