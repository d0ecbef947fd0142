// Docker images for lab hosts, without a registry: a root file system built on this machine,
// packed as a tarball and cached outside the repo; a host loads it with `docker import`. Docker
// hosts of a lab ({@link StartLabOptions.docker}) see the cache read-only, so loading copies
// nothing over ssh.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { check, lastLines, type RunResult } from './exec.ts';
import { readMirrors, withFileLock, type Mirrors } from './image.ts';
import { unmountUnder } from './system.ts';

/** The tarballs on this machine. */
export const DOCKER_IMAGE_DIR = '/var/cache/tackle-lab/docker-images';
/** Where a lab's docker hosts see {@link DOCKER_IMAGE_DIR} (read-only). */
export const HOST_DOCKER_IMAGE_DIR = '/var/cache/tackle-lab-images';

/** A cached image tarball and the name it is imported under. */
export interface DockerImage {
  /** `NAME:TAG` for `docker import`. */
  readonly ref: string;
  /** The tarball's file name in {@link DOCKER_IMAGE_DIR}. */
  readonly file: string;
}

/** Bump when a recipe below changes in a way its stamp cannot see. */
const RECIPE_VERSION = 1;

interface Recipe {
  ref: string;
  /** Everything that decides the content; its hash is the stamp. */
  inputs: unknown;
  /** Fills the empty root directory. */
  build(root: string): Promise<void>;
}

/**
 * Returns the tarball for `recipe`, building it first when it is missing or stale. Safe from
 * several processes at once (one builds under a lock, the others wait); built beside its final
 * name and renamed into place, so a crash never leaves half a tarball.
 */
async function ensureTarball(recipe: Recipe, log: (line: string) => void): Promise<DockerImage> {
  const file = `${recipe.ref.replace(/[^a-z0-9]+/g, '-')}.tar`;
  const tarball = join(DOCKER_IMAGE_DIR, file);
  const stampFile = `${tarball}.stamp`;
  const stamp = `${RECIPE_VERSION} ${createHash('sha256').update(JSON.stringify(recipe.inputs)).digest('hex')}\n`;
  const current = () => readFile(stampFile, 'utf8').catch(() => undefined);
  if ((await current()) === stamp) return { ref: recipe.ref, file };
  await mkdir(DOCKER_IMAGE_DIR, { recursive: true });
  return withFileLock(`${tarball}.lock`, log, async () => {
    if ((await current()) === stamp) return { ref: recipe.ref, file };
    const started = Date.now();
    log(`docker image ${recipe.ref}: building ${tarball}`);
    const tmp = await mkdtemp(`${tarball}.tmp-`);
    try {
      const root = join(tmp, 'root');
      await mkdir(root);
      await recipe.build(root);
      await check('tar', ['--numeric-owner', '-C', root, '-cf', join(tmp, file), '.'], { timeoutMs: 10 * 60_000 });
      await rm(stampFile, { force: true });
      await rename(join(tmp, file), tarball);
      await writeFile(stampFile, stamp);
    } finally {
      await unmountUnder(tmp);
      await rm(tmp, { recursive: true, force: true });
    }
    log(`docker image ${recipe.ref}: built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return { ref: recipe.ref, file };
  });
}

/**
 * A tiny image: Debian's busybox-static binary and its applet links in /bin (about 2 MB).
 *
 * @example const busybox = await ensureBusyboxImage(); // { ref: 'busybox:lab', file: 'busybox-lab.tar' }
 */
export async function ensureBusyboxImage(opts: { log?: (line: string) => void } = {}): Promise<DockerImage> {
  return ensureTarball(
    {
      ref: 'busybox:lab',
      inputs: { package: 'busybox-static' },
      build: async (root) => {
        const debs = await mkdtemp(join(root, '..', 'deb-'));
        // `apt-get download` fetches into the working directory; it needs no root and installs nothing.
        await check('sh', ['-c', 'cd "$1" && apt-get download busybox-static', 'sh', debs], { timeoutMs: 5 * 60_000 });
        await check('sh', ['-c', 'dpkg-deb -x "$1"/busybox-static_*.deb "$1/x"', 'sh', debs]);
        await mkdir(join(root, 'bin'));
        for (const dir of ['tmp', 'etc', 'root']) await mkdir(join(root, dir));
        await check('cp', [join(debs, 'x/bin/busybox'), join(root, 'bin/busybox')]);
        await check('chroot', [root, '/bin/busybox', '--install', '-s', '/bin']);
        await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
        await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
      },
    },
    opts.log ?? (() => {}),
  );
}

/**
 * PostgreSQL 15 as Debian 12 ships it (debootstrap minbase plus `postgresql`, about 180 MB): local
 * connections trusted, listening on every address (so a published port answers), the cluster
 * `15/main` initialised. Run it as in {@link POSTGRES_RUN}.
 *
 * @example const pg = await ensurePostgresImage({ log: console.error }); // { ref: 'pg:15', … }
 */
export async function ensurePostgresImage(opts: { log?: (line: string) => void; mirrors?: Mirrors } = {}): Promise<DockerImage> {
  const mirrors = opts.mirrors ?? (await readMirrors());
  const script = `
    sed -i -E 's/(peer|scram-sha-256|md5)$/trust/' /etc/postgresql/15/main/pg_hba.conf
    echo "listen_addresses = '*'" >> /etc/postgresql/15/main/postgresql.conf
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    apt-get clean
    rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
  `;
  return ensureTarball(
    {
      ref: 'pg:15',
      inputs: { suite: 'bookworm', mirror: mirrors.main, packages: ['postgresql'], script },
      build: async (root) => {
        await check('debootstrap', ['--variant=minbase', '--include=postgresql', 'bookworm', root, mirrors.main], { timeoutMs: 20 * 60_000 }).catch(async (err: unknown) => {
          const detail = await readFile(join(root, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
          throw new Error(`${String(err)}\ndebootstrap.log ends with:\n${lastLines(detail, 20)}`, { cause: err });
        });
        await unmountUnder(root);
        await check('chroot', [root, '/bin/sh', '-eu'], { input: script });
      },
    },
    opts.log ?? (() => {}),
  );
}

/**
 * The arguments after `docker run -d --name NAME` that start PostgreSQL in {@link ensurePostgresImage}'s image.
 *
 * @example await lab.ssh('lab1', `docker run -d --name pg ${POSTGRES_RUN}`);
 */
export const POSTGRES_RUN = '-u postgres pg:15 /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/postgresql.conf';

/**
 * Loads cached images into a docker host of a lab (`docker import` from the read-only cache).
 *
 * @example await importImages((cmd) => lab.ssh('lab1', cmd), [await ensureBusyboxImage()]);
 */
export async function importImages(ssh: (command: string) => Promise<RunResult>, images: readonly DockerImage[]): Promise<void> {
  for (const image of images) {
    const result = await ssh(`docker import ${HOST_DOCKER_IMAGE_DIR}/${image.file} ${image.ref}`);
    if (result.code !== 0) throw new Error(`docker import ${image.ref} failed (exit ${result.code}): ${lastLines(result.stderr, 10)}`);
  }
}
