// A tiny HTTP and WebSocket upstream to run ON a lab host behind nginx (python3 is in the image;
// standard library only). Every request is answered with JSON echoing what reached it, so a test on
// the controller sees what the proxy passed on; a WebSocket upgrade gets a real 101 handshake
// followed by one text frame carrying the same JSON. The client side (plain requests, a WebSocket
// handshake) is here too, for tests on the controller.
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

/** Where tasks put the script on a host. */
export const UPSTREAM_PATH = '/usr/local/lib/tackle-upstream.py';

/** The upstream program: `python3 tackle-upstream.py PORT` listens on 127.0.0.1:PORT. */
export const UPSTREAM_SCRIPT = `#!/usr/bin/python3
# Written by tackle's tests: echoes each request as JSON; answers WebSocket upgrades.
import base64, hashlib, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

class Echo(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def echo(self):
        return json.dumps({'method': self.command, 'path': self.path, 'headers': {k.lower(): v for k, v in self.headers.items()}}).encode()

    def do_GET(self):
        if self.headers.get('Upgrade', '').lower() == 'websocket':
            accept = base64.b64encode(hashlib.sha1((self.headers['Sec-WebSocket-Key'] + GUID).encode()).digest()).decode()
            self.send_response(101, 'Switching Protocols')
            self.send_header('Upgrade', 'websocket')
            self.send_header('Connection', 'Upgrade')
            self.send_header('Sec-WebSocket-Accept', accept)
            self.end_headers()
            body = self.echo()
            # One unmasked text frame (server to client), 16-bit length.
            self.wfile.write(bytes([0x81, 126, len(body) >> 8, len(body) & 0xFF]) + body)
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.echo()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Echo).serve_forever()
`;

/**
 * A systemd unit running the upstream on `port`.
 *
 * @example files.file({ path: '/etc/systemd/system/tackle-upstream.service', content: upstreamUnit(8000) })
 */
export function upstreamUnit(port: number): string {
  return ['[Unit]', 'Description=tackle test upstream', 'After=network.target', '', '[Service]', `ExecStart=/usr/bin/python3 ${UPSTREAM_PATH} ${port}`, 'Restart=on-failure', '', '[Install]', 'WantedBy=multi-user.target', ''].join('\n');
}

/** What the controller got back. */
export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Over HTTPS: the serial number (upper-case hex) and names of the certificate the server sent. */
  certificate?: { serial: string; subjectAltName: string };
}

export interface RequestOptions {
  /** The lab host's address. */
  address: string;
  port?: number;
  path?: string;
  /** The Host header (and, over HTTPS, the SNI name the certificate is checked against). */
  host: string;
  /** Use HTTPS, trusting only this CA (PEM). */
  ca?: string;
  headers?: Record<string, string>;
}

/**
 * One request to a lab host, as a client on the controller would make it; never follows redirects.
 *
 * @example const r = await request({ address: lab.host('lab1').address, host: 'app.test', path: '/x' });
 */
export function request(opts: RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const common = { host: opts.address, path: opts.path ?? '/', headers: { Host: opts.host, ...opts.headers }, timeout: 10_000, agent: false as const };
    const onResponse = (res: IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      const peer = opts.ca ? (res.socket as TLSSocket).getPeerCertificate() : undefined;
      const certificate = peer ? { certificate: { serial: peer.serialNumber, subjectAltName: peer.subjectaltname ?? '' } } : {};
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ...certificate }));
    };
    const req = opts.ca
      ? httpsRequest({ ...common, port: opts.port ?? 443, ca: opts.ca, servername: opts.host }, onResponse)
      : httpRequest({ ...common, port: opts.port ?? 80 }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${opts.address} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket opening handshake and what came back: 101 and the upstream's first frame, or the refusal. */
export interface Handshake {
  status: number;
  headers: IncomingHttpHeaders;
  /** Sec-WebSocket-Accept as RFC 6455 requires it for the key sent. */
  expectedAccept: string;
  /** The payload of the first text frame after the handshake (the upstream's echo). */
  firstFrame?: string;
}

/**
 * Opens a real WebSocket (HTTP/1.1 Upgrade) through nginx and reads the upstream's first frame.
 *
 * @example const hs = await websocket({ address, host: 'app.test', path: '/ws' }); // hs.status === 101
 */
export function websocket(opts: RequestOptions): Promise<Handshake> {
  const key = randomBytes(16).toString('base64');
  const expectedAccept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  return new Promise((resolve, reject) => {
    const headers = { Host: opts.host, Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...opts.headers };
    const common = { host: opts.address, path: opts.path ?? '/', headers, timeout: 10_000, agent: false as const };
    const req = opts.ca ? httpsRequest({ ...common, port: opts.port ?? 443, ca: opts.ca, servername: opts.host }) : httpRequest({ ...common, port: opts.port ?? 80 });
    req.on('upgrade', (res, socket, head) => {
      let data = head;
      const done = (): void => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, expectedAccept, ...(frame(data) === undefined ? {} : { firstFrame: frame(data) }) });
      };
      if (frame(data) !== undefined) return done();
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        if (frame(data) !== undefined) done();
      });
      socket.on('end', done);
      socket.on('error', done);
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, expectedAccept });
    });
    req.on('timeout', () => req.destroy(new Error(`no WebSocket answer from ${opts.address} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The payload of a complete unmasked text frame at the start of `data`, or undefined. */
function frame(data: Buffer): string | undefined {
  if (data.length < 2 || data[0] !== 0x81) return undefined;
  const short = (data[1] as number) & 0x7f;
  const [length, start] = short === 126 ? [data.length >= 4 ? data.readUInt16BE(2) : Infinity, 4] : [short, 2];
  return data.length >= start + length ? data.subarray(start, start + length).toString('utf8') : undefined;
}
