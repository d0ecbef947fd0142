// A real ACME server for a lab: Debian's pebble (the ACME server) and pebble-challtestsrv (its DNS),
// listening on the lab's bridge address, so certbot on lab hosts can obtain certificates and pebble
// can validate http-01 challenges against the hosts' port 80. Two labs never clash: each listens on
// its own bridge address.
//
// Two certificate authorities are involved: a small one made here with openssl for pebble's own
// HTTPS listener (hosts trust it through REQUESTS_CA_BUNDLE), and pebble's issuing root, new on
// every start, which signs the certificates it issues ({@link Acme.issuingRoot}).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, lastLines, poll } from './exec.ts';
import type { TeardownHost } from './lab.ts';

const ACME_PORT = 14000;
const MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const CHALLTESTSRV_PORT = 8055;

/** A running pebble for one lab. */
export interface Acme {
  /** The ACME directory, for certbot's `--server`. */
  readonly directoryUrl: string;
  /** On this controller: the CA that signed pebble's listener certificate (copy it to hosts for REQUESTS_CA_BUNDLE). */
  readonly caCertPath: string;
  readonly caCertPem: string;
  /**
   * Makes pebble resolve `name` to `address` (an A record in challtestsrv's DNS).
   * @example await acme.addHost('app.test', lab.host('lab1').address);
   */
  addHost(name: string, address: string): Promise<void>;
  /** PEM of the root that signs the certificates pebble issues (new on every start). */
  issuingRoot(): Promise<string>;
  /** Stops both servers and removes their files. Idempotent. */
  stop(): Promise<void>;
}

/** The part of a lab the ACME server needs. */
export interface AcmeLab {
  readonly bridgeAddress: string;
}

/**
 * Starts pebble and pebble-challtestsrv on the lab's bridge address and resolves once both answer.
 * Prefer {@link withAcme} in tests, which stops them in the test's teardown.
 *
 * @example
 * const acme = await startAcme(lab);
 * try { await acme.addHost('app.test', lab.host('lab1').address); } finally { await acme.stop(); }
 */
export async function startAcme(lab: AcmeLab): Promise<Acme> {
  const bridge = lab.bridgeAddress;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(bridge)) throw new TypeError(`startAcme: bridge address must be an IPv4 address, got ${JSON.stringify(bridge)}`);
  const dir = await mkdtemp(join(tmpdir(), 'tackle-acme-'));
  const children: ChildProcess[] = [];
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await Promise.all(children.map(stopChild));
      await rm(dir, { recursive: true, force: true });
    })());
  try {
    const tls = await makeListenerCertificate(dir, bridge);
    const config = join(dir, 'pebble.json');
    await writeFile(
      config,
      JSON.stringify({
        pebble: {
          listenAddress: `${bridge}:${ACME_PORT}`,
          managementListenAddress: `${bridge}:${MANAGEMENT_PORT}`,
          certificate: tls.certPath,
          privateKey: tls.keyPath,
          // Pebble validates http-01 on the host's real port 80 (nginx there), not a test port.
          httpPort: 80,
          tlsPort: 443,
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
        },
      }),
    );
    // Only the DNS and the management API: the challenges are answered by the hosts themselves.
    const dns = `${bridge}:${DNS_PORT}`;
    // No default addresses: a name without an A record fails validation instead of reaching 127.0.0.1.
    const challtestsrv = await startChild(
      'pebble-challtestsrv',
      ['-dns01', dns, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `${bridge}:${CHALLTESTSRV_PORT}`, '-defaultIPv4', '', '-defaultIPv6', ''],
      {},
      join(dir, 'challtestsrv.log'),
    );
    children.push(challtestsrv);
    await waitForHttp(challtestsrv, `http://${bridge}:${CHALLTESTSRV_PORT}/`, join(dir, 'challtestsrv.log'));
    // No artificial validation delay and no rejected nonces: fast and deterministic.
    const pebble = await startChild('pebble', ['-config', config, '-dnsserver', dns], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' }, join(dir, 'pebble.log'));
    children.push(pebble);
    await waitForHttp(pebble, `https://${bridge}:${ACME_PORT}/dir`, join(dir, 'pebble.log'), tls.caPem);
    await waitForHttp(pebble, `https://${bridge}:${MANAGEMENT_PORT}/roots/0`, join(dir, 'pebble.log'), tls.caPem);
    const directoryUrl = `https://${bridge}:${ACME_PORT}/dir`;
    return {
      directoryUrl,
      caCertPath: tls.caPath,
      caCertPem: tls.caPem,
      async addHost(name, address) {
        const host = name.endsWith('.') ? name : `${name}.`;
        const response = await fetchText(httpRequest, `http://${bridge}:${CHALLTESTSRV_PORT}/add-a`, { method: 'POST', body: JSON.stringify({ host, addresses: [address] }) });
        if (response.status !== 200) throw new Error(`challtestsrv refused the A record ${host} → ${address}: ${response.status} ${response.body}`);
      },
      async issuingRoot() {
        const response = await fetchText(httpsRequest, `https://${bridge}:${MANAGEMENT_PORT}/roots/0`, { ca: tls.caPem });
        if (response.status !== 200 || !response.body.includes('BEGIN CERTIFICATE')) throw new Error(`pebble gave no issuing root: ${response.status} ${response.body.slice(0, 200)}`);
        return response.body;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Starts pebble for a tap test and stops it in the test's teardown.
 *
 * @example
 * const lab = await withLab(t, 1);
 * const acme = await withAcme(t, lab);
 */
export async function withAcme(t: TeardownHost, lab: AcmeLab): Promise<Acme> {
  const acme = await startAcme(lab);
  t.teardown(() => acme.stop());
  return acme;
}

interface ListenerTls {
  caPath: string;
  caPem: string;
  certPath: string;
  keyPath: string;
}

/** A throwaway CA and a server certificate for pebble's listener, with the bridge address as IP SAN. */
async function makeListenerCertificate(dir: string, bridge: string): Promise<ListenerTls> {
  const path = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await check('openssl', [
    'req', '-x509', ...ec, '-keyout', path('ca.key'), '-out', path('ca.pem'), '-days', '7', '-subj', '/CN=tackle lab ACME listener CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await check('openssl', ['req', ...ec, '-keyout', path('server.key'), '-out', path('server.csr'), '-subj', `/CN=${bridge}`]);
  await writeFile(
    path('server.ext'),
    [`subjectAltName=IP:${bridge}`, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid', ''].join('\n'),
  );
  await check('openssl', [
    'x509', '-req', '-in', path('server.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial',
    '-out', path('server.pem'), '-days', '7', '-extfile', path('server.ext'),
  ]);
  return { caPath: path('ca.pem'), caPem: await readFile(path('ca.pem'), 'utf8'), certPath: path('server.pem'), keyPath: path('server.key') };
}

/**
 * Starts a server with its output in `logFile`. `setpriv --pdeathsig` kills it when this process
 * dies without reaching its teardown, so no pebble outlives its test.
 */
async function startChild(file: string, args: string[], env: Record<string, string>, logFile: string): Promise<ChildProcess> {
  const output = await open(logFile, 'a');
  try {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', file, ...args], { stdio: ['ignore', output.fd, output.fd], env: { ...process.env, ...env } });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`cannot start ${file} (is Debian's pebble package installed?): ${err.message}`)));
    });
    return child;
  } finally {
    await output.close();
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Polls `url` until it answers HTTP (over TLS checked against `ca`): the server is up, not just
 * a port open, and not another run's server still holding it. Fails at once if `child` exits.
 */
async function waitForHttp(child: ChildProcess, url: string, logFile: string, ca?: string): Promise<void> {
  const client = url.startsWith('https:') ? httpsRequest : httpRequest;
  const log = async (): Promise<string> => lastLines(await readFile(logFile, 'utf8').catch(() => ''), 20);
  await poll(async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${child.spawnargs[4] ?? 'the server'} exited before answering ${url}; log:\n${await log()}`);
    return (await fetchText(client, url, ca ? { ca } : {}).catch(() => undefined)) ? true : undefined;
  }, {
    timeoutMs: 15_000,
    intervalMs: 50,
    onTimeout: async () => new Error(`no answer from ${url}; log:\n${await log()}`),
  });
}

interface TextResponse {
  status: number;
  body: string;
}

function fetchText(request: typeof httpRequest | typeof httpsRequest, url: string, opts: { method?: string; body?: string; ca?: string }): Promise<TextResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', timeout: 10_000, ...(opts.ca ? { ca: opts.ca } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${url} did not answer within 10 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

