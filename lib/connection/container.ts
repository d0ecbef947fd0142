import { sh, type Command } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { containerSpecProblem, describeContainer, type ContainerSpec } from '../inventory/container.ts';
import { WrappedConnection, type Connection } from './connection.ts';

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
 * Wraps a parent's connection for a container and proves it can be entered (one `true`, which
 * starts the container's session), so a
 * stopped container or a missing `pct`/`docker` is an unreachable host, not a failed first step.
 * On failure the parent connection is closed.
 *
 * @example const ct = await openContainer(parentConn, 'web', { via: 'docker', id: 'web' });
 */
export async function openContainer(parent: Connection, host: string, spec: ContainerSpec): Promise<ContainerConnection> {
  try {
    const conn = new ContainerConnection(host, parent, spec);
    // The way in failing (a stopped container) ends the session before `true` answers.
    const probe = await conn.exec(sh`true`).catch((err: unknown) => {
      if (!(err instanceof TackleError) || err.phase === 'connect') throw err;
      return { exitCode: err.exitCode ?? null, stdout: '', stderr: err.stderrTail ?? '' };
    });
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
