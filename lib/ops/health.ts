import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { Connection } from '../connection/connection.ts';
import { gatherFacts } from '../facts/gather.ts';
import type { Check } from './operation.ts';
import { TackleError } from '../errors.ts';
import { defineFact, type Fact } from '../facts/fact.ts';
import { BODY_LIMIT, httpResponse, tcpPort, unitStates, type HttpResponse, type TcpPort, type UnitStates } from '../facts/health.ts';
import { refuse } from './refuse.ts';

/** Where a probe runs: on the host itself (curl, bash) or on this machine (node). */
export type ProbeFrom = 'host' | 'controller';

/** One thing that must hold for a service to count as healthy. Build them with {@link health}. */
export type Probe =
  | { kind: 'http'; url: string; status: number; body?: string | RegExp; from: ProbeFrom; insecure: boolean; timeoutMs: number }
  | { kind: 'tcp'; address: string; port: number; from: ProbeFrom; timeoutMs: number }
  | { kind: 'unit'; unit: string };

export interface HttpProbeOptions {
  /** Expected status; default 200. */
  status?: number;
  /** The body must contain this text, or match this pattern. */
  body?: string | RegExp;
  /** Default `host`: the URL as the host sees it (e.g. http://127.0.0.1:8080/health). */
  from?: ProbeFrom;
  /** Accept any TLS certificate. */
  insecure?: boolean;
  /** Per request; default 5000. */
  timeoutMs?: number;
}

/** How long to keep trying: exponential backoff from `firstDelayMs` up to `maxDelayMs`, until `deadlineMs`. */
export interface WaitOptions {
  /** Give up this long after the first attempt; default 60 000. */
  deadlineMs?: number;
  /** Wait before the second attempt; doubled each time. Default 250. */
  firstDelayMs?: number;
  /** The longest wait between attempts; default 5000. */
  maxDelayMs?: number;
}

/** `ended` says why the wait ended: the deadline, or a sign that no later attempt can pass (see {@link WaitContext}). */
export type HealthOutcome = { kind: 'healthy'; attempts: number; ms: number } | { kind: 'unhealthy'; attempts: number; ms: number; reason: string; ended: 'deadline' | 'stopped' };

/**
 * A fact read with each attempt that answers why the service has stopped for good (its unit
 * `failed`, its container exited), or undefined while it may still come up.
 */
export type StopSign = Fact<string | undefined>;

/** What a wait needs besides its timing. */
export interface WaitContext {
  /** Default: real time. */
  clock?: Clock;
  /** Read with each attempt; the first that answers ends the wait at once (no later attempt can pass). */
  stops?: readonly StopSign[];
}

/** Time, injectable so tests of the backoff need no real waiting. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = { now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

function checkFrom(from: unknown, what: string): ProbeFrom {
  if (from === undefined) return 'host';
  if (from !== 'host' && from !== 'controller') throw refuse(what, `from must be 'host' or 'controller', got ${JSON.stringify(from)}`);
  return from;
}

/**
 * An HTTP(S) GET that must answer `status` (200) and, optionally, a body containing `body`.
 * @example health.http('http://127.0.0.1:8080/health', { body: 'ok' })
 */
function http(url: string, opts: HttpProbeOptions = {}): Probe {
  if (typeof url !== 'string' || !/^https?:\/\/\S+$/.test(url)) throw refuse('health.http', `${JSON.stringify(url)} is not an http(s) URL`);
  const status = opts.status ?? 200;
  if (!Number.isInteger(status) || status < 100 || status > 599) throw refuse(`health.http ${url}`, `status ${status} is not an HTTP status`);
  return {
    kind: 'http',
    url,
    status,
    ...(opts.body === undefined ? {} : { body: opts.body }),
    from: checkFrom(opts.from, `health.http ${url}`),
    insecure: opts.insecure === true,
    timeoutMs: opts.timeoutMs ?? 5000,
  };
}

/**
 * A TCP port that must accept a connection (default address 127.0.0.1, as the host sees it).
 * @example health.tcp(5432) ; health.tcp(443, { address: '203.0.113.10', from: 'controller' })
 */
function tcp(port: number, opts: { address?: string; from?: ProbeFrom; timeoutMs?: number } = {}): Probe {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw refuse('health.tcp', `${port} is not a port number`);
  return { kind: 'tcp', address: opts.address ?? '127.0.0.1', port, from: checkFrom(opts.from, `health.tcp ${port}`), timeoutMs: opts.timeoutMs ?? 3000 };
}

/**
 * A systemd unit that must be `active`.
 * @example health.unit('app.service')
 */
function unit(name: string): Probe {
  if (typeof name !== 'string' || !/^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$/.test(name)) throw refuse('health.unit', `${JSON.stringify(name)} is not a unit name`);
  return { kind: 'unit', unit: name };
}

/** A probe in words, for plans and messages. @example describeProbe(health.unit('app')) // 'unit app active' */
export function describeProbe(p: Probe): string {
  if (p.kind === 'unit') return `unit ${p.unit} active`;
  const where = p.from === 'controller' ? 'from here' : 'from the host';
  if (p.kind === 'tcp') return `TCP ${p.address}:${p.port} open (${where})`;
  const body = p.body === undefined ? '' : ` with body ${p.body instanceof RegExp ? `matching ${p.body}` : `containing ${JSON.stringify(p.body)}`}`;
  return `GET ${p.url} → ${p.status}${body} (${where})`;
}

/** Probes and waiting in one line. @example describeHealth([health.tcp(22)]) // 'TCP 127.0.0.1:22 open (from the host), within 60 s' */
export function describeHealth(probes: readonly Probe[], wait: WaitOptions = {}): string {
  return `${probes.map(describeProbe).join(', ')}, within ${Math.round((wait.deadlineMs ?? 60_000) / 1000)} s`;
}

// ---------------------------------------------------------------- judging one attempt (pure)

/**
 * Pure: why an HTTP answer fails its probe, or undefined when it passes.
 *
 * @example judgeHttp(health.http('http://x/'), { kind: 'response', status: 500, body: '' }) // 'GET http://x/ answered 500, expected 200'
 */
export function judgeHttp(p: Probe & { kind: 'http' }, r: HttpResponse): string | undefined {
  if (r.kind === 'error') return `GET ${p.url}: ${r.reason}`;
  if (r.status !== p.status) return `GET ${p.url} answered ${r.status}, expected ${p.status}${r.body.trim() ? `: ${oneLine(r.body)}` : ''}`;
  if (p.body === undefined) return undefined;
  const ok = p.body instanceof RegExp ? p.body.test(r.body) : r.body.includes(p.body);
  return ok ? undefined : `GET ${p.url} answered ${r.status} but its body ${p.body instanceof RegExp ? `does not match ${p.body}` : `does not contain ${JSON.stringify(p.body)}`}: ${oneLine(r.body)}`;
}

function oneLine(text: string, max = 120): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Pure: why a TCP result fails its probe, or undefined. @example judgeTcp(probe, { kind: 'open' }) // undefined */
export function judgeTcp(p: Probe & { kind: 'tcp' }, r: TcpPort): string | undefined {
  return r.kind === 'open' ? undefined : `TCP ${p.address}:${p.port}: ${r.reason}`;
}

/** Pure: why a unit is not active, or undefined. @example judgeUnit(probe, { kind: 'states', states: { app: 'failed' } }) // 'unit app is failed' */
export function judgeUnit(p: Probe & { kind: 'unit' }, r: UnitStates): string | undefined {
  if (r.kind === 'unavailable') return `unit ${p.unit}: ${r.reason}`;
  const state = r.states[p.unit];
  return state === 'active' ? undefined : `unit ${p.unit} is ${state ?? 'unknown'}`;
}

/** Why a unit has stopped for good: systemd says `failed` once it gave up (no restart is coming). */
function unitStopped(unit: string, r: UnitStates): string | undefined {
  return r.kind === 'states' && r.states[unit] === 'failed' ? `unit ${unit} failed` : undefined;
}

/**
 * A {@link StopSign} for a systemd unit: it answers once the unit is `failed` (not while
 * systemd is still restarting it).
 *
 * @example await waitForHealth(conn, [health.http('http://127.0.0.1:8000/health')], {}, { stops: [unitStop('app.service')] })
 */
export function unitStop(unit: string): StopSign {
  const states = unitStates([unit]);
  return defineFact(`health.unitStop ${unit}`, states.command, (out) => unitStopped(unit, states.parse(out)));
}

// ---------------------------------------------------------------- running probes

function hostFact(p: Probe): Fact<unknown> | undefined {
  if (p.kind === 'unit') return unitStates([p.unit]) as Fact<unknown>;
  if (p.from !== 'host') return undefined;
  if (p.kind === 'http') return httpResponse(p.url, { timeoutMs: p.timeoutMs, insecure: p.insecure }) as Fact<unknown>;
  return tcpPort(p.address, p.port, p.timeoutMs) as Fact<unknown>;
}

/**
 * One GET from this machine, as the host-side fact would report it.
 * @example await fetchFromController('https://app.example.com/health', { timeoutMs: 5000, insecure: false })
 */
export function fetchFromController(url: string, opts: { timeoutMs: number; insecure: boolean }): Promise<HttpResponse> {
  return new Promise((resolve) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    // A fresh connection each time: a kept-alive socket to the process just restarted would fail for the wrong reason.
    const req = request(url, { method: 'GET', agent: false, timeout: opts.timeoutMs, ...(url.startsWith('https:') ? { rejectUnauthorized: !opts.insecure } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        if (size < BODY_LIMIT) chunks.push(d);
        size += d.length;
      });
      res.on('end', () => resolve({ kind: 'response', status: res.statusCode ?? 0, body: Buffer.concat(chunks).subarray(0, BODY_LIMIT).toString() }));
      res.on('error', (err) => resolve({ kind: 'error', reason: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs / 1000} s`)));
    req.on('error', (err) => resolve({ kind: 'error', reason: err.message }));
    req.end();
  });
}

/** One TCP connect from this machine. @example await connectFromController('203.0.113.10', 443, 3000) // { kind: 'open' } */
export function connectFromController(address: string, port: number, timeoutMs: number): Promise<TcpPort> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ kind: 'open' });
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve({ kind: 'closed', reason: 'no answer before the timeout' });
    });
    socket.once('error', (err) => resolve({ kind: 'closed', reason: err.message }));
  });
}

/** One attempt: what failed, and the signs that no later attempt can pass. */
export interface Attempt {
  failures: string[];
  stopped: string[];
}

/**
 * Runs every probe once, and reads the stop signs: the host's in one exec (one round trip),
 * this machine's at the same time. A unit probe whose unit is `failed` counts as stopped.
 *
 * @example const { failures } = await probeOnce(conn, [health.http('http://127.0.0.1:8080/health')]);
 */
export async function probeOnce(conn: Connection, probes: readonly Probe[], stops: readonly StopSign[] = []): Promise<Attempt> {
  const onHost = probes.map(hostFact);
  const facts = onHost.filter((f): f is Fact<unknown> => f !== undefined);
  const [hostValues, controllerValues] = await Promise.all([
    gatherFacts(conn, [...facts, ...stops]),
    Promise.all(
      probes.map((p) => {
        if (p.kind === 'unit' || p.from === 'host') return undefined;
        return p.kind === 'http' ? fetchFromController(p.url, p) : connectFromController(p.address, p.port, p.timeoutMs);
      }),
    ),
  ]);
  let next = 0;
  const stopped: string[] = [];
  const failures = probes.flatMap((p, i) => {
    const value = onHost[i] ? hostValues[next++] : controllerValues[i];
    const gone = p.kind === 'unit' ? unitStopped(p.unit, value as UnitStates) : undefined;
    if (gone !== undefined) {
      stopped.push(gone);
      return [];
    }
    const why = p.kind === 'http' ? judgeHttp(p, value as HttpResponse) : p.kind === 'tcp' ? judgeTcp(p, value as TcpPort) : judgeUnit(p, value as UnitStates);
    return why === undefined ? [] : [why];
  });
  for (const value of hostValues.slice(facts.length)) if (typeof value === 'string' && !stopped.includes(value)) stopped.push(value);
  return { failures, stopped };
}

/**
 * Tries the probes until all pass or the deadline passes, waiting longer after each failed
 * attempt (no fixed sleeps: a service that is up at once costs one attempt). It ends at once
 * when the service has stopped for good (a unit probe's unit `failed`, or a stop sign answers):
 * waiting out the deadline then would only delay the rollback.
 *
 * @example
 * const outcome = await waitForHealth(conn, [health.http('http://127.0.0.1:8080/health')], { deadlineMs: 30_000 });
 * if (outcome.kind === 'unhealthy') console.log(describeUnhealthy(outcome));
 */
export async function waitForHealth(conn: Connection, probes: readonly Probe[], wait: WaitOptions = {}, { clock = realClock, stops = [] }: WaitContext = {}): Promise<HealthOutcome> {
  const deadline = wait.deadlineMs ?? 60_000;
  const first = wait.firstDelayMs ?? 250;
  const max = wait.maxDelayMs ?? 5000;
  const start = clock.now();
  for (let attempt = 1; ; attempt++) {
    const { failures, stopped } = await probeOnce(conn, probes, stops);
    const ms = Math.round(clock.now() - start);
    if (stopped.length) return { kind: 'unhealthy', attempts: attempt, ms, reason: [...stopped, ...failures].join('; '), ended: 'stopped' };
    if (failures.length === 0) return { kind: 'healthy', attempts: attempt, ms };
    const left = deadline - (clock.now() - start);
    if (left <= 0) return { kind: 'unhealthy', attempts: attempt, ms, reason: failures.join('; '), ended: 'deadline' };
    await clock.sleep(Math.min(left, first * 2 ** (attempt - 1), max));
  }
}

/** How an outcome reads in a message. @example describeAttempts({ kind: 'healthy', attempts: 7, ms: 12_300 }) // '7 attempts in 12.3 s' */
export function describeAttempts(o: HealthOutcome): string {
  return `${o.attempts} attempt${o.attempts === 1 ? '' : 's'} in ${(o.ms / 1000).toFixed(1)} s`;
}

/**
 * Why a wait failed, in one line for a step's error.
 *
 * @example describeUnhealthy({ kind: 'unhealthy', attempts: 2, ms: 1100, reason: 'unit app failed', ended: 'stopped' }) // 'not healthy after 2 attempts in 1.1 s, and it will not come up by waiting: unit app failed'
 */
export function describeUnhealthy(o: HealthOutcome & { kind: 'unhealthy' }): string {
  return `not healthy after ${describeAttempts(o)}${o.ended === 'stopped' ? ', and it will not come up by waiting' : ''}: ${o.reason}`;
}

/**
 * A controller-side check that waits until the probes pass, for an operation to attach after
 * the commands that (re)start a service. It fails the step when the deadline passes.
 *
 * @example
 * return { summary: 'restart app', actions: [{ command: sh`systemctl restart app` }], checks: [health.check([health.http('http://127.0.0.1:8080/health')])] };
 */
function check(probes: readonly Probe[], wait: WaitOptions = {}): Check {
  if (probes.length === 0) throw refuse('health.check', 'give at least one probe');
  return {
    describe: `wait until healthy: ${describeHealth(probes, wait)}`,
    run: async (ctx) => {
      const outcome = await waitForHealth(ctx.connection, probes, wait);
      if (outcome.kind === 'unhealthy') throw new TackleError({ phase: 'operation', reason: describeUnhealthy(outcome) });
    },
  };
}

/**
 * Health probes (HTTP(S), TCP, systemd unit) and the check that waits for them.
 *
 * @example
 * const probes = [health.unit('app.service'), health.http('http://127.0.0.1:8080/health', { body: 'ok' })];
 * await waitForHealth(conn, probes, { deadlineMs: 30_000 });
 */
export const health = { http, tcp, unit, check };
