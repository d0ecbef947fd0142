import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';
import { parseUfwState, UFW_STATE_SCRIPT, type UfwState } from './ufw.ts';

/** Every iptables rule of tackle's DOCKER-USER guard carries this comment (see ufw.dockerUser). */
export const DOCKER_USER_TAG = 'tackle-ufw-docker';

/** One host port a running container publishes (`docker ps`'s Ports column). */
export interface PublishedPort {
  container: string;
  /** The host address it is bound to: `0.0.0.0`, `127.0.0.1`, `::`, a specific address. */
  address: string;
  /** First and last host port (equal unless a range is published). */
  hostPort: number;
  hostPortEnd: number;
  /** The container's port (first of a range). */
  containerPort: number;
  proto: string;
}

/**
 * What Docker publishes on a host and what stands in front of it: the ports, whether tackle's
 * DOCKER-USER guard is loaded, and ufw's state, read together so that a judgement of "published
 * past the firewall" sees one moment.
 */
export type DockerPorts =
  | { kind: 'missing' }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'docker'; published: PublishedPort[]; guarded: boolean; ufw: UfwState | { kind: 'unavailable'; reason: string } };

// The sections are marked so that one command's failure cannot shift another's lines.
const SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
command -v docker >/dev/null 2>&1 || { echo missing; exit 0; }
echo docker
ps=$(docker ps --format '{{.Names}}\t{{.Ports}}' 2>&1) || { printf 'unavailable %s\n' "$ps" | head -n 3; exit 0; }
printf '%s\n' "$ps"
echo '--- guard'
iptables -S DOCKER-USER 2>/dev/null | grep -c -- '${DOCKER_USER_TAG}'
echo '--- ufw'
( ${UFW_STATE_SCRIPT} )
exit 0`;

/**
 * The ports running containers publish on the host, tackle's DOCKER-USER guard, and ufw, in one
 * read. Docker DNATs a published port in the nat table before ufw's INPUT rules see the packet,
 * so ufw alone does not protect it.
 *
 * @example
 * const ports = await host.fact(dockerPorts);
 * if (ports.kind === 'docker') ports.published.filter((p) => p.address === '0.0.0.0');
 */
export const dockerPorts: Fact<DockerPorts> = defineFact('docker.ports', sh`${raw(SCRIPT)}`, parseDockerPorts);

/**
 * Pure parser of {@link dockerPorts}.
 *
 * @example parseDockerPorts({ stdout: 'docker\npg\t0.0.0.0:5432->5432/tcp\n--- guard\n0\n--- ufw\nmissing\n', stderr: '', exitCode: 0 }).kind // 'docker'
 */
export function parseDockerPorts({ stdout, stderr, exitCode }: FactOutput): DockerPorts {
  const lines = stdout.split('\n');
  if (lines[0] === 'missing') return { kind: 'missing' };
  if (lines[0] !== 'docker' || exitCode !== 0) throw new Error(`unexpected output (exit ${exitCode}): ${JSON.stringify((stdout + stderr).slice(0, 300))}`);
  if (lines[1]?.startsWith('unavailable ')) return { kind: 'unavailable', reason: lines.slice(1).join(' ').slice('unavailable '.length).trim() };
  const guardAt = lines.indexOf('--- guard');
  const ufwAt = lines.indexOf('--- ufw');
  if (guardAt < 0 || ufwAt < guardAt) throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 300))}`);
  const published = lines.slice(1, guardAt).filter((l) => l.trim() !== '').flatMap(parsePsLine);
  const guarded = Number(lines[guardAt + 1] ?? '0') > 0;
  let ufw: UfwState | { kind: 'unavailable'; reason: string };
  try {
    ufw = parseUfwState({ stdout: lines.slice(ufwAt + 1).join('\n'), stderr: '', exitCode: 0 });
  } catch (err) {
    // Not root (ufw status refuses), say: the ports are still worth reporting.
    ufw = { kind: 'unavailable', reason: (err as Error).message };
  }
  return { kind: 'docker', published, guarded, ufw };
}

/**
 * One `NAME<TAB>PORTS` line of `docker ps` into its published ports; ports only exposed
 * (`5432/tcp`, no host side) are not published and are left out.
 *
 * @example parsePsLine('pg\t0.0.0.0:5432->5432/tcp, :::5432->5432/tcp').map((p) => p.address) // ['0.0.0.0', '::']
 */
export function parsePsLine(line: string): PublishedPort[] {
  const [container = '', ports = ''] = line.split('\t');
  return ports
    .split(/,\s*/)
    .filter((p) => p.includes('->'))
    .map((entry) => {
      // ADDRESS:PORT[-END]->PORT[-END]/PROTO, the address possibly `::` or `[::]`.
      const m = /^(.*):(\d+)(?:-(\d+))?->(\d+)(?:-\d+)?\/(\w+)$/.exec(entry.trim());
      if (!m) throw new Error(`unexpected docker ps port ${JSON.stringify(entry)}`);
      const [, address = '', first = '', last, containerPort = '', proto = ''] = m;
      return { container, address: address.replace(/^\[(.*)\]$/, '$1'), hostPort: Number(first), hostPortEnd: Number(last ?? first), containerPort: Number(containerPort), proto };
    });
}

/** Whether tackle's DOCKER-USER guard is loaded (its jumps are in the chain). */
export interface DockerUserGuard {
  loaded: boolean;
}

/**
 * Whether the rules of `ufw.dockerUser` are live in iptables' DOCKER-USER chain.
 *
 * @example const { loaded } = await host.fact(dockerUserGuard);
 */
export const dockerUserGuard: Fact<DockerUserGuard> = defineFact(
  'docker.userGuard',
  sh`PATH=$PATH:/usr/sbin:/sbin; iptables -w -S DOCKER-USER 2>/dev/null | grep -c -e ${DOCKER_USER_TAG}; exit 0`,
  ({ stdout }) => ({ loaded: Number(stdout.trim() || '0') > 0 }),
  // Kernel state: loaded by ufw from its after.init hook, so the ufw operations predict it.
  { reads: [] },
);
