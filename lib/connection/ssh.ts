import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import type { Command } from '../command/command.ts';
import { Semaphore } from '../concurrency.ts';
import { TackleError } from '../errors.ts';
import { ExecConnection, framed, type Exit, type Spawned } from './connection.ts';
import { appendKnownHost, checkHostKey, keyFingerprint, knownKeyTypes, loadKnownHosts } from './known-hosts.ts';

/** Where and as whom to connect; `name` is the inventory name used in messages. */
export interface SshEndpoint {
  name: string;
  address: string;
  port: number;
  user: string;
  /** Tried in order; a missing file that was asked for by name is an error. */
  privateKeyPaths: string[];
  /** Files checked for the host key; new keys are recorded in the first. */
  knownHostsPaths: string[];
  /** Path of an ssh-agent socket (SSH_AUTH_SOCK), passed in explicitly. */
  agent?: string;
  /** Reach this endpoint through another one (ProxyJump). */
  jump?: SshEndpoint;
}

export interface SshOptions {
  /** Record unknown host keys instead of refusing them. A changed key is always refused. */
  acceptNewHostKeys?: boolean;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /**
   * Channels open at once (default 8). OpenSSH's MaxSessions defaults to 10 and refuses the 11th;
   * sshd frees a session slightly after the channel closes, so we stay below it.
   */
  maxChannels?: number;
}

/**
 * Connects with ssh2 directly (not ssh2-promise: its exec drops exit codes,
 * joins arguments unquoted and can hang when the connection dies).
 *
 * @example
 * const conn = await connectSsh({ name: 'web1', address: '10.0.0.5', port: 22, user: 'root',
 *   privateKeyPaths: ['/root/.ssh/id_ed25519'], knownHostsPaths: ['/root/.ssh/known_hosts'] });
 */
export async function connectSsh(endpoint: SshEndpoint, options: SshOptions = {}): Promise<SshConnection> {
  const jump = endpoint.jump ? await connectSsh(endpoint.jump, options) : undefined;
  try {
    const session = await handshake(endpoint, options, jump);
    return new SshConnection(endpoint, session, options.maxChannels ?? 8, jump);
  } catch (err) {
    await jump?.close();
    throw err;
  }
}

async function authMethods(endpoint: SshEndpoint): Promise<NonNullable<ConnectConfig['authHandler']>> {
  const username = endpoint.user;
  const methods: Array<{ type: 'publickey'; username: string; key: Buffer } | { type: 'agent'; username: string; agent: string }> = [];
  if (endpoint.agent) methods.push({ type: 'agent', username, agent: endpoint.agent });
  for (const path of endpoint.privateKeyPaths) {
    const key = await readFile(path).catch((cause: NodeJS.ErrnoException) => {
      throw connectError(endpoint, `cannot read private key ${path}: ${cause.code ?? cause.message}`, cause);
    });
    methods.push({ type: 'publickey', username, key });
  }
  if (methods.length === 0) throw connectError(endpoint, 'no private key and no ssh-agent to authenticate with; set privateKeyPath in the inventory');
  return methods as NonNullable<ConnectConfig['authHandler']>;
}

/** A connected client and the byte stream under it, which tackle owns so it can always tear it down. */
interface Session {
  client: Client;
  sock: Duplex;
}

async function handshake(endpoint: SshEndpoint, options: SshOptions, jump?: SshConnection): Promise<Session> {
  const known = await loadKnownHosts(endpoint.knownHostsPaths);
  const authHandler = await authMethods(endpoint);
  // Loaded with the first SSH host, so that local runs and --help never load ssh2.
  const { Client } = await import('ssh2');
  const client = new Client();
  let hostKeyProblem: string | undefined;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const knownTypes = knownKeyTypes(known, endpoint.address, endpoint.port);

  const config: ConnectConfig = {
    host: endpoint.address,
    port: endpoint.port,
    username: endpoint.user,
    authHandler,
    readyTimeout: timeoutMs,
    keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: 3,
    ...(knownTypes.length ? { algorithms: { serverHostKey: preferKnown(knownTypes) } } : {}),
    hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
      const check = checkHostKey(known, endpoint.address, endpoint.port, key);
      const fp = keyFingerprint(key);
      const where = endpoint.port === 22 ? endpoint.address : `[${endpoint.address}]:${endpoint.port}`;
      if (check.kind === 'match') return verify(true);
      if (check.kind === 'revoked') {
        hostKeyProblem = `host key ${fp} of ${where} is marked @revoked in known_hosts; refusing to connect`;
        return verify(false);
      }
      if (check.kind === 'changed') {
        hostKeyProblem = `HOST KEY CHANGED for ${where}: it now presents ${fp}, which differs from the key in known_hosts. This may be an attack (or a reinstalled host): check it, then remove the old line with \`ssh-keygen -R ${where}\``;
        return verify(false);
      }
      if (knownTypes.length > 0) {
        hostKeyProblem = `host key of ${where} changed type: it presents ${fp} but known_hosts has only ${knownTypes.join(', ')} keys for it; check the host, then remove the old line with \`ssh-keygen -R ${where}\``;
        return verify(false);
      }
      if (!options.acceptNewHostKeys) {
        hostKeyProblem = `host key of ${where} is unknown (${fp}); it is not in ${endpoint.knownHostsPaths.join(' or ')}. Verify the fingerprint, then run again with --accept-new-host-keys to record it`;
        return verify(false);
      }
      const file = endpoint.knownHostsPaths[0];
      if (!file) return verify(false);
      appendKnownHost(file, endpoint.address, endpoint.port, key).then(
        () => verify(true),
        (cause: Error) => {
          hostKeyProblem = `could not record the host key in ${file}: ${cause.message}`;
          verify(false);
        },
      );
    },
  };

  // Everything that can wait is done: open the stream last, so no fault of it goes unheard.
  const sock: Duplex = jump ? await jump.forward(endpoint) : connect({ host: endpoint.address, port: endpoint.port });
  // ssh2 reports the stream's errors through the client; this listener only makes sure none goes
  // unheard should ssh2 never attach its own (connect throwing at once).
  sock.on('error', () => {});
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (reason: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(connectError(endpoint, hostKeyProblem ?? reason, cause));
    };
    // One fault can make ssh2 emit several errors (a reset, then "connection lost before
    // handshake"): this listener stays for the client's whole life, so none is ever unhandled.
    client.on('error', (cause: Error & { level?: string; code?: string }) => fail(explainConnectError(cause, endpoint, timeoutMs), cause));
    // A server that sends its banner and then hangs up makes no error, and ssh2 stops its timer.
    // Over a jump host's channel only 'end' comes (the channel stays half-open), so both count.
    const hungUp = () => fail(`${endpoint.address}:${endpoint.port} closed the connection during the SSH handshake`);
    client.on('end', hungUp);
    client.on('close', hungUp);
    client.once('ready', () => {
      settled = true;
      resolve({ client, sock });
    });
    try {
      client.connect({ ...config, sock });
    } catch (cause) {
      fail(`cannot connect to ${endpoint.address}:${endpoint.port}: ${(cause as Error).message}`, cause);
    }
  });
}

const HOST_KEY_ALGORITHMS: Record<string, readonly string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** ssh2's host key algorithms with those of the known key types first, as OpenSSH orders them. */
function preferKnown(types: readonly string[]): NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> {
  const all = Object.values(HOST_KEY_ALGORITHMS).flat();
  const first = types.flatMap((t) => HOST_KEY_ALGORITHMS[t] ?? []);
  return [...first, ...all.filter((a) => !first.includes(a))] as never;
}

function explainConnectError(cause: Error & { level?: string; code?: string }, e: SshEndpoint, timeoutMs: number): string {
  const where = `${e.address}:${e.port}`;
  if (cause.level === 'client-authentication') {
    const keys = e.privateKeyPaths.length ? `key ${e.privateKeyPaths.join(', ')}` : 'no key file';
    return `authentication as ${e.user} failed at ${where} (tried ${keys}${e.agent ? ' and ssh-agent' : ''}); the server did not accept the key`;
  }
  if (/Timed out while waiting for handshake/.test(cause.message) || cause.code === 'ETIMEDOUT')
    return `no SSH answer from ${where} within ${Math.round(timeoutMs / 1000)} s; the host is down or the port is filtered`;
  if (cause.code === 'ECONNREFUSED') return `connection refused by ${where}; is sshd running on that port?`;
  if (cause.code === 'EHOSTUNREACH' || cause.code === 'ENETUNREACH') return `no route to ${where}; the host is down or unreachable from here`;
  if (cause.code === 'ENOTFOUND' || cause.code === 'EAI_AGAIN') return `cannot resolve ${e.address}`;
  if (cause.code === 'ECONNRESET') return `connection to ${where} was reset during the handshake`;
  if (/before handshake/.test(cause.message)) return `${where} closed the connection before the SSH handshake`;
  // ssh2's parser rejects what came before or instead of the server's SSH banner.
  if (/header|identification|greeting|protocol version/i.test(cause.message)) return `${where} does not speak SSH (${cause.message}); is that the sshd port?`;
  return `cannot connect to ${where}: ${cause.message}`;
}

/** Why an established connection ended, in words. */
function explainLoss(err: Error & { code?: string; level?: string }): string {
  if (err.code === 'ECONNRESET') return 'the connection was reset';
  if (err.level === 'client-timeout') return 'no answer to keepalives';
  return err.message;
}

function connectError(e: SshEndpoint, reason: string, cause?: unknown): TackleError {
  return new TackleError({ phase: 'connect', host: e.name, reason, cause });
}

/** How long a closed connection waits for the server's goodbye before its socket is torn down. */
const CLOSE_GRACE_MS = 2_000;

class ChannelRefused extends Error {
  constructor(readonly error: TackleError) {
    super(error.message);
  }
}

/** An open SSH connection: its session takes one channel; spawn waits for a free channel rather than exceeding MaxSessions. */
export class SshConnection extends ExecConnection {
  readonly #client: Client;
  readonly #sock: Duplex;
  readonly #slots: Semaphore;
  readonly #jump: SshConnection | undefined;
  readonly #pending = new Set<(err: TackleError) => void>();
  #lost: TackleError | undefined;

  /** @internal Built by {@link connectSsh}, which owns the handshake. */
  constructor(
    readonly endpoint: SshEndpoint,
    session: Session,
    maxChannels: number,
    jump?: SshConnection,
  ) {
    super();
    this.#client = session.client;
    this.#sock = session.sock;
    this.#slots = new Semaphore(maxChannels);
    this.#jump = jump;
    const lose = (why: string, cause?: unknown) => {
      if (this.#lost) return;
      this.#lost = connectError(endpoint, why, cause);
      for (const fail of this.#pending) fail(this.#lost);
      this.#pending.clear();
      // ssh2 only half-closes after a protocol error; a peer that never answers would keep it open.
      this.#sock.destroy();
    };
    this.#client.on('error', (err: Error & { code?: string }) => lose(`connection to ${endpoint.address} lost: ${explainLoss(err)}`, err));
    // A jump host's channel ends without closing (it stays half-open): the end of input is the loss.
    const closed = () => lose(`connection to ${endpoint.address} closed`);
    this.#client.on('end', closed);
    this.#client.on('close', closed);
  }

  get host(): string {
    return this.endpoint.name;
  }

  spawn(command: Command): Promise<Spawned> {
    const { line, script } = framed(command);
    // The slot is held until the channel closes, not only while it opens.
    return new Promise((resolve, reject) => {
      this.#slots
        .use(async () => {
          // A refused channel open ran nothing, so it is safe to retry; a server with a lower
          // MaxSessions than ours (or one still freeing a slot) refuses some opens.
          for (let attempt = 0; ; attempt++) {
            try {
              const proc = await this.#open(line);
              proc.stdin.write(script);
              resolve(proc);
              await proc.exit.catch(() => {});
              return;
            } catch (err) {
              if (!(err instanceof ChannelRefused) || attempt >= 6) throw err instanceof ChannelRefused ? err.error : err;
              await new Promise((r) => setTimeout(r, 10 * 2 ** attempt));
            }
          }
        })
        .catch(reject);
    });
  }

  #open(line: Command): Promise<Spawned> {
    if (this.#lost) return Promise.reject(this.#lost);
    this.counters.channels++;
    this.counters.roundTrips++;
    let settle: { done: (exit: Exit) => void; fail: (err: TackleError) => void } | undefined;
    const exit = new Promise<Exit>((done, fail) => (settle = { done, fail }));
    exit.catch(() => {}); // a channel that never opened has no exit anyone waits for
    return new Promise((resolve, reject) => {
      // A connection lost while the channel opens or runs fails both.
      const lost = (err: TackleError) => {
        reject(err);
        settle?.fail(err);
      };
      this.#pending.add(lost);
      this.#client.exec(line.reveal(), (err, stream) => {
        if (err) {
          this.#pending.delete(lost);
          return reject(new ChannelRefused(connectError(this.endpoint, `could not open a channel on ${this.endpoint.address}: ${err.message}`, err)));
        }
        let exitCode: number | null = null;
        let signal: string | null = null;
        // Channels rarely emit errors (ssh2 reports through the client), but one unheard would end the process.
        stream.on('error', (cause: Error) => settle?.fail(connectError(this.endpoint, `channel to ${this.endpoint.address} failed: ${cause.message}`, cause)));
        stream.on('exit', (code: number | null, sig?: string) => {
          exitCode = code;
          signal = sig ?? null;
        });
        stream.on('close', () => {
          this.#pending.delete(lost);
          if (this.#lost && exitCode === null && signal === null) settle?.fail(this.#lost);
          else settle?.done({ exitCode, signal });
        });
        resolve({ stdin: stream, stdout: stream, stderr: stream.stderr, exit, kill: () => stream.close() });
      });
    });
  }

  /** Opens a TCP tunnel to another endpoint through this host (for ProxyJump). */
  forward(to: SshEndpoint): Promise<ClientChannel> {
    const unreachable = (why: string, cause?: unknown) => connectError(to, `jump host ${this.endpoint.name} could not reach ${to.address}:${to.port}: ${why}`, cause);
    if (this.#lost) return Promise.reject(unreachable(this.#lost.reason));
    return new Promise((resolve, reject) => {
      const fail = (err: TackleError) => reject(unreachable(err.reason, err));
      this.#pending.add(fail);
      this.#client.forwardOut('127.0.0.1', 0, to.address, to.port, (err, channel) => {
        this.#pending.delete(fail);
        if (err) reject(unreachable(err.message, err));
        else resolve(channel);
      });
    });
  }

  protected async closeTransport(): Promise<void> {
    this.#client.end();
    // A server that never answers the goodbye must not keep the socket, and so the process, alive.
    setTimeout(() => this.#sock.destroy(), CLOSE_GRACE_MS).unref();
    await this.#jump?.close();
  }
}
