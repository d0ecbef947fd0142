// Transport faults during the SSH handshake, from a fault-injecting proxy on loopback: each one
// rejects connectSsh with a plain connect error, tackle hangs up its side, and no later 'error'
// from ssh2 (a reset after a protocol error, "connection lost before handshake") is left unheard,
// which would end the whole process.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { connectSsh, type SshEndpoint } from '../../../lib/connection/ssh.ts';
import { TackleError } from '../../../lib/errors.ts';
import { startFaultProxy, type Fault } from '../../../lab/fault-proxy.ts';
import { tempDir } from '../../support/temp-dir.ts';

const dir = tempDir('ssh-faults');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'key')]);
writeFileSync(join(dir, 'known_hosts'), '');
const endpoint = (port: number): SshEndpoint => ({
  name: 'faulty',
  address: '127.0.0.1',
  port,
  user: 'root',
  privateKeyPaths: [join(dir, 'key')],
  knownHostsPaths: [join(dir, 'known_hosts')],
});
const TIMEOUT_MS = 1500;

const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

async function until(what: string, ok: () => boolean, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(20);
  }
}

const cases: Array<[Fault, RegExp]> = [
  ['reset-handshake', /^connection to 127\.0\.0\.1:\d+ was reset during the handshake$/],
  ['garbage-banner', /^127\.0\.0\.1:\d+ does not speak SSH \(.*\); is that the sshd port\?$/],
  ['silent', /^no SSH answer from 127\.0\.0\.1:\d+ within 2 s; the host is down or the port is filtered$/],
  ['double-fault', /^127\.0\.0\.1:\d+ does not speak SSH/],
];

for (const [fault, reason] of cases) {
  t.test(`${fault}: a plain connect error, the socket torn down, no second error unheard`, async (t) => {
    // Nothing listens upstream: none of these faults passes bytes on.
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: 9 }, fault);
    t.teardown(() => proxy.close());
    const started = Date.now();
    const err = await connectSsh(endpoint(proxy.port), { connectTimeoutMs: TIMEOUT_MS }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof TackleError, 'a TackleError');
    t.match(err, { phase: 'connect', host: 'faulty', reason });
    t.ok(Date.now() - started < TIMEOUT_MS + 1000, 'within the connect timeout');
    t.equal(proxy.accepted, 1);
    // Only the proxy's own sockets may remain: a half-closed socket of tackle's would keep the CLI alive.
    await until('tackle closed its socket', () => tcpSockets() === proxy.open, 2000);
    t.pass('tackle closed its socket');
    // Late errors from ssh2 arrive on the next turns of the event loop; an unheard one ends this process.
    await sleep(200);
  });
}

t.test('a server that sends its banner and hangs up: a connect error, not a wait forever', async (t) => {
  const server = createServer((s) => s.on('error', () => {}).resume().end('SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const started = Date.now();
  const err = await connectSsh(endpoint(port), { connectTimeoutMs: 60_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { phase: 'connect', host: 'faulty', reason: `127.0.0.1:${port} closed the connection during the SSH handshake` });
  t.ok(Date.now() - started < 5000, 'at once, not after the connect timeout');
});

t.test('nothing listening: connection refused, in words', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const err = await connectSsh(endpoint(port), { connectTimeoutMs: TIMEOUT_MS }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { phase: 'connect', host: 'faulty', reason: `connection refused by 127.0.0.1:${port}; is sshd running on that port?` });
  await sleep(200);
});
