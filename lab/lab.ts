// The real-host test lab: Debian 12 hosts booted with systemd-nspawn, each in its own network
// namespace on a per-lab bridge, reachable from this machine over SSH at 10.200.N.(10+i).
//
// Everything a lab owns is recorded in /run/tackle-lab/N/ (its state file and pid files) and named
// `tkl-N-*` (bridge, veths, namespaces, nspawn machines), so any process can take it down again:
// the test that started it, a reaper after a crash, or `npm run lab -- down`. The machine is shared
// (other checkouts, other people's test runs), so the state file also records the checkout and the
// process that started the lab, and nothing is ever removed by its name alone.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, CommandError, delay, lastLines, poll, run, type RunResult } from './exec.ts';
import { DOCKER_IMAGE_DIR, HOST_DOCKER_IMAGE_DIR } from './docker-images.ts';
import { makeFresh } from './fresh.ts';
import { ensureImage, type ImageOptions } from './image.ts';
import { cgroupPids, childPids, processArgv, processMounts, processStartTime, removeCgroup, signal, systemdCgroupRoots, unmountUnder, waitForExit } from './system.ts';
import type { HostSpec } from '../lib/index.ts';

export { DEFAULT_IMAGE_DIR, ensureImage, OPS_PASSWORD, readMirrors, type ImageOptions, type Mirrors } from './image.ts';
export type { RunResult } from './exec.ts';

/** Where labs record themselves; one directory per lab index. */
export const STATE_ROOT = '/run/tackle-lab';
const PROXY_PORT = 3142;
const MAX_HOSTS = 50;
/** Lab N lives in 10.200.N.0/24, so N runs from 0 to 254. */
const MAX_LABS = 255;
/** Prefix of every bridge, veth, namespace and nspawn machine a lab creates. */
const NAME_PREFIX = 'tkl-';
/** Prefix of every lab's temporary directory under the OS temp dir. */
const TMP_PREFIX = 'tackle-lab-';
/** Parent of the hosts' cgroups in each systemd cgroup hierarchy. */
const CGROUP_PARENT = 'tackle-lab';

/** The checkout this module belongs to (its real path); every lab records the one it was started from. */
export const CHECKOUT = realpathSync(fileURLToPath(new URL('..', import.meta.url)));

/** A lab host as a test or an inventory sees it. */
export interface LabHost {
  name: string;
  address: string;
  port: 22;
}

export interface SshOptions {
  /** Remote user; default `root`. The lab's key is authorized for root, admin and ops. */
  user?: string;
  /** Written to the remote command's stdin. */
  input?: string;
}

export interface StartLabOptions {
  /** How many hosts, 1 to 50. */
  hosts: number;
  /** Host names are `${name}1`, `${name}2`…; default `lab`. */
  name?: string;
  /** Progress lines (image build, timings). The lab never prints by itself. */
  log?: (line: string) => void;
  /** Keep the lab after this process exits (the CLI's `up`); default: taken down on exit. */
  keepAfterExit?: boolean;
  /** How long each host may take to answer ssh; default 60 s. */
  bootTimeoutMs?: number;
  image?: Omit<ImageOptions, 'log'>;
  /**
   * Hosts that can run Docker (install `docker.io` on them): nspawn gets the settings dockerd
   * needs, each host a `/var/lib/docker` on the controller's disk (removed with the lab), and the
   * cached image tarballs of {@link DOCKER_IMAGE_DIR} read-only at {@link HOST_DOCKER_IMAGE_DIR}.
   */
  docker?: boolean;
  /** Hosts as a provider delivers them: apt's daily jobs running at boot, debconf asking (see fresh.ts). */
  fresh?: boolean;
}

/** A running lab. Any process can get one for an existing lab with {@link listLabs}. */
export interface Lab {
  /** N in 10.200.N.0/24 and in every `tkl-N-*` name. */
  readonly index: number;
  readonly name: string;
  readonly hosts: readonly LabHost[];
  /** The controller's address on the lab bridge; hosts route through it and find the apt proxy there. */
  readonly bridgeAddress: string;
  /** The apt proxy (tinyproxy) every host is configured with. */
  readonly proxyUrl: string;
  /** Private half of the lab's ed25519 key (no passphrase), authorized for root, admin and ops. */
  readonly privateKeyPath: string;
  /** known_hosts listing every host's own host key. */
  readonly knownHostsPath: string;
  /** An inventory module for the lab ({@link writeInventory}), written at start. */
  readonly inventoryFile: string;
  readonly keepAfterExit: boolean;
  /** The checkout the lab was started from ({@link CHECKOUT} there); undefined for a lab of older code. */
  readonly checkout: string | undefined;
  /** The process that started the lab: pid and command line. */
  readonly startedBy: { pid: number; command: string } | undefined;
  /**
   * Whether this is a test lab whose starting process is gone without taking it down (a crash that
   * skipped teardown and reaper): then nothing but `npm run lab -- down` will remove it.
   * A lab of `up` is never orphaned: it is meant to outlive its process.
   */
  isOrphaned(): Promise<boolean>;
  /**
   * The lab host called `hostName`; a TypeError for an unknown name.
   * @example lab.host('lab1').address // '10.200.3.11'
   */
  host(hostName: string): LabHost;
  /**
   * OpenSSH client arguments (before the remote command) for a strict, non-interactive login.
   * @example spawn('ssh', [...lab.sshArgs('lab1'), 'uptime'])
   */
  sshArgs(hostName: string, opts?: { user?: string }): string[];
  /**
   * Runs `command` on a host with the OpenSSH client: an oracle independent of tackle's own SSH.
   * Exit code 255 means ssh itself failed (e.g. the host is stopped).
   * @example const { stdout } = await lab.ssh('lab1', 'hostname');
   */
  ssh(hostName: string, command: string, opts?: SshOptions): Promise<RunResult>;
  /** Whether the host's container is running. */
  isRunning(hostName: string): Promise<boolean>;
  /**
   * Cuts the host's power: its container is killed at once and its link goes down, so its address
   * stops answering (connections time out). Its disk (the overlay) is kept for {@link Lab.start}.
   */
  stop(hostName: string): Promise<void>;
  /** Boots a stopped host again and waits until it answers ssh. */
  start(hostName: string): Promise<void>;
  /**
   * Reboots a running host the clean way, through its own systemd (units stop, the journal and
   * every service's state are kept on its disk), then boots it again and waits until it answers ssh.
   * Needs no login on the host.
   * @example await lab.reboot('lab1'); await lab.ssh('lab1', 'systemctl is-active fail2ban');
   */
  reboot(hostName: string): Promise<void>;
  /** Removes everything the lab created. Idempotent; safe to call twice or concurrently. */
  down(): Promise<void>;
}

/** What a lab records in /run/tackle-lab/N/state.json; never changes after start. */
interface LabState {
  index: number;
  /**
   * These three are absent from labs started by older code, which no `down` takes for its own.
   * `id` is random: it tells this lab from a later one that reuses its index.
   */
  id?: string;
  checkout?: string;
  owner?: ProcessIdentity;
  name: string;
  createdAt: string;
  keepAfterExit: boolean;
  image: string;
  tmpDir: string;
  bridge: string;
  bridgeAddress: string;
  privateKeyPath: string;
  knownHostsPath: string;
  inventoryFile: string;
  bootTimeoutMs: number;
  /** Absent (false) for labs of older code. */
  docker?: boolean;
  /** Absent in labs started by older code: not fresh. */
  fresh?: boolean;
  hosts: HostState[];
}

/** One process, even after its pid is reused: the pid and when it started. */
interface ProcessIdentity {
  pid: number;
  startTime: string;
  command: string;
}

interface HostState {
  name: string;
  address: string;
  netns: string;
  /** Controller-side end of the host's veth pair (the host sees its end as eth0). */
  veth: string;
  /** Holds the overlay's upper and work dirs, the merged root and the nspawn log. */
  dir: string;
  root: string;
  machine: string;
}

const labDir = (index: number): string => join(STATE_ROOT, String(index));
const statePath = (index: number): string => join(labDir(index), 'state.json');
const hostPidFile = (state: LabState, host: HostState): string => join(labDir(state.index), `${host.name}.pid`);
const proxyPidFile = (state: LabState): string => join(labDir(state.index), 'tinyproxy.pid');
const proxyConfig = (state: LabState): string => join(labDir(state.index), 'tinyproxy.conf');
const nspawnLog = (host: HostState): string => join(host.dir, 'nspawn.log');
/** The host's /var/lib/docker: in its dir on the real disk (overlay2 cannot sit on the overlay root), so it goes with the lab's tmp dir. */
const dockerDir = (host: HostState): string => join(host.dir, 'docker');

/**
 * Builds the image if needed, then starts a lab of `opts.hosts` hosts and resolves once every host
 * answers `ssh root@host true`. On failure everything already created is removed again.
 *
 * @example
 * const lab = await startLab({ hosts: 3 });
 * try { await lab.ssh('lab1', 'true'); } finally { await lab.down(); }
 */
export async function startLab(opts: StartLabOptions): Promise<Lab> {
  const name = opts.name ?? 'lab';
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > MAX_HOSTS) {
    throw new TypeError(`hosts must be a whole number from 1 to ${MAX_HOSTS}, got ${opts.hosts}`);
  }
  if (!/^[a-z][a-z0-9-]{0,20}$/.test(name)) throw new TypeError(`lab name must be a short lower-case host name, got ${JSON.stringify(name)}`);
  if (process.getuid?.() !== 0) throw new Error('the lab needs root: it creates network namespaces, mounts overlays and runs systemd-nspawn');
  const log = opts.log ?? (() => {});
  const image = await ensureImage({ ...opts.image, log });

  const started = Date.now();
  const index = await allocateIndex();
  const tmpDir = await mkdtemp(join(tmpdir(), `${TMP_PREFIX}${index}-`)).catch(async (err: unknown) => {
    await rm(labDir(index), { recursive: true, force: true });
    throw err;
  });
  const id = randomBytes(8).toString('hex');
  const state = planLab({ index, id, name, image, tmpDir, owner: await thisProcess(), hosts: opts.hosts, keepAfterExit: opts.keepAfterExit ?? false, bootTimeoutMs: opts.bootTimeoutMs ?? 60_000, docker: opts.docker ?? false, fresh: opts.fresh ?? false });
  // Renamed into place: other processes (`down`, `status`) may read it at any moment.
  await writeFile(`${statePath(index)}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  await rename(`${statePath(index)}.tmp`, statePath(index));
  const lab = labFromState(state);
  if (!state.keepAfterExit) exitCleanup.add(index, id);
  try {
    await createLab(state, log);
  } catch (err) {
    await lab.down().catch((downErr: unknown) => log(`lab ${index}: teardown after a failed start failed too: ${String(downErr)}`));
    throw err;
  }
  log(`lab ${index}: ${state.hosts.length} host(s) answering ssh on 10.200.${index}.0/24 after ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return lab;
}

async function thisProcess(): Promise<ProcessIdentity> {
  const startTime = await processStartTime(process.pid);
  if (startTime === undefined) throw new Error(`cannot read /proc/${process.pid}/stat`);
  return { pid: process.pid, startTime, command: process.argv.join(' ') };
}

/** Whether the process is still the one recorded (not gone, and its pid not reused). */
async function isAlive(proc: ProcessIdentity): Promise<boolean> {
  return (await processStartTime(proc.pid)) === proc.startTime;
}

/**
 * Claims the lowest lab index whose subnet no interface on the machine uses (another lab's bridge,
 * a VPN, a docker network…) and whose names nothing holds. The claim is an atomic mkdir, so
 * parallel test files never get the same index.
 */
async function allocateIndex(): Promise<number> {
  await mkdir(STATE_ROOT, { recursive: true });
  const addresses = await interfaceAddresses();
  // A link or namespace called tkl-N-* that no state dir explains (a lab whose state was lost)
  // is not ours to remove, but its index is not free either.
  const names = [...(await readdir('/sys/class/net')), ...(await readdir('/run/netns').catch(() => []))];
  const inUse: string[] = [];
  for (let index = 0; index < MAX_LABS; index++) {
    const holder = addresses.find((a) => overlapsLabSubnet(a, index));
    if (holder) {
      inUse.push(`10.200.${index}.0/24 (${holder.ifname} has ${holder.address}/${holder.prefixlen})`);
      continue;
    }
    if (names.some((n) => n.startsWith(`${NAME_PREFIX}${index}-`))) continue;
    try {
      await mkdir(labDir(index));
      return index;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(
    `no free lab subnet in 10.200.0.0/16: every index is claimed under ${STATE_ROOT} or its subnet is in use` +
      (inUse.length > 0 ? ` (${inUse.slice(0, 3).join(', ')}${inUse.length > 3 ? ', …' : ''})` : ''),
  );
}

/** An IPv4 address held by an interface of the machine, with its prefix length. */
export interface InterfaceAddress {
  ifname: string;
  address: string;
  prefixlen: number;
}

/** Every IPv4 address on the machine's interfaces, up or down (a down one comes back up with it). */
async function interfaceAddresses(): Promise<InterfaceAddress[]> {
  const links = JSON.parse(await check('ip', ['-json', '-4', 'address', 'show'])) as Array<{ ifname: string; addr_info?: Array<{ local?: string; prefixlen?: number }> }>;
  return links.flatMap((link) =>
    (link.addr_info ?? []).flatMap((a) => (a.local !== undefined && a.prefixlen !== undefined ? [{ ifname: link.ifname, address: a.local, prefixlen: a.prefixlen }] : [])),
  );
}

/**
 * Whether the network of `a` (its address and prefix) and lab `index`'s 10.200.N.0/24 share any
 * address: then a lab there would be unreachable, or would hide what the interface reaches.
 *
 * @example overlapsLabSubnet({ ifname: 'eth0', address: '10.0.0.5', prefixlen: 8 }, 3) // true
 */
export function overlapsLabSubnet(a: InterfaceAddress, index: number): boolean {
  const toNumber = (ip: string): number => ip.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  // Two networks overlap exactly when they agree on the bits of the shorter prefix.
  const blockSize = 2 ** (32 - Math.min(a.prefixlen, 24));
  return Math.floor(toNumber(a.address) / blockSize) === Math.floor(toNumber(`10.200.${index}.0`) / blockSize);
}

function planLab(p: { index: number; id: string; name: string; image: string; tmpDir: string; owner: ProcessIdentity; hosts: number; keepAfterExit: boolean; bootTimeoutMs: number; docker: boolean; fresh: boolean }): LabState {
  const prefix = `${NAME_PREFIX}${p.index}`;
  return {
    index: p.index,
    id: p.id,
    checkout: CHECKOUT,
    owner: p.owner,
    name: p.name,
    createdAt: new Date().toISOString(),
    keepAfterExit: p.keepAfterExit,
    image: p.image,
    tmpDir: p.tmpDir,
    bridge: `${prefix}-br`,
    bridgeAddress: `10.200.${p.index}.1`,
    privateKeyPath: join(p.tmpDir, 'id_ed25519'),
    knownHostsPath: join(p.tmpDir, 'known_hosts'),
    inventoryFile: join(p.tmpDir, 'inventory.ts'),
    bootTimeoutMs: p.bootTimeoutMs,
    docker: p.docker,
    fresh: p.fresh,
    hosts: Array.from({ length: p.hosts }, (_, i) => {
      const name = `${p.name}${i + 1}`;
      const dir = join(p.tmpDir, name);
      return { name, address: `10.200.${p.index}.${11 + i}`, netns: `${prefix}-${name}`, veth: `${prefix}-h${i + 1}`, dir, root: join(dir, 'root'), machine: `${prefix}-${name}` };
    }),
  };
}

async function createLab(state: LabState, log: (line: string) => void): Promise<void> {
  await Promise.all([
    check('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `tackle-lab-${state.index}`, '-f', state.privateKeyPath]),
    createBridge(state),
  ]);
  const authorizedKey = await readFile(`${state.privateKeyPath}.pub`, 'utf8');
  const [, ...hostKeys] = await Promise.all([startProxy(state), ...state.hosts.map((host) => prepareHost(state, host, authorizedKey))]);
  await writeFile(state.knownHostsPath, state.hosts.map((host, i) => `${host.address} ${hostKeys[i]}\n`).join(''));
  await writeInventory(labFromState(state), state.inventoryFile);
  await Promise.all(state.hosts.map((host) => bootOrRetry(state, host, log)));
}

/** systemd-nspawn ended while its host booted; `said` is the end of its log. */
class NspawnExited extends Error {
  constructor(
    host: HostState,
    readonly said: string,
  ) {
    super(`${host.name}: systemd-nspawn exited during boot; ${nspawnLog(host)} ends with:\n${said}`);
  }
}

/**
 * Boots a host, once more if its nspawn died silently (a signal: nspawn reports every error it
 * meets in its log) after killing what that boot left; a boot that failed with a reason fails.
 */
async function bootOrRetry(state: LabState, host: HostState, log: (line: string) => void): Promise<void> {
  try {
    await bootHost(state, host);
  } catch (err) {
    if (!(err instanceof NspawnExited) || err.said.trim() !== '') throw err;
    log(`lab ${state.index}: ${host.name}'s systemd-nspawn ended during boot without a word (killed?); booting it again`);
    await killHost(state, host);
    await bootHost(state, host);
  }
}

async function createBridge(state: LabState): Promise<void> {
  await check('ip', ['link', 'add', state.bridge, 'type', 'bridge']);
  await check('ip', ['address', 'add', `${state.bridgeAddress}/24`, 'dev', state.bridge]);
  await check('ip', ['link', 'set', state.bridge, 'up']);
}

/** Network, overlay root and per-host files; resolves with the host's public host key (`type key`). */
async function prepareHost(state: LabState, host: HostState, authorizedKey: string): Promise<string> {
  await check('ip', ['netns', 'add', host.netns]);
  await check('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns]);
  await check('ip', ['link', 'set', host.veth, 'master', state.bridge, 'up']);
  const inside = [`address add ${host.address}/24 dev eth0`, 'link set lo up', 'link set eth0 up', `route add default via ${state.bridgeAddress}`];
  await check('ip', ['-netns', host.netns, '-batch', '-'], { input: `${inside.join('\n')}\n` });

  const upper = join(host.dir, 'upper');
  const work = join(host.dir, 'work');
  await Promise.all([upper, work, host.root].map((dir) => mkdir(dir, { recursive: true })));
  // overlayfs splits its options on ',' and lowerdir on ':'.
  if (/[,:]/.test(state.image + host.dir)) throw new Error(`overlay paths must not contain ',' or ':': ${state.image}, ${host.dir}`);
  await check('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${state.image},upperdir=${upper},workdir=${work}`, host.root]);

  const root = (path: string): string => join(host.root, path);
  // Generated here rather than inside the host, so known_hosts can list it before the first login.
  await check('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${host.name}`, '-f', root('etc/ssh/ssh_host_ed25519_key')]);
  await writeFile(root('etc/hostname'), `${host.name}\n`);
  // sudo warns on every call when the host's own name does not resolve.
  await appendFile(root('etc/hosts'), `127.0.1.1\t${host.name}\n`);
  await writeFile(root('etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  await writeFile(root('etc/apt/apt.conf.d/01tackle-lab-proxy'), `Acquire::http::Proxy "${proxyUrlOf(state)}";\nAcquire::https::Proxy "${proxyUrlOf(state)}";\n`);
  // The image created these files with the right owners and modes; writing keeps both.
  for (const home of ['root', 'home/admin', 'home/ops']) await writeFile(root(`${home}/.ssh/authorized_keys`), authorizedKey);
  if (state.fresh) await makeFresh(host.root);
  const publicKey = await readFile(root('etc/ssh/ssh_host_ed25519_key.pub'), 'utf8');
  return publicKey.split(' ').slice(0, 2).join(' ');
}

const proxyUrlOf = (state: LabState): string => `http://${state.bridgeAddress}:${PROXY_PORT}`;

/** One tinyproxy per lab on the bridge address: the hosts' only way to the Debian mirror. */
async function startProxy(state: LabState): Promise<void> {
  const config = [
    `Port ${PROXY_PORT}`,
    `Listen ${state.bridgeAddress}`,
    `Allow 10.200.${state.index}.0/24`,
    'User nobody',
    'Group nogroup',
    'Timeout 600',
    'MaxClients 100',
    'LogLevel Connect',
    'DisableViaHeader Yes',
    '',
  ].join('\n');
  await writeFile(proxyConfig(state), config);
  const pid = await spawnDetached('tinyproxy', ['-d', '-c', proxyConfig(state)], join(state.tmpDir, 'tinyproxy.log'));
  await writeFile(proxyPidFile(state), `${pid}\n`);
  await poll(async () => ((await canConnect(state.bridgeAddress, PROXY_PORT)) ? true : undefined), {
    timeoutMs: 10_000,
    intervalMs: 20,
    onTimeout: async () => new Error(`tinyproxy did not listen on ${state.bridgeAddress}:${PROXY_PORT}:\n${await tailOf(join(state.tmpDir, 'tinyproxy.log'))}`),
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/**
 * Starts a program in its own session with output to `logFile`, so it outlives this process
 * (the CLI's `up` exits while the lab keeps running). Resolves with its pid.
 */
async function spawnDetached(file: string, args: string[], logFile: string, env: Record<string, string> = {}): Promise<number> {
  const output = await open(logFile, 'a');
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', output.fd, output.fd], env: { ...process.env, ...env } });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`cannot run ${file}: ${err.message}`, { cause: err })));
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`${file} started without a pid`);
    return child.pid;
  } finally {
    await output.close();
  }
}

async function tailOf(file: string): Promise<string> {
  return lastLines(await readFile(file, 'utf8').catch(() => `(no ${file})`), 20);
}

/**
 * One cgroup per host in each systemd hierarchy. nspawn puts the container's cgroups below its own
 * cgroup, and with --keep-unit that is its caller's: hosts started by one process would share
 * one tree, and each host's systemd would create and delete the others' unit cgroups (units then
 * fail at random with status=219/CGROUP).
 */
async function hostCgroups(host: HostState): Promise<string[]> {
  return (await systemdCgroupRoots()).map((root) => join(root, CGROUP_PARENT, host.machine));
}

/** Joins the cgroups given as `COUNT DIR...`, then runs the rest of the arguments in their place. */
const JOIN_CGROUPS_AND_EXEC = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1/cgroup.procs"; shift; n=$((n - 1)); done; exec "$@"';

/** Boots the host's container and waits until `ssh root@host true` succeeds. */
async function bootHost(state: LabState, host: HostState): Promise<void> {
  await writeFile(nspawnLog(host), '');
  const cgroups = await hostCgroups(host);
  await Promise.all(cgroups.map((dir) => mkdir(dir, { recursive: true })));
  const pid = await spawnDetached(
    'sh',
    [
      ...['-c', JOIN_CGROUPS_AND_EXEC, 'sh', String(cgroups.length), ...cgroups],
      'systemd-nspawn',
      `--directory=${host.root}`,
      '--boot',
      // The controller runs no systemd: without these two nspawn fails with "Failed to open system bus".
      '--register=no',
      '--keep-unit',
      // Without CAP_NET_ADMIN, ufw and iptables inside the host fail with "Permission denied".
      '--capability=CAP_NET_ADMIN,CAP_SYS_ADMIN',
      `--network-namespace-path=/run/netns/${host.netns}`,
      // nspawn keys its runtime dirs by machine name, so it must be unique across labs.
      `--machine=${host.machine}`,
      `--hostname=${host.name}`,
      '--console=read-only',
      ...(state.docker ? await dockerNspawnArgs(host) : []),
    ],
    nspawnLog(host),
    state.docker ? DOCKER_NSPAWN_ENV : {},
  );
  await writeFile(hostPidFile(state, host), `${pid}\n`);
  const lab = labFromState(state);
  let lastError = '';
  await poll(
    async () => {
      const result = await lab.ssh(host.name, 'true');
      if (result.code === 0) return true;
      lastError = result.stderr.trim();
      if (!(await processArgv(pid))) throw new NspawnExited(host, await tailOf(nspawnLog(host)));
      return undefined;
    },
    {
      timeoutMs: state.bootTimeoutMs,
      onTimeout: async () =>
        new Error(
          `${host.name} (${host.address}) did not answer ssh within ${state.bootTimeoutMs / 1000}s ` +
            `(last ssh error: ${lastError || 'none'}); ${nspawnLog(host)} ends with:\n${await tailOf(nspawnLog(host))}`,
        ),
    },
  );
}

/**
 * What dockerd needs on top of a lab host's nspawn call (verified, see LAB.md): a unified cgroup
 * tree (else `mkdir /sys/fs/cgroup/cpuset/docker: read-only file system`) and a writable
 * /proc/sys/net (else it cannot enable IP forwarding).
 */
const DOCKER_NSPAWN_ENV = { SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1', SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network' };

async function dockerNspawnArgs(host: HostState): Promise<string[]> {
  await Promise.all([mkdir(dockerDir(host), { recursive: true }), mkdir(DOCKER_IMAGE_DIR, { recursive: true })]);
  return [
    // The session keyring (runc) and the device cgroup's BPF program.
    '--system-call-filter=add_key keyctl bpf',
    `--bind=${dockerDir(host)}:/var/lib/docker`,
    `--bind-ro=${DOCKER_IMAGE_DIR}:${HOST_DOCKER_IMAGE_DIR}`,
  ];
}

/** The pid of the host's running systemd-nspawn, checked against its argv so a reused pid is not taken for it. */
async function nspawnPid(state: LabState, host: HostState): Promise<number | undefined> {
  return recordedPid(hostPidFile(state, host), `--machine=${host.machine}`);
}

async function recordedPid(pidFile: string, mustHaveArg: string): Promise<number | undefined> {
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!pid) return undefined;
  return (await processArgv(pid))?.includes(mustHaveArg) ? pid : undefined;
}

/**
 * Kills a container outright: SIGKILL to its init (nspawn's child) takes its whole PID namespace
 * down at once, and nspawn then exits by itself. A clean poweroff would take about 2 s per host.
 */
async function killContainer(nspawn: number): Promise<void> {
  const inits = await childPids(nspawn);
  for (const init of inits) signal(init, 'SIGKILL');
  // No child yet: nspawn is still starting, and on SIGTERM it stops by itself.
  if (inits.length === 0) signal(nspawn, 'SIGTERM');
  await waitForExit(nspawn, 10_000);
}

/** Powers a host off (if it is on) and removes its cgroups; its disk and network stay. */
async function killHost(state: LabState, host: HostState): Promise<void> {
  const pid = await nspawnPid(state, host);
  if (pid) await killContainer(pid);
  await rm(hostPidFile(state, host), { force: true });
  const cgroups = await hostCgroups(host);
  await killLeftovers(host, cgroups);
  for (const dir of cgroups) await removeCgroup(dir);
}

/**
 * Kills what is left of this host's container in its cgroups: a container whose nspawn died before
 * it (killed while starting) keeps running without it, and its cgroups cannot go while it does.
 * Only processes whose root is this host's overlay (its upper dir, in this lab's own tmp dir), or
 * an nspawn of it, are this lab's: another lab that has since taken the index uses the same
 * cgroup names.
 */
async function killLeftovers(host: HostState, cgroups: readonly string[]): Promise<void> {
  const pids = [...new Set((await Promise.all(cgroups.map(cgroupPids))).flat())];
  const ours = await Promise.all(pids.map(async (p) => (await processMounts(p)).includes(`upperdir=${host.dir}/upper,`) || ((await processArgv(p)) ?? []).includes(`--directory=${host.root}`)));
  const doomed = pids.filter((_, i) => ours[i]);
  for (const p of doomed) signal(p, 'SIGKILL');
  await Promise.all(doomed.map((p) => waitForExit(p, 5000)));
}

/**
 * Asks the host's systemd to reboot, as `machinectl reboot` does: SIGINT to its init starts
 * ctrl-alt-del.target (reboot.target), so no login is needed and a hardened sshd does not matter.
 * nspawn, which cannot restart a container by itself, exits once systemd is done; the same nspawn
 * call then boots the host again on the same overlay, whose upper dir holds everything it wrote.
 */
async function rebootHost(state: LabState, host: HostState): Promise<void> {
  const pid = await nspawnPid(state, host);
  const [init] = pid ? await childPids(pid) : [];
  if (!pid || !init) throw new Error(`${host.name} is not running (or still starting); Lab.start boots a stopped host`);
  signal(init, 'SIGINT');
  await poll(async () => ((await processArgv(pid)) ? undefined : true), {
    timeoutMs: state.bootTimeoutMs,
    onTimeout: async () => new Error(`${host.name} did not shut down within ${state.bootTimeoutMs / 1000}s of the reboot request; ${nspawnLog(host)} ends with:\n${await tailOf(nspawnLog(host))}`),
  });
  // The container is gone: this only drops its pid file and the cgroups of the boot that ended.
  await killHost(state, host);
  await bootHost(state, host);
}

function labFromState(state: LabState): Lab {
  const hosts: LabHost[] = state.hosts.map((h) => ({ name: h.name, address: h.address, port: 22 }));
  const hostState = (hostName: string): HostState => {
    const host = state.hosts.find((h) => h.name === hostName);
    if (!host) throw new TypeError(`lab ${state.index} has no host ${JSON.stringify(hostName)}; it has ${hosts.map((h) => h.name).join(', ')}`);
    return host;
  };
  let downing: Promise<void> | undefined;
  const lab: Lab = {
    index: state.index,
    name: state.name,
    hosts,
    bridgeAddress: state.bridgeAddress,
    proxyUrl: proxyUrlOf(state),
    privateKeyPath: state.privateKeyPath,
    knownHostsPath: state.knownHostsPath,
    inventoryFile: state.inventoryFile,
    keepAfterExit: state.keepAfterExit,
    checkout: state.checkout,
    startedBy: state.owner && { pid: state.owner.pid, command: state.owner.command },
    isOrphaned: async () => !state.keepAfterExit && state.owner !== undefined && !(await isAlive(state.owner)),
    host: (hostName) => {
      const { name, address } = hostState(hostName);
      return { name, address, port: 22 };
    },
    sshArgs: (hostName, opts = {}) => [
      ...['-F', '/dev/null', '-i', state.privateKeyPath],
      ...['-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes'],
      ...['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${state.knownHostsPath}`, '-o', 'GlobalKnownHostsFile=/dev/null'],
      ...['-o', 'ConnectTimeout=3', '-o', 'LogLevel=ERROR'],
      `${opts.user ?? 'root'}@${hostState(hostName).address}`,
    ],
    ssh: (hostName, command, opts = {}) => run('ssh', [...lab.sshArgs(hostName, opts), '--', command], { input: opts.input }),
    isRunning: async (hostName) => (await nspawnPid(state, hostState(hostName))) !== undefined,
    stop: async (hostName) => {
      const host = hostState(hostName);
      await killHost(state, host);
      await check('ip', ['link', 'set', host.veth, 'down']);
    },
    start: async (hostName) => {
      const host = hostState(hostName);
      if (await nspawnPid(state, host)) return;
      await check('ip', ['link', 'set', host.veth, 'up']);
      await bootHost(state, host);
    },
    reboot: (hostName) => rebootHost(state, hostState(hostName)),
    // Only a finished teardown leaves the exit registry: after a failed one, the reaper tries again.
    down: () => (downing ??= downLab(state.index, { id: state.id }).then(() => exitCleanup.delete(state.index))),
  };
  return lab;
}

async function readState(index: number): Promise<LabState | undefined> {
  const text = await readFile(statePath(index), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as LabState);
}

/** Every lab recorded under {@link STATE_ROOT}, whichever process started it. */
export async function listLabs(): Promise<Lab[]> {
  const labs: Lab[] = [];
  for (const index of await labIndexes()) {
    const state = await readState(index);
    if (state) labs.push(labFromState(state));
  }
  return labs;
}

async function labIndexes(): Promise<number[]> {
  const entries = await readdir(STATE_ROOT).catch(() => []);
  return entries.filter((e) => /^\d+$/.test(e)).map(Number).sort((a, b) => a - b);
}

/**
 * Takes down lab `index` from its recorded state: containers, proxy, overlays, network, files.
 * Whatever is already gone is skipped, so it is safe to repeat. With `id`, only the lab of that id:
 * if it is gone already, its index may hold someone else's lab by now, and nothing is touched.
 *
 * @example await downLab(3);
 */
export async function downLab(index: number, opts: { id?: string | undefined } = {}): Promise<void> {
  const state = await readState(index);
  if (opts.id !== undefined && state?.id !== opts.id) return;
  if (state) {
    const claim = await claimTeardown(state);
    if (!claim) return;
    await tearDown(state).catch(async (err: unknown) => {
      await claim.release(); // a later `down` may try again
      throw err;
    });
  }
  await rm(labDir(index), { recursive: true, force: true });
}

/** How long a finished teardown's record stays: longer than any teardown that read the same state. */
const TEARDOWN_RECORD_MS = 3_600_000;

/**
 * One teardown per lab, found by its id: a second one that read the same state (the exit reaper,
 * a `down` at the same moment) would otherwise go on after the first freed the index, and reach
 * the lab that took it next, whose pid files, cgroups and namespaces have the same names. The
 * second waits for the first and then finds the lab gone; a claim whose process died is taken
 * over. The record of a finished teardown stays a while, so a late second one still finds it.
 * Resolves undefined when another teardown took the lab down.
 */
async function claimTeardown(state: LabState): Promise<{ release(): Promise<void> } | undefined> {
  const file = join(STATE_ROOT, `.teardown-${state.id}`);
  for (;;) {
    try {
      await writeFile(file, JSON.stringify(await thisProcess()), { flag: 'wx' });
      await pruneTeardownRecords();
      return { release: () => rm(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if ((await readState(state.index))?.id !== state.id) return undefined;
    // Empty while its writer is between create and write: alive then.
    const holder = JSON.parse((await readFile(file, 'utf8').catch(() => '')) || 'null') as ProcessIdentity | null;
    if (holder && !(await isAlive(holder))) await rm(file, { force: true });
    else await delay(200);
  }
}

async function pruneTeardownRecords(): Promise<void> {
  for (const entry of await readdir(STATE_ROOT).catch(() => [])) {
    if (!entry.startsWith('.teardown-')) continue;
    const path = join(STATE_ROOT, entry);
    const at = (await stat(path).catch(() => undefined))?.mtimeMs;
    if (at !== undefined && Date.now() - at > TEARDOWN_RECORD_MS) await rm(path, { force: true });
  }
}

/** Everything of a lab but its state dir: containers, proxy, overlays, network, tmp dir. */
async function tearDown(state: LabState): Promise<void> {
  await Promise.all([
    ...state.hosts.map(async (host) => {
      await killHost(state, host);
      await unmountUnder(host.root);
    }),
    stopProxy(state),
  ]);
  await removeNetwork(state.hosts.map((h) => h.netns), [...state.hosts.map((h) => h.veth), state.bridge]);
  await removeTmpDir(state.tmpDir);
}

async function stopProxy(state: LabState): Promise<void> {
  const pid = await recordedPid(proxyPidFile(state), proxyConfig(state));
  if (!pid) return;
  signal(pid, 'SIGTERM');
  await waitForExit(pid, 5000);
}

async function removeNetwork(namespaces: string[], links: string[]): Promise<void> {
  for (const netns of namespaces) await removeIfPresent(`/run/netns/${netns}`, ['netns', 'delete', netns]);
  for (const link of links) await removeIfPresent(`/sys/class/net/${link}`, ['link', 'delete', link]);
}

/**
 * Runs `ip ARGS` to remove what `path` shows, unless it is gone already. The kernel removes a
 * namespace's veth pair a moment after the namespace, so a link can vanish between look and delete:
 * only a failure that leaves `path` in place is one.
 */
async function removeIfPresent(path: string, args: string[]): Promise<void> {
  if (!existsSync(path)) return;
  const result = await run('ip', args);
  if (result.code !== 0 && existsSync(path)) throw new CommandError(['ip', ...args], result);
}

async function removeTmpDir(dir: string): Promise<void> {
  // Never recurse into a mounted root: rm would write whiteouts or worse, delete the image's files.
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Takes down the labs started from this checkout that nothing else will take down: the lab of
 * `up`, and test labs whose process died without removing them ({@link Lab.isOrphaned}).
 * Everything else is left alone: labs of other checkouts or of older code, labs of test runs still
 * going, and index slots without a state file (a lab being started). Nothing is removed by its
 * name alone: only what a state file records. Resolves with the labs it took down.
 *
 * @example const removed = await downLeftovers({ log: console.log });
 */
export async function downLeftovers(opts: { log?: (line: string) => void } = {}): Promise<Lab[]> {
  const log = opts.log ?? (() => {});
  const removed: Lab[] = [];
  for (const lab of await listLabs()) {
    if (lab.checkout !== CHECKOUT) {
      log(`lab ${lab.index}: left alone, it was started from ${lab.checkout ?? 'an unknown checkout'}`);
      continue;
    }
    if (!lab.keepAfterExit && !(await lab.isOrphaned())) {
      log(`lab ${lab.index}: left alone, its test run (pid ${lab.startedBy?.pid}) is still going; \`down ${lab.index}\` removes it`);
      continue;
    }
    log(`lab ${lab.index}: taking down (${lab.keepAfterExit ? 'from `up`' : 'its test run died'})`);
    await lab.down();
    removed.push(lab);
  }
  return removed;
}

/** What {@link writeInventory} adds to the lab's hosts. */
export interface InventoryExtras {
  /** Fields merged over each named host's entry (vars, become, a parent…). */
  overrides?: Record<string, Partial<HostSpec>>;
  /** Module code placed before the inventory (it may use `loadEnv`). */
  extra?: string;
}

/**
 * Writes a TypeScript inventory module for the lab's hosts (user root, group `lab`), importing
 * from the repo's `lib/index.ts` by a path relative to `file`.
 *
 * @example await writeInventory(lab, 'lab-inventory.ts');
 */
export async function writeInventory(lab: Pick<Lab, 'hosts' | 'privateKeyPath' | 'knownHostsPath'>, file: string, extras: InventoryExtras = {}): Promise<void> {
  const target = resolve(file);
  const libIndex = fileURLToPath(new URL('../lib/index.ts', import.meta.url));
  let specifier = relative(dirname(target), libIndex).split(sep).join('/');
  if (!specifier.startsWith('.')) specifier = `./${specifier}`;
  const hosts = Object.fromEntries(
    lab.hosts.map((h) => [
      h.name,
      { address: h.address, user: 'root', privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath, groups: ['lab'], ...extras.overrides?.[h.name] },
    ]),
  );
  const source = [
    '// Written by lab/ for a running lab; it is thrown away with the lab.',
    `import { defineInventory${extras.extra ? ', loadEnv' : ''} } from ${JSON.stringify(specifier)};`,
    ...(extras.extra ? [extras.extra] : []),
    '',
    `export default defineInventory({ groups: { lab: {} }, hosts: ${JSON.stringify(hosts, null, 2)} });`,
    '',
  ].join('\n');
  await writeFile(target, source);
}

/** The part of a tap `Test` that {@link withLab} uses. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
  comment(...message: unknown[]): void;
}

/**
 * Starts a lab for a tap test and takes it down in the test's teardown, pass or fail.
 * Progress lines become TAP comments.
 *
 * @example
 * import t from 'tap';
 * const lab = await withLab(t, 3);
 */
export async function withLab(t: TeardownHost, hosts: number, opts: Omit<StartLabOptions, 'hosts' | 'keepAfterExit'> = {}): Promise<Lab> {
  const lab = await startLab({ log: (line) => t.comment(line), ...opts, hosts });
  t.teardown(() => lab.down());
  return lab;
}

/**
 * The one piece of module-level mutable state: the labs this process started and has not taken
 * down yet. Exit and signal handlers receive no arguments, so this registry is their only way to
 * find the labs to remove when a test run dies without reaching its teardown.
 */
const exitCleanup = (() => {
  /** Lab index → lab id. */
  const pending = new Map<number, string>();
  let installed = false;
  const reapPending = (): void => {
    if (pending.size === 0) return;
    // An exiting process cannot await anything, so a detached reaper does the (async) teardown.
    const reaper = fileURLToPath(new URL('./reap.ts', import.meta.url));
    const labs = [...pending].map(([index, id]) => `${index}:${id}`);
    spawn(process.execPath, ['--import', import.meta.resolve('tsx'), reaper, ...labs], { detached: true, stdio: 'ignore' }).unref();
    pending.clear();
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    reapPending();
    // A listener suppresses the default exit; without another listener, re-raise to die as intended.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  return {
    add(index: number, id: string): void {
      pending.set(index, id);
      if (installed) return;
      installed = true;
      process.once('exit', reapPending);
      // First in line and gone once run: a later listener that exits only when it is the last one
      // (signal-exit, which tap loads into every test process) then sees itself alone and exits.
      process.prependOnceListener('SIGINT', onSignal);
      process.prependOnceListener('SIGTERM', onSignal);
    },
    delete(index: number): void {
      pending.delete(index);
    },
  };
})();
