// A TCP proxy on the controller that stands in front of a host's sshd and misbehaves the way broken
// networks and servers do, so tests can watch what tackle makes of each fault.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * What the proxy does to each connection:
 * - `reset-handshake`: reset (RST) as soon as the client has sent its first bytes, before any banner;
 * - `garbage-banner`: answer with bytes that are not an SSH banner, then stay connected even when the client hangs up;
 * - `silent`: accept and never say anything;
 * - `pass`: pass bytes both ways until {@link FaultProxy.drop} resets both sides;
 * - `double-fault`: a garbage banner, then a reset once the client reacts to it (two faults in a row).
 */
export type Fault = 'reset-handshake' | 'garbage-banner' | 'silent' | 'pass' | 'double-fault';

export interface FaultProxy {
  /** The ephemeral port it listens on. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Sockets still open (client sides and upstream sides). */
  readonly open: number;
  /** Resets both sides of every open connection (a connection dropped mid-command). */
  drop(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Not an SSH banner: a bare CR in the first line is a protocol error to any SSH client. */
export const GARBAGE = Buffer.from('\x00\xffnot ssh\r\x00\x01\x02', 'latin1');

/**
 * Starts a proxy in front of `target` (usually a lab host's sshd), listening on `listenHost`
 * (loopback by default; the lab bridge's address to be reached from lab hosts, e.g. through a jump host).
 *
 * @example
 * const proxy = await startFaultProxy({ host: lab.host('lab3').address, port: 22 }, 'reset-handshake');
 * t.teardown(() => proxy.close());
 */
export async function startFaultProxy(target: { host: string; port: number }, fault: Fault, listenHost = '127.0.0.1'): Promise<FaultProxy> {
  const open = new Set<Socket>();
  const track = (s: Socket): Socket => {
    open.add(s);
    s.on('close', () => open.delete(s));
    // Errors are the point here; they must not end the test process.
    s.on('error', () => {});
    return s;
  };
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    track(client);
    if (fault === 'pass') {
      const upstream = track(connect(target.port, target.host));
      client.pipe(upstream).pipe(client);
      // A clean close on one side closes the other; a reset is drop()'s job.
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      return;
    }
    // The other faults read and drop what the client sends, and notice when it hangs up.
    // allowHalfOpen: a client that hung up its side (as SSH clients do on a protocol error) is still there to be reset.
    client.resume();
    // A garbage server stays, as the worst of them do; the client must tear down its own side.
    if (fault === 'double-fault') client.once('end', () => client.resetAndDestroy());
    else if (fault !== 'garbage-banner') client.once('end', () => client.destroy());
    if (fault === 'reset-handshake') client.once('data', () => client.resetAndDestroy());
    else if (fault === 'garbage-banner' || fault === 'double-fault') client.write(GARBAGE);
    // 'silent': write nothing.
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return accepted;
    },
    get open() {
      return open.size;
    },
    drop() {
      for (const s of open) s.resetAndDestroy();
    },
    close() {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
