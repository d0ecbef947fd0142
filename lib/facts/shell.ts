import { randomUUID } from 'node:crypto';
import { Command, type Secret, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** Whether a path exists (`test -e`: a dangling symlink counts as missing). */
export type PathPresence = { kind: 'exists' } | { kind: 'missing' };

/**
 * Whether PATH exists on the host; the guard behind `creates`/`removes`.
 *
 * @example
 * const built = await host.fact(pathPresenceFact('/opt/app/bin/app'));
 * if (built.kind === 'missing') await host.run(shell({ command: sh`make install` }));
 */
export function pathPresenceFact(path: string): Fact<PathPresence> {
  return defineFact(`shell.pathPresence ${path}`, sh`test -e ${path}`, parsePathPresence, { reads: [path] });
}

/**
 * Pure parser of {@link pathPresenceFact}'s output.
 *
 * @example
 * parsePathPresence({ stdout: '', stderr: '', exitCode: 1 }) // { kind: 'missing' }
 */
export function parsePathPresence({ exitCode }: FactOutput): PathPresence {
  if (exitCode === 0) return { kind: 'exists' };
  if (exitCode === 1) return { kind: 'missing' };
  throw new Error(`test -e exited with code ${exitCode}`);
}

/** How a guard command ended. */
export type ExitStatus = { kind: 'success' } | { kind: 'failure'; exitCode: number | null };

/** Where and with what environment a command runs. */
export interface CommandContext {
  cwd?: string;
  env?: Readonly<Record<string, string | Secret>>;
}

/**
 * The command run in `cwd` with `env` added, in a subshell so that its `;`, `exit` or `cd`
 * cannot escape the context. The variables are exported inside (not passed to a nested `sh -c`,
 * whose arguments would show the command, secrets and all, in `ps`). Secret values stay masked.
 *
 * @example
 * inContext(sh`make`, { cwd: '/srv/app', env: { CC: 'clang' } }).toString() // "(cd /srv/app || exit\nexport CC=clang\nmake\n)"
 */
export function inContext(command: Command, { cwd, env = {} }: CommandContext): Command {
  const assignments = Object.entries(env).map(([name, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`env: ${JSON.stringify(name)} is not a valid variable name`);
    return sh`${name}=${value}`;
  });
  const lines = [...(cwd === undefined ? [] : [sh`cd ${cwd} || exit`]), ...(assignments.length ? [sh`export ${assignments}`] : []), command];
  // The newline before ')' keeps a trailing comment in the command from swallowing it.
  return sh`(${Command.join(lines, '\n')}\n)`;
}

/**
 * The exit status of a read-only command, output discarded: the guard behind
 * `unless`/`onlyIf`. It runs in dry-run too, so it must change nothing.
 *
 * @example
 * const s = await host.fact(exitStatusFact(sh`systemctl is-active nginx`));
 * if (s.kind === 'failure') console.log(`inactive (${s.exitCode})`);
 */
export function exitStatusFact(command: Command, context: CommandContext = {}): Fact<ExitStatus> {
  const guard = inContext(command, context);
  // The masked text cannot tell two secrets apart: such a guard gets a cache key of its own.
  const key = guard.secrets().length ? `shell.exitStatus #${randomUUID()}` : `shell.exitStatus ${guard.toString()}`;
  // Any change may alter what an arbitrary command answers: a planned change leaves it unknown.
  return defineFact(key, sh`${guard} >/dev/null 2>&1`, parseExitStatus, { volatile: true });
}

/**
 * Pure parser of {@link exitStatusFact}'s output.
 *
 * @example
 * parseExitStatus({ stdout: '', stderr: '', exitCode: 3 }) // { kind: 'failure', exitCode: 3 }
 */
export function parseExitStatus({ exitCode }: FactOutput): ExitStatus {
  return exitCode === 0 ? { kind: 'success' } : { kind: 'failure', exitCode };
}
