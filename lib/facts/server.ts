import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** The host's names: the kernel's (transient) and the one it boots with (/etc/hostname). */
export interface HostnameInfo {
  transient: string;
  /** `''` when /etc/hostname is missing or empty. */
  static: string;
}

/**
 * The running host name and /etc/hostname.
 *
 * @example
 * const { transient, static: configured } = await host.fact(hostnameFact);
 */
export const hostnameFact: Fact<HostnameInfo> = defineFact(
  'server.hostname',
  sh`printf 'transient %s\\n' "$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"; printf 'static %s\\n' "$(head -n 1 /etc/hostname 2>/dev/null)"`,
  parseHostname,
  // The kernel's name is set by the command that writes /etc/hostname (server.hostname predicts both).
  { reads: ['/etc/hostname'] },
);

/**
 * Pure parser of {@link hostnameFact}.
 *
 * @example parseHostname({ stdout: 'transient web1\nstatic web1\n', stderr: '', exitCode: 0 }) // { transient: 'web1', static: 'web1' }
 */
export function parseHostname({ stdout }: FactOutput): HostnameInfo {
  const get = (key: string) => new RegExp(`^${key} ?(.*)$`, 'm').exec(stdout)?.[1]?.trim() ?? '';
  return { transient: get('transient'), static: get('static') };
}

/** Whether a time zone can be set: the zone database and the zone's own file. */
export type ZoneInfo =
  /** No /usr/share/zoneinfo at all (tzdata not installed, maybe only planned). */
  | { kind: 'no-database' }
  | { kind: 'unknown' }
  | { kind: 'zone' };

/**
 * Whether `/usr/share/zoneinfo/NAME` exists, so an unknown zone fails at planning time.
 *
 * @example
 * const z = await host.fact(zoneInfoFact('Europe/Berlin'));
 */
export function zoneInfoFact(name: string): Fact<ZoneInfo> {
  return defineFact(
    `host.zoneinfo:${name}`,
    sh`if [ ! -d /usr/share/zoneinfo ]; then echo no-database; elif [ -f /usr/share/zoneinfo/${name} ]; then echo zone; else echo unknown; fi`,
    parseZoneInfo,
    { reads: ['/usr/share/zoneinfo/'] },
  );
}

/**
 * Pure parser of {@link zoneInfoFact}.
 *
 * @example parseZoneInfo({ stdout: 'zone\n', stderr: '', exitCode: 0 }) // { kind: 'zone' }
 */
export function parseZoneInfo({ stdout }: FactOutput): ZoneInfo {
  const word = stdout.trim();
  if (word === 'zone' || word === 'unknown' || word === 'no-database') return { kind: word };
  throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 100))}`);
}

/** A swap file: what is at its path, whether the kernel uses it, and vm.swappiness. */
export interface SwapInfo {
  file:
    | { kind: 'missing' }
    /** `swap`: blkid finds a swap signature. */
    | { kind: 'file'; size: number; mode: string; owner: string; swap: boolean }
    | { kind: 'other'; type: string };
  /** Listed in /proc/swaps. */
  active: boolean;
  /** /proc/sys/vm/swappiness, or undefined when unreadable. */
  swappiness: number | undefined;
}

// stat instead of the files fact: a sha256 of a multi-gigabyte swap file would cost seconds.
const SWAP_SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
if [ -L "$p" ] || { [ -e "$p" ] && [ ! -f "$p" ]; }; then echo "other $(stat -c %F -- "$p")"
elif [ -f "$p" ]; then
  sig=no; [ "$(blkid -p -o value -s TYPE -- "$p" 2>/dev/null)" = swap ] && sig=yes
  echo "file $(stat -c '%s %a %U' -- "$p") $sig"
else echo missing; fi
if awk -v p="$p" 'NR > 1 && $1 == p { found = 1 } END { exit !found }' /proc/swaps 2>/dev/null; then echo active; else echo inactive; fi
echo "swappiness $(cat /proc/sys/vm/swappiness 2>/dev/null)"`;

/**
 * A swap file's state, from stat, blkid and /proc/swaps.
 *
 * @example
 * const s = await host.fact(swapFact('/swapfile'));
 * if (s.file.kind === 'file' && !s.active) console.log('present but not in use');
 */
export function swapFact(path: string): Fact<SwapInfo> {
  return defineFact(`host.swap:${path}`, sh`p=${path}\n${raw(SWAP_SCRIPT)}`, parseSwap, { reads: [path, '/proc/swaps'] });
}

/**
 * Pure parser of {@link swapFact}.
 *
 * @example parseSwap({ stdout: 'missing\ninactive\nswappiness 60\n', stderr: '', exitCode: 0 }) // { file: { kind: 'missing' }, active: false, swappiness: 60 }
 */
export function parseSwap({ stdout, stderr, exitCode }: FactOutput): SwapInfo {
  const [first = '', second = '', third = ''] = stdout.split('\n');
  const words = first.split(' ');
  let file: SwapInfo['file'];
  if (words[0] === 'missing') file = { kind: 'missing' };
  else if (words[0] === 'other') file = { kind: 'other', type: words.slice(1).join(' ') };
  else if (words[0] === 'file' && words.length === 5 && /^\d+$/.test(words[1] ?? '') && /^[0-7]{1,4}$/.test(words[2] ?? '')) {
    file = { kind: 'file', size: Number(words[1]), mode: (words[2] ?? '').padStart(4, '0'), owner: words[3] ?? '', swap: words[4] === 'yes' };
  } else throw new Error(`unexpected output (exit ${exitCode}): ${JSON.stringify((stdout + stderr).slice(0, 200))}`);
  if (second !== 'active' && second !== 'inactive') throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const value = /^swappiness (\d+)$/.exec(third)?.[1];
  return { file, active: second === 'active', swappiness: value === undefined ? undefined : Number(value) };
}
