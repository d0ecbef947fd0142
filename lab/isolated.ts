// Places on lab hosts that this machine cannot reach directly, for tests of tackle's ways in:
// a host whose network is only routed from another lab host (a bastion), and a nested root
// (a chroot) inside a host, entered with a wrapper command the way a container is.
//
// Built from the names lab/lab.ts gives things: namespace `tkl-N-NAME` for host NAME,
// veth `tkl-N-hI` (this machine's end) for the I-th host. New links are named `tkl-N-j…` and
// live inside the hosts' namespaces, so they go when the lab goes.
import { check } from './exec.ts';
import type { Lab } from './lab.ts';

export interface Isolation {
  /** Puts the host back on the lab bridge and removes the private link. */
  undo(): Promise<void>;
}

function hostIndex(lab: Lab, name: string): number {
  const i = lab.hosts.findIndex((h) => h.name === name);
  if (i < 0) throw new TypeError(`lab ${lab.index} has no host ${JSON.stringify(name)}`);
  return i;
}

/**
 * Cuts `hostName` off the lab bridge and links it to `bastionName` alone, with a veth pair
 * between their namespaces: the host keeps its address, the bastion reaches it over the new
 * link (a /32 route), and this machine has no way to it any more (its ARP goes unanswered,
 * as the bastion does not proxy). Nothing is forwarded: the host reaches nothing but the bastion.
 *
 * @example
 * const iso = await isolateBehind(lab, 'lab2', 'lab1');
 * // ssh root@lab2 fails from here; ssh -J root@lab1 root@lab2 works
 */
export async function isolateBehind(lab: Lab, hostName: string, bastionName: string): Promise<Isolation> {
  if (hostName === bastionName) throw new TypeError('a host cannot be its own bastion');
  const i = hostIndex(lab, hostName);
  hostIndex(lab, bastionName);
  const prefix = `tkl-${lab.index}`;
  const hostNs = `${prefix}-${hostName}`;
  const bastionNs = `${prefix}-${bastionName}`;
  const bridgeSide = `${prefix}-h${i + 1}`;
  // Short names: interface names have at most 15 characters.
  const atBastion = `${prefix}-j${i + 1}b`;
  const atHost = `${prefix}-j${i + 1}h`;
  const host = lab.host(hostName).address;
  const bastion = lab.host(bastionName).address;

  await check('ip', ['link', 'set', bridgeSide, 'down']);
  await check('ip', ['link', 'add', atBastion, 'type', 'veth', 'peer', 'name', atHost]);
  await check('ip', ['link', 'set', atBastion, 'netns', bastionNs]);
  await check('ip', ['link', 'set', atHost, 'netns', hostNs]);
  await check('ip', ['-netns', bastionNs, '-batch', '-'], { input: `link set ${atBastion} up\nroute add ${host}/32 dev ${atBastion}\n` });
  await check('ip', ['-netns', hostNs, '-batch', '-'], { input: `link set ${atHost} up\nroute add ${bastion}/32 dev ${atHost}\n` });
  return {
    undo: async () => {
      // Deleting one end of a veth pair deletes both, and the /32 routes with them.
      await check('ip', ['-netns', bastionNs, 'link', 'delete', atBastion]);
      await check('ip', ['link', 'set', bridgeSide, 'up']);
    },
  };
}

/**
 * OpenSSH client arguments (before the remote command) that reach `hostName` through
 * `bastionName` with a ProxyCommand: an oracle independent of tackle's own jump support.
 *
 * @example await run('ssh', [...sshArgsVia(lab, 'lab2', 'lab1'), '--', 'hostname'])
 */
export function sshArgsVia(lab: Lab, hostName: string, bastionName: string): string[] {
  const target = lab.sshArgs(hostName);
  const quote = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
  const proxy = `ssh ${lab.sshArgs(bastionName).map(quote).join(' ')} -W %h:%p`;
  return [...target.slice(0, -1), '-o', `ProxyCommand=${proxy}`, target.at(-1) as string];
}

/**
 * A shell script that makes DIR, on a Debian host, a minimal root to chroot into: the host's
 * /usr bound read-only (with the usual bin/lib links to it), /dev bound, its own /etc (copies
 * of passwd and group) and /tmp. Idempotent. Mounts made inside a lab host go with the host.
 *
 * @example await lab.ssh('lab1', nestedRootScript('/srv/nested'))
 */
export function nestedRootScript(dir: string): string {
  if (!/^\/[A-Za-z0-9/_.-]+$/.test(dir)) throw new TypeError(`nested root must be a plain absolute path, got ${JSON.stringify(dir)}`);
  return [
    'set -e',
    `d=${dir}`,
    'mkdir -p "$d/usr" "$d/etc" "$d/dev" "$d/tmp" "$d/root" "$d/srv"',
    'mountpoint -q "$d/usr" || { mount --bind /usr "$d/usr" && mount -o remount,bind,ro "$d/usr"; }',
    'mountpoint -q "$d/dev" || mount --bind /dev "$d/dev"',
    'for l in bin sbin lib lib32 lib64 libx32; do if [ -L "/$l" ] && [ ! -e "$d/$l" ]; then ln -s "usr/$l" "$d/$l"; fi; done',
    'cp /etc/passwd /etc/group "$d/etc/"',
    'chmod 1777 "$d/tmp"',
  ].join('\n');
}
