// An S3-compatible server standing in for Cloudflare R2 in backup tests: s3rver (npm, v3) in this
// process, listening on the lab bridge so that lab hosts reach it. It can be stopped and started
// again on the same port with the same data, to simulate an outage.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of s3rver's class this helper uses (the package ships no types). */
interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverClass = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

/** s3rver's account registry (one per process): key pairs it accepts. */
interface S3rverAccounts {
  DUMMY_ACCOUNT: { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
}

export interface S3Server {
  /** `http://ADDRESS:PORT`, the endpoint for rclone's `endpoint =`. */
  readonly endpoint: string;
  readonly address: string;
  readonly port: number;
  readonly bucket: string;
  /** Where s3rver keeps the objects on this machine (kept across stop/start). */
  readonly directory: string;
  /** Keys made up for this server and accepted by it. */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Stops listening at once, dropping open connections: the endpoint refuses connections. */
  stop(): Promise<void>;
  /** Listens again on the same address and port, with the same data. */
  start(): Promise<void>;
  /**
   * The object keys in the bucket below `prefix`, sorted, read from s3rver's store on disk
   * (independent of any S3 client). s3rver stores object `a/b` as `a/b._S3rver_object`.
   */
  keys(prefix?: string): Promise<string[]>;
  /** The bytes of an object, from s3rver's store on disk. */
  object(key: string): Promise<Buffer>;
  /** Stops the server (if running) and removes its data. */
  close(): Promise<void>;
}

/**
 * Starts s3rver on `address` (the lab's bridge address) with one bucket.
 *
 * @example
 * const s3 = await startS3(lab.bridgeAddress, 'backups');
 * t.teardown(() => s3.close());
 */
export async function startS3(address: string, bucket: string): Promise<S3Server> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as S3rverClass;
  // Keys of our own, distinctive, so that a test can prove they never show in any output. (s3rver
  // checks the key id; it does not verify v4 signatures, which rclone uses.)
  const accessKeyId = `TACKLE${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = `tackle-secret-${randomBytes(12).toString('hex')}`;
  (require('s3rver/lib/models/account') as S3rverAccounts).DUMMY_ACCOUNT.createKeyPair(accessKeyId, secretAccessKey);
  const directory = await mkdtemp(join(tmpdir(), 'tackle-s3-'));
  let port = 0;
  let server: S3rverInstance | undefined;

  const start = async (): Promise<void> => {
    if (server) return;
    const instance = new S3rver({ address, port, silent: true, directory, configureBuckets: [{ name: bucket }] });
    const bound = await instance.run();
    port = bound.port;
    server = instance;
  };
  const stop = async (): Promise<void> => {
    const instance = server;
    if (!instance) return;
    server = undefined;
    const closed = instance.close();
    // close() waits for keep-alive connections; an outage drops them.
    instance.httpServer?.closeAllConnections();
    await closed;
  };
  await start();

  const keys = async (prefix = ''): Promise<string[]> => {
    const root = join(directory, bucket);
    const entries = (await readdir(root, { recursive: true, withFileTypes: true }).catch(() => [])) as import('node:fs').Dirent[];
    const suffix = '._S3rver_object';
    return entries
      .filter((e) => e.isFile() && e.name.endsWith(suffix))
      .map((e) => join(e.parentPath ?? e.path, e.name).slice(root.length + 1, -suffix.length))
      .filter((k) => k.startsWith(prefix))
      .sort();
  };

  return {
    object: (key) => readFile(join(directory, bucket, `${key}._S3rver_object`)),
    get endpoint() {
      return `http://${address}:${port}`;
    },
    address,
    get port() {
      return port;
    },
    bucket,
    directory,
    accessKeyId,
    secretAccessKey,
    stop,
    start,
    keys,
    close: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
