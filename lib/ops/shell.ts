import { posix } from 'node:path';
import type { Command, Secret } from '../command/command.ts';
import type { Stdin } from '../connection/connection.ts';
import { defineOperation, type CommonOptions, type Effects, type Operation } from './operation.ts';
import type { Fact } from '../facts/fact.ts';
import {
  exitStatusFact,
  inContext,
  pathPresenceFact,
  type ExitStatus,
  type PathPresence,
} from '../facts/shell.ts';

/** A command to run, and the guards that say when it need not. */
export interface ShellOptions extends CommonOptions {
  command: Command;
  /** Skip when this path exists. Relative to `cwd` when given. No globs. */
  creates?: string;
  /** Skip when this path does not exist. Relative to `cwd` when given. No globs. */
  removes?: string;
  /** Skip when this read-only command exits 0 (runs in `cwd` with `env`, in dry-run too). */
  unless?: Command;
  /** Run only when this read-only command exits 0 (runs in `cwd` with `env`, in dry-run too). */
  onlyIf?: Command;
  cwd?: string;
  /**
   * Added to the environment; `secret()` values are masked in every output. The command's text
   * reaches the host over stdin, so a secret in it or here is in no shell's arguments; a program
   * given a secret as an argument (`curl -u ${token}`) still shows it in `ps`: pass it here instead.
   */
  env?: Readonly<Record<string, string | Secret>>;
  stdin?: Stdin;
  /**
   * The paths the command changes (one ending in `/`: the tree below it), so that a task planned
   * as a whole can plan the steps after it. Without it the command may change anything: after it
   * every fact is unknown until it ran.
   */
  writes?: readonly string[];
}

type Guard = PathPresence | ExitStatus;

/**
 * Runs a shell command as root. With no guard it runs, and reports `changed`,
 * on every run: give `creates`, `removes`, `unless` or `onlyIf` to make it
 * idempotent. Guards are facts, so a dry-run says truthfully whether it would
 * run; all guards given must allow it. A non-zero exit fails the step.
 * The step is named `shell NAME`, or after the (masked, shortened) command.
 *
 * @example
 * await host.run(shell({ name: 'build app', command: sh`make install`, cwd: '/srv/app', creates: 'bin/app' }));
 * await host.run(shell({ command: sh`psql -c ${sql}`, env: { PGPASSWORD: secret(pw) }, unless: sh`test -f /srv/.seeded` }));
 */
export function shell(options: ShellOptions): Operation {
  const { command, cwd, env } = options;
  const context = { cwd, env };
  // Like Ansible, relative creates/removes paths are taken from cwd.
  const resolve = (path: string): string => (cwd === undefined ? path : posix.resolve(cwd, path));
  const facts: Record<string, Fact<Guard>> = {};
  // Each guard names the fact value that means "skip".
  const skipWhen: Record<string, Guard['kind']> = {};
  const guard = (key: string, fact: Fact<Guard>, skip: Guard['kind']): void => {
    facts[key] = fact;
    skipWhen[key] = skip;
  };
  if (options.creates !== undefined) guard('creates', pathPresenceFact(resolve(options.creates)), 'exists');
  if (options.removes !== undefined) guard('removes', pathPresenceFact(resolve(options.removes)), 'missing');
  if (options.unless !== undefined) guard('unless', exitStatusFact(options.unless, context), 'success');
  if (options.onlyIf !== undefined) guard('onlyIf', exitStatusFact(options.onlyIf, context), 'failure');

  const run = cwd === undefined && env === undefined ? command : inContext(command, context);
  // A command that says what it writes leaves the rest as it was; `creates` exists after it.
  const effects: Effects | undefined = options.writes && {
    writes: options.writes.map((p) => (p.endsWith('/') ? `${resolve(p)}/` : resolve(p))),
    facts: options.creates === undefined ? {} : { [pathPresenceFact(resolve(options.creates)).key]: { kind: 'exists' } },
  };
  const shown = shorten(command.toString());
  return defineOperation({
    name: `shell ${options.name ?? shown}`,
    facts,
    // The step name is built above from `name`; passing it on would drop the `shell ` prefix.
    options: { notify: options.notify },
    plan: (values) => {
      if (Object.entries(values).some(([key, value]) => value.kind === skipWhen[key])) return undefined;
      return { summary: `run ${shown}`, actions: [options.stdin === undefined ? { command: run } : { command: run, stdin: options.stdin }], ...(effects ? { effects } : {}) };
    },
  });
}

/** One line of at most `max` characters, for step names and summaries. */
function shorten(text: string, max = 60): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
