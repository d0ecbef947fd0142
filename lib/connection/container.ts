import { sh, type Command } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { WrappedConnection, type Connection } from './connection.ts';

/**
 * How a parent host enters one of its containers: Proxmox `pct exec`, `docker exec`, or any
 * command that runs its trailing arguments inside (e.g. `['chroot', '/srv/nested']`,
 * `['machinectl', 'shell', 'ct1']`, `['lxc-attach', '-n', 'ct1', '--']`).
 */
export type ContainerVia = 'pct' | 'docker' | { readonly wrap: readonly string[] };

/** A container on a parent host: how to enter it, and its id (the VMID, the docker name). */
export interface ContainerSpec {
  via: ContainerVia;
  /** Required for `pct` (a numeric VMID) and `docker` (a name or id); not used with `wrap`. */
  id?: string;
}

/**
 * Why a container spec is unusable, or undefined when it is fine. Shared by the inventory's
 * validation and the connection, so both say the same thing.
 *
 * @example containerSpecProblem({ via: 'pct', id: 'web' }) // 'pct needs a numeric VMID as id, got "web"'
 */
export function containerSpecProblem(spec: ContainerSpec): string | undefined {
  const { via, id } = spec;
  if (via === 'pct') return id !== undefined && /^\d+$/.test(id) ? undefined : `pct needs a numeric VMID as id, got ${JSON.stringify(id)}`;
  if (via === 'docker') {
    // Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; ids are hex. A leading '-' would read as an option.
    return id !== undefined && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id) ? undefined : `docker needs a container name or id as id, got ${JSON.stringify(id)}`;
  }
  if (typeof via !== 'object' || via === null || !Array.isArray(via.wrap)) return `via must be 'pct', 'docker' or { wrap: [command, ...args] }, got ${JSON.stringify(via)}`;
  if (via.wrap.length === 0 || via.wrap.some((w) => typeof w !== 'string' || w === '')) return 'wrap must be a non-empty list of non-empty words';
  if (id !== undefined) return 'id is not used with wrap: put everything in the wrap words';
  return undefined;
}

/**
 * The command the parent runs to run `command` inside the container, as one `sh -c` word so that
 * the inner shell (not the parent's) reads its pipes, redirections and `cd`. Stdin passes through
 * (`docker exec -i`), so file transfers over stdin work unchanged. The connection passes only a
 * {@link framed} line here, so a command's text (and its secrets) never reaches these arguments.
 *
 * @example
 * wrapCommand({ via: 'pct', id: '101' }, sh`cat /etc/hostname`).toString()
 * // "pct exec 101 -- sh -c 'cat /etc/hostname'"
 */
export function wrapCommand(spec: ContainerSpec, command: Command): Command {
  const inner = command.asArgument();
  if (spec.via === 'pct') return sh`pct exec ${spec.id ?? ''} -- sh -c ${inner}`;
  if (spec.via === 'docker') return sh`docker exec -i ${spec.id ?? ''} sh -c ${inner}`;
  return sh`${spec.via.wrap} sh -c ${inner}`;
}

/** How a container spec reads in messages. @example describeContainer({ via: 'pct', id: '101' }) // 'pct 101' */
export function describeContainer(spec: ContainerSpec): string {
  return typeof spec.via === 'string' ? `${spec.via} ${spec.id ?? ''}` : spec.via.wrap.join(' ');
}

/**
 * A host that is a container on a parent host: every command runs on the parent's connection,
 * wrapped to enter the container. It owns the parent connection and closes it.
 *
 * @example
 * const ct = await openContainer(await openConnection(pve, inv, ctx), 'ct101', { via: 'pct', id: '101' });
 * await ct.exec(sh`hostname`);
 */
export class ContainerConnection extends WrappedConnection {
  constructor(
    readonly host: string,
    readonly parent: Connection,
    readonly spec: ContainerSpec,
  ) {
    super(parent);
    const problem = containerSpecProblem(spec);
    if (problem) throw new TypeError(`container ${host}: ${problem}`);
  }

  protected wrap(line: Command): Command {
    return wrapCommand(this.spec, line);
  }
}

/**
 * Wraps a parent's connection for a container and proves it can be entered (one `true`), so a
 * stopped container or a missing `pct`/`docker` is an unreachable host, not a failed first step.
 * On failure the parent connection is closed.
 *
 * @example const ct = await openContainer(parentConn, 'web', { via: 'docker', id: 'web' });
 */
export async function openContainer(parent: Connection, host: string, spec: ContainerSpec): Promise<ContainerConnection> {
  try {
    const conn = new ContainerConnection(host, parent, spec);
    const probe = await conn.exec(sh`true`);
    if (probe.exitCode !== 0) {
      throw new TackleError({
        phase: 'connect',
        host,
        reason: `cannot enter container (${describeContainer(spec)}) on ${parent.host}: exit code ${probe.exitCode}`,
        command: wrapCommand(spec, sh`true`).toString(),
        exitCode: probe.exitCode,
        stderrTail: tail(probe.stderr || probe.stdout),
      });
    }
    return conn;
  } catch (err) {
    await parent.close().catch(() => {});
    throw err;
  }
}
