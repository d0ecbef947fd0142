// The Debian root file systems lab hosts boot from: Debian 12 (bookworm, the default) or Debian 13
// (trixie). Each is built once per machine with debootstrap (about 1 and 4 minutes) and cached
// outside the repo; hosts mount it read-only as the lower layer of an overlay, so starting one
// costs no copy.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { check, lastLines } from './exec.ts';
import { unmountUnder } from './system.ts';

/** Where the bookworm image lives unless `TACKLE_LAB_CACHE` or `ensureImage({ dir })` says otherwise. */
export const DEFAULT_IMAGE_DIR = '/var/cache/tackle-lab/bookworm';

/** Debian releases the lab builds images of. */
export type Suite = 'bookworm' | 'trixie';

/** Password of the `ops` user, who may sudo only with it. */
export const OPS_PASSWORD = 'ops-password';

const PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'sudo', 'iproute2', 'ca-certificates', 'curl', 'procps', 'python3'];

/** Written last into a finished image; an image whose stamp differs from the recipe's is rebuilt. */
const STAMP_FILE = 'etc/tackle-lab-image';

/** Bump when the recipe changes in a way the recipe hash cannot see (e.g. a fix in this file's logic). */
const IMAGE_VERSION = 1;

export interface Mirrors {
  /** Debian archive, e.g. http://deb.debian.org/debian */
  main: string;
  /** Security archive, e.g. http://deb.debian.org/debian-security */
  security: string;
}

export interface ImageOptions {
  /** Debian release; default `'bookworm'`. */
  suite?: Suite;
  /** Image directory; default {@link imageDir} of the suite. */
  dir?: string;
  /** Default: read from the controller's apt sources ({@link readMirrors}). */
  mirrors?: Mirrors;
  log?: (line: string) => void;
}

/**
 * Where a suite's image is cached: bookworm at `TACKLE_LAB_CACHE` or {@link DEFAULT_IMAGE_DIR},
 * every other suite beside it in a directory named after the suite.
 *
 * @example imageDir('trixie'); // '/var/cache/tackle-lab/trixie'
 */
export function imageDir(suite: Suite): string {
  const bookworm = process.env.TACKLE_LAB_CACHE ?? DEFAULT_IMAGE_DIR;
  return suite === 'bookworm' ? bookworm : join(dirname(bookworm), suite);
}

/**
 * Returns the directory of a finished image, building it first when it is missing or was built
 * from another recipe. Safe to call from several processes at once: one builds, the others wait.
 *
 * @example const image = await ensureImage({ suite: 'trixie', log: console.error }); // '/var/cache/tackle-lab/trixie'
 */
export async function ensureImage(opts: ImageOptions = {}): Promise<string> {
  const suite = opts.suite ?? 'bookworm';
  const dir = opts.dir ?? imageDir(suite);
  const log = opts.log ?? (() => {});
  const mirrors = opts.mirrors ?? (await readMirrors());
  const recipe = imageRecipe(suite, mirrors);
  const stamp = imageStamp(suite, mirrors);
  if ((await readStamp(dir)) === stamp) return dir;

  await mkdir(dirname(dir), { recursive: true });
  return withFileLock(`${dir}.lock`, log, async () => {
    // Another process may have finished the image while this one waited for the lock.
    if ((await readStamp(dir)) === stamp) return dir;
    await removeLeftovers(dir);
    const started = Date.now();
    log(`image: building ${suite} in ${dir} from ${mirrors.main} (${suite === 'bookworm' ? 'about a minute' : 'several minutes'})`);
    // Built beside its final place and renamed into it, so a crash never leaves a half image there.
    const tmp = await mkdtemp(`${dir}.tmp-`);
    await check('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, suite, tmp, mirrors.main], {
      timeoutMs: 20 * 60_000,
    }).catch(async (err: unknown) => {
      // debootstrap prints little; the reason is in its own log (kept: the next build removes it).
      const detail = await readFile(join(tmp, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
      throw new Error(`${String(err)}\n${tmp}/debootstrap/debootstrap.log ends with:\n${lastLines(detail, 20)}`, { cause: err });
    });
    for (const [path, file] of Object.entries(recipe.files)) {
      await writeFile(join(tmp, path), file.content);
      await chmod(join(tmp, path), file.mode ?? 0o644);
    }
    await rm(join(tmp, 'etc/apt/sources.list'), { force: true });
    await check('chroot', [tmp, '/bin/sh', '-eu'], { input: recipe.script });
    await writeFile(join(tmp, STAMP_FILE), stamp);
    // Labs still running on the replaced image lose their lower layer; a recipe change is rare
    // enough on one machine that this is simpler than reference counting.
    if (await exists(dir)) await rename(dir, `${dir}.tmp-old`);
    await rename(tmp, dir);
    await removeLeftovers(dir);
    log(`image: built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return dir;
  });
}

/**
 * The stamp of an image built from this recipe: the recipe version and the hash of everything
 * the recipe decides. The suite shows in it only through the apt sources, so bookworm's stamp (and
 * every machine's cached bookworm image) stayed the same when suites came.
 *
 * @example imageStamp('trixie', await readMirrors()); // '1 ' + a sha256 in hex + '\n'
 */
export function imageStamp(suite: Suite, mirrors: Mirrors): string {
  return `${IMAGE_VERSION} ${createHash('sha256').update(JSON.stringify(imageRecipe(suite, mirrors))).digest('hex')}\n`;
}

async function readStamp(dir: string): Promise<string | undefined> {
  return readFile(join(dir, STAMP_FILE), 'utf8').catch(() => undefined);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Half-built images of crashed builds and the image a rebuild replaced. Call only under the lock. */
async function removeLeftovers(dir: string): Promise<void> {
  const prefix = `${basename(dir)}.tmp-`;
  for (const entry of await readdir(dirname(dir))) {
    if (!entry.startsWith(prefix)) continue;
    const path = join(dirname(dir), entry);
    // debootstrap mounts /proc and /sys inside its target; a crash can leave them mounted.
    await unmountUnder(path);
    await rm(path, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` while holding an exclusive flock(1) on `lockFile`. flock keeps the lock while its
 * `cat` reads our stdin; if this process dies the pipe closes and the kernel drops the lock, so a
 * crashed builder never blocks the next one (a pid-in-a-file lock cannot promise that).
 */
export async function withFileLock<T>(lockFile: string, log: (line: string) => void, fn: () => Promise<T>): Promise<T> {
  const holder = spawn('flock', ['--exclusive', lockFile, 'sh', '-c', 'echo locked && exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const waiting = setTimeout(() => log(`image: waiting for another process that is building it (${lockFile})`), 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      holder.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      holder.stdout.once('data', () => resolve());
      holder.once('error', (err) => reject(new Error(`cannot run flock: ${err.message}`, { cause: err })));
      holder.once('exit', (code) => reject(new Error(`flock ${lockFile} exited with code ${code}: ${stderr.trim()}`)));
    });
  } finally {
    clearTimeout(waiting);
  }
  try {
    return await fn();
  } finally {
    holder.stdin.end();
  }
}

/**
 * The Debian mirrors the controller's apt uses: the first `URIs:` (or `deb` line) of its sources
 * for the archive, and the first source with a `*-security` suite for security updates.
 *
 * @example await readMirrors(); // { main: 'http://deb.debian.org/debian', security: 'http://deb.debian.org/debian-security' }
 */
export async function readMirrors(aptDir = '/etc/apt'): Promise<Mirrors> {
  // apt reads sources.list first, then sources.list.d in name order.
  const files = [join(aptDir, 'sources.list')];
  const listDir = join(aptDir, 'sources.list.d');
  for (const name of (await readdir(listDir).catch(() => [])).sort()) files.push(join(listDir, name));
  const sources: { uri: string; suites: string[] }[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (file.endsWith('.sources')) sources.push(...parseDeb822(text));
    else if (file.endsWith('.list')) sources.push(...parseOneLine(text));
  }
  const main = sources.find((s) => !s.suites.some(isSecuritySuite));
  if (!main) throw new Error(`no Debian mirror found in the apt sources under ${aptDir}`);
  const security = sources.find((s) => s.suites.some(isSecuritySuite))?.uri ?? `${main.uri.replace(/\/+$/, '')}-security`;
  return { main: main.uri, security };
}

function isSecuritySuite(suite: string): boolean {
  return suite.endsWith('-security');
}

function parseDeb822(text: string): { uri: string; suites: string[] }[] {
  return text.split(/\n\s*\n/).flatMap((stanza) => {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match?.[1] && match[2] !== undefined) fields.set(match[1].toLowerCase(), match[2].trim());
    }
    const uri = fields.get('uris')?.split(/\s+/)[0];
    const enabled = fields.get('enabled') !== 'no';
    const binary = (fields.get('types') ?? '').split(/\s+/).includes('deb');
    return uri && enabled && binary ? [{ uri, suites: (fields.get('suites') ?? '').split(/\s+/) }] : [];
  });
}

function parseOneLine(text: string): { uri: string; suites: string[] }[] {
  return text.split('\n').flatMap((line) => {
    // deb [ option=value ... ] uri suite component...
    const match = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    return match?.[1] && match[2] ? [{ uri: match[1], suites: [match[2]] }] : [];
  });
}

interface ImageFile {
  content: string;
  mode?: number;
}

/** Everything that decides the image's content; its hash is the image's stamp. */
function imageRecipe(suite: Suite, mirrors: Mirrors): { packages: string[]; mirrors: Mirrors; files: Record<string, ImageFile>; script: string } {
  const files: Record<string, ImageFile> = {
    'etc/apt/sources.list.d/debian.sources': {
      content: [
        `Types: deb\nURIs: ${mirrors.main}\nSuites: ${suite} ${suite}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
        `Types: deb\nURIs: ${mirrors.security}\nSuites: ${suite}-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
      ].join('\n'),
    },
    // Quiet, never-asking apt for scripted use. The proxy is per lab, so it is written per host.
    'etc/apt/apt.conf.d/90tackle-lab': {
      content: [
        '// tackle test lab: apt for scripted, unattended use.',
        'quiet "1";',
        'APT::Color "0";',
        'Dpkg::Use-Pty "0";',
        'Dpkg::Options { "--force-confdef"; "--force-confold"; };',
        'Acquire::Languages "none";',
        'Acquire::Retries "3";',
        '// The mirror may serve a dated snapshot whose Release files are past their Valid-Until.',
        'Acquire::Check-Valid-Until "false";',
        '',
      ].join('\n'),
    },
    'etc/ssh/sshd_config.d/tackle-lab.conf': {
      content: [
        '# tackle test lab: the controller writes one ed25519 host key per host before boot,',
        '# so only that key is offered (and no errors about the missing others).',
        'HostKey /etc/ssh/ssh_host_ed25519_key',
        'UseDNS no',
        '',
      ].join('\n'),
    },
    'etc/sudoers.d/admin': { content: 'admin ALL=(ALL:ALL) NOPASSWD: ALL\n', mode: 0o440 },
    // Each host writes its own before boot; an empty one here would make systemd treat every
    // boot as a first boot.
    'etc/machine-id': { content: '' },
    'etc/hosts': { content: '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' },
  };
  const script = `
    # Each host gets its own host key from the controller (which writes it into known_hosts).
    rm -f /etc/ssh/ssh_host_*
    systemctl enable ssh.service
    # These timers would take the dpkg lock at random moments in the middle of a test.
    systemctl disable apt-daily.timer apt-daily-upgrade.timer
    useradd --create-home --shell /bin/bash admin
    useradd --create-home --shell /bin/bash --groups sudo ops
    echo 'ops:${OPS_PASSWORD}' | chpasswd
    echo 'debconf debconf/frontend select Noninteractive' | debconf-set-selections
    # Empty authorized_keys with the right owners: each host only fills them in.
    for user in root admin ops; do
      home=$(getent passwd "$user" | cut -d: -f6)
      install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
      touch "$home/.ssh/authorized_keys"
      chown "$user:$user" "$home/.ssh/authorized_keys"
      chmod 0600 "$home/.ssh/authorized_keys"
    done
    ln -sf /etc/machine-id /var/lib/dbus/machine-id
    apt-get clean
    rm -rf /var/lib/apt/lists/*
  `;
  return { packages: PACKAGES, mirrors, files, script };
}
