import { posix } from 'node:path';
import { Command, sh } from '../command/command.ts';
import { afterEach, combine, defineOperation, type Action, type Change, type CommonOptions, type Operation } from './operation.ts';
import { pathInfo, type PathInfo } from '../facts/files.ts';
import { hostnameFact, swapFact, zoneInfoFact, type HostnameInfo, type SwapInfo, type ZoneInfo } from '../facts/server.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';

/** `name` is the host name, so the step name (`server.hostname NAME`) cannot be overridden. */
export interface HostnameOptions extends Omit<CommonOptions, 'name'> {
  /** A host name (`web1`) or a fully qualified one (`web1.example.com`). */
  name: string;
}

/** `name` is the zone, so the step name (`server.timezone NAME`) cannot be overridden. */
export interface TimezoneOptions extends Omit<CommonOptions, 'name'> {
  /** A zone of the tz database, e.g. `Europe/Berlin`, `UTC`. */
  name: string;
}

export interface SwapfileOptions extends CommonOptions {
  /** Default `/swapfile`. */
  path?: string;
  sizeMb: number;
  /** vm.swappiness (0-200), kept in /etc/sysctl.d/60-tackle-swappiness.conf. */
  swappiness?: number;
}

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

/**
 * Ensures the host name: the running and the boot-time one (`hostnamectl set-hostname`, or
 * /etc/hostname and `hostname` where hostnamectl cannot), and the `127.0.1.1` line of /etc/hosts
 * (Debian's convention: `127.0.1.1 web1.example.com web1`), so the name resolves locally and
 * sudo does not complain. A fully qualified name is kept as given in /etc/hostname.
 *
 * @example
 * // `host` is also the usual name of a task's host parameter: import this one under another name.
 * import { host as server } from './host.ts';
 * await host.run(server.hostname({ name: 'web1.example.com' }));
 */
function hostname(options: HostnameOptions): Operation {
  const { name } = options;
  if (typeof name !== 'string' || name.length > 64 || !name.split('.').every((l) => LABEL.test(l))) {
    throw refuse('server.hostname', `${JSON.stringify(name)} is not a host name (labels of letters, digits and -, at most 64 characters)`);
  }
  const short = name.split('.')[0] as string;
  const hostsLine = files.line({ path: '/etc/hosts', match: /^127\.0\.1\.1\s/, line: `127.0.1.1\t${short === name ? name : `${name} ${short}`}`, create: true });
  return defineOperation({
    name: `server.hostname ${name}`,
    // `hosts`: the file its files.line part edits.
    facts: { names: hostnameFact, hosts: pathInfo('/etc/hosts') },
    // Not `options` itself: its `name` is the host name, not a step name.
    options: { notify: options.notify },
    plan: ({ names }, part) => {
      const line = part(hostsLine);
      const rename = setHostname(name, names);
      if (!line || !rename) return line ?? rename;
      // One command for both: a sudo started between them would find its host name in neither
      // the kernel nor /etc/hosts, and wait for DNS (20 s and more) to say so.
      const [write] = line.actions;
      const [set] = rename.actions;
      if (line.actions.length !== 1 || !write || !set) return combine([line, rename]);
      const effects = afterEach(line.effects, rename.effects);
      return {
        summary: `${line.summary}; ${rename.summary}`,
        actions: [{ ...write, command: Command.join([write.command, set.command], '\n') }],
        ...(line.diff ? { diff: line.diff } : {}),
        ...(effects ? { effects } : {}),
      };
    },
  });
}

function setHostname(name: string, current: HostnameInfo): Change | undefined {
  if (current.static === name && current.transient === name) return undefined;
  // hostnamectl needs systemd-hostnamed; a container without systemd gets the two plain steps.
  const command = sh`if command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname ${name}; then :; else printf '%s\\n' ${name} > /etc/hostname && hostname ${name}; fi`;
  const from = current.static === current.transient ? current.static || '(none)' : `${current.transient} (boots as ${current.static || '(none)'})`;
  return { summary: `host name ${from} → ${name}`, actions: [{ command }], effects: { facts: { [hostnameFact.key]: { transient: name, static: name } }, writes: ['/etc/hostname'] } };
}

const ZONEINFO = '/usr/share/zoneinfo';

/**
 * Ensures the time zone: /etc/localtime a link into the zone database, and Debian's
 * /etc/timezone. An unknown zone fails at planning time (the zone's file must exist); when the
 * database itself is missing it is checked on apply, and the step fails.
 * Running services keep their zone until they restart.
 *
 * @example
 * await host.run(server.timezone({ name: 'Europe/Berlin' }));
 */
function timezone(options: TimezoneOptions): Operation {
  const { name } = options;
  if (typeof name !== 'string' || !/^[A-Za-z0-9_+-]+(?:\/[A-Za-z0-9_+-]+)*$/.test(name)) {
    throw refuse('server.timezone', `${JSON.stringify(name)} is not a time zone name such as "Europe/Berlin" or "UTC"`);
  }
  const target = `${ZONEINFO}/${name}`;
  const link = files.link({ path: '/etc/localtime', target, force: true });
  const file = files.file({ path: '/etc/timezone', content: `${name}\n`, mode: '0644' });
  return defineOperation({
    name: `server.timezone ${name}`,
    // `localtime` and `timezone`: what its files.link and files.file parts write.
    facts: { zone: zoneInfoFact(name), localtime: pathInfo('/etc/localtime'), timezone: pathInfo('/etc/timezone') },
    options: { notify: options.notify },
    plan: ({ zone, localtime }, part) => planTimezone(name, zone, localtime, part(link), part(file)),
  });
}

function zoneOf(info: PathInfo): string | undefined {
  if (info.kind !== 'link') return undefined;
  // Debian writes an absolute link, systemd a relative one; both name the same zone.
  const m = /^(?:\.\.)?\/usr\/share\/zoneinfo\/(.+)$/.exec(info.target);
  return m?.[1];
}

function planTimezone(name: string, zone: ZoneInfo, localtime: PathInfo, relink: Change | undefined, timezoneFile: Change | undefined): Change | undefined {
  if (zone.kind === 'unknown') throw refuse('server.timezone', `unknown time zone ${name}: there is no ${ZONEINFO}/${name} on the host`);
  const current = zoneOf(localtime);
  const link = current === name ? undefined : relink;
  const change = combine([link, timezoneFile]);
  if (!change) return undefined;
  const guard: Action[] =
    zone.kind === 'no-database'
      ? [{ command: sh`[ -f ${`${ZONEINFO}/${name}`} ] || { printf 'tackle: unknown time zone %s (no %s)\\n' ${name} ${`${ZONEINFO}/${name}`} >&2; exit 1; }` }]
      : [];
  const now = current ?? (localtime.kind === 'missing' ? '(none)' : 'unknown');
  // Planned as a whole, an earlier step installing tzdata leaves this unknown rather than missing.
  const note = zone.kind === 'no-database' ? ` (no ${ZONEINFO} on the host: this fails)` : '';
  const summary = link ? `time zone ${now} → ${name}${note}` : `/etc/timezone → ${name} (/etc/localtime already links to it)`;
  return { ...change, summary, actions: [...guard, ...change.actions] };
}

const SWAPPINESS_FILE = '/etc/sysctl.d/60-tackle-swappiness.conf';

/**
 * Ensures a swap file of `sizeMb` MiB (mode 0600, root), in use (`swapon`) and in /etc/fstab,
 * and optionally vm.swappiness (now and at boot). A file of another size is switched off and
 * made again. `fallocate` makes it, `dd` when the file system cannot; btrfs needs a no-COW file
 * and is not handled. Inside a container the kernel refuses `swapon` (it needs the host's
 * CAP_SYS_ADMIN), and the step fails there with that reason.
 *
 * @example
 * await host.run(server.swapfile({ sizeMb: 2048, swappiness: 10 }));
 */
function swapfile(options: SwapfileOptions): Operation {
  const path = options.path ?? '/swapfile';
  if (typeof path !== 'string' || !path.startsWith('/') || posix.normalize(path) !== path || /[\s\0]/.test(path) || path === '/') {
    throw refuse('server.swapfile', `path must be a normalised absolute path without spaces, got ${JSON.stringify(options.path)}`);
  }
  const { sizeMb, swappiness } = options;
  if (!Number.isInteger(sizeMb) || sizeMb < 1 || sizeMb > 1024 * 1024) throw refuse('server.swapfile', `sizeMb must be a whole number of MiB from 1, got ${JSON.stringify(sizeMb)}`);
  if (swappiness !== undefined && !(Number.isInteger(swappiness) && swappiness >= 0 && swappiness <= 200)) throw refuse('server.swapfile', 'swappiness must be a whole number from 0 to 200');
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const fstab = files.line({ path: '/etc/fstab', match: `^\\s*${escaped}\\s`, line: `${path} none swap sw 0 0`, create: true });
  const sysctl = swappiness === undefined ? undefined : files.file({ path: SWAPPINESS_FILE, content: `# Managed by tackle (server.swapfile).\nvm.swappiness = ${swappiness}\n`, mode: '0644' });
  return defineOperation({
    name: `server.swapfile ${path}`,
    // `fstab` and `sysctl`: the files its files.line and files.file parts write.
    facts: { swap: swapFact(path), fstab: pathInfo('/etc/fstab'), sysctl: pathInfo(SWAPPINESS_FILE) },
    options,
    plan: ({ swap }, part) => planSwap({ path, sizeMb, swappiness }, swap, part(fstab), sysctl && part(sysctl)),
  });
}

function planSwap(o: { path: string; sizeMb: number; swappiness: number | undefined }, swap: SwapInfo, fstabLine: Change | undefined, sysctlFile: Change | undefined): Change | undefined {
  const { path, sizeMb } = o;
  const bytes = sizeMb * 1024 * 1024;
  const { file } = swap;
  if (file.kind === 'other') throw refuse('server.swapfile', `${path} is a ${file.type}, not a swap file; refusing to replace it`);
  const steps: Change[] = [];
  const remake = file.kind === 'missing' || file.size !== bytes;
  if (remake) {
    const make = [
      ...(swap.active ? [sh`swapoff ${path}`] : []),
      sh`rm -f -- ${path}`,
      // umask: the file must never be readable by others, not even before the chmod.
      sh`(umask 077 && { fallocate -l ${String(bytes)} ${path} 2>/dev/null || dd if=/dev/zero of=${path} bs=1M count=${String(sizeMb)} status=none; })`,
      sh`chmod 600 ${path}`,
      sh`mkswap ${path} >/dev/null`,
    ];
    const was = file.kind === 'missing' ? 'create' : `resize (${Math.round(file.size / 1048576)} MiB → ${sizeMb} MiB${swap.active ? ', swapoff first' : ''})`;
    steps.push({ summary: `${was} ${path} (${sizeMb} MiB swap)`, actions: [{ command: Command.join(make, ' && ') }] });
  } else {
    const fix: Command[] = [];
    if (file.owner !== 'root') fix.push(sh`chown root:root ${path}`);
    if (file.mode !== '0600') fix.push(sh`chmod 600 ${path}`);
    if (!file.swap && !swap.active) fix.push(sh`mkswap ${path} >/dev/null`);
    if (fix.length) steps.push({ summary: `fix ${path} (${[file.owner !== 'root' ? 'owner' : '', file.mode !== '0600' ? `mode ${file.mode} → 0600` : '', !file.swap ? 'mkswap' : ''].filter(Boolean).join(', ')})`, actions: [{ command: Command.join(fix, ' && ') }] });
  }
  if (fstabLine) steps.push(fstabLine);
  if (sysctlFile) steps.push(sysctlFile);
  if (remake || !swap.active) steps.push({ summary: `swapon ${path}`, actions: [{ command: sh`swapon ${path}` }] });
  if (o.swappiness !== undefined && swap.swappiness !== o.swappiness) {
    steps.push({ summary: `vm.swappiness ${swap.swappiness ?? '?'} → ${o.swappiness}`, actions: [{ command: sh`sysctl -q -w ${`vm.swappiness=${o.swappiness}`}` }] });
  }
  const change = combine(steps);
  return change && { ...change, effects: { writes: [path, '/proc/swaps', '/etc/fstab', SWAPPINESS_FILE] } };
}

/**
 * Host basics: name, time zone, swap. Import it under another name where a task's parameter is `host`.
 *
 * @example
 * import { host as server } from './host.ts';
 * await host.run(server.hostname({ name: 'web1' }));
 */
export const server = { hostname, timezone, swapfile };
