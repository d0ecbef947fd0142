// A tiny webhook receiver for tests: records every POST (path, content type, body) and answers
// 200, like a Slack incoming webhook. Listens on loopback by default (the backup scripts post
// from the controller), or on the lab bridge address for hosts to reach.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { poll } from './exec.ts';

export interface ReceivedPost {
  path: string;
  contentType: string | undefined;
  body: string;
}

export interface WebhookReceiver {
  /** `http://ADDRESS:PORT/PATH`: the URL to configure. */
  readonly url: string;
  /** Every POST so far, oldest first. */
  readonly posts: readonly ReceivedPost[];
  /** Resolves with the posts once there are at least `count`; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<readonly ReceivedPost[]>;
  /** Forgets the posts received so far. */
  clear(): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/**
 * Starts a receiver on `address` (default 127.0.0.1) on a free port.
 *
 * @example
 * const hook = await startWebhook();
 * t.teardown(() => hook.close());
 * const [post] = await hook.waitFor(1);
 */
export async function startWebhook(address = '127.0.0.1', path = '/hooks/backup'): Promise<WebhookReceiver> {
  const posts: ReceivedPost[] = [];
  const server = createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    readBody(req).then(
      (body) => {
        posts.push({ path: req.url ?? '', contentType: req.headers['content-type'], body });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      },
      () => res.writeHead(400).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}${path}`,
    posts,
    waitFor: (count, timeoutMs = 10_000) =>
      poll(async () => (posts.length >= count ? [...posts] : undefined), {
        timeoutMs,
        onTimeout: () => new Error(`the webhook received ${posts.length} POST(s) within ${timeoutMs} ms, expected ${count}`),
      }),
    clear: () => {
      posts.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
