import { sh, type Command } from '../command/command.ts';
import type { Connection, ExecResult } from '../connection/connection.ts';
import { TackleError, tail } from '../errors.ts';
import { Interrupted } from './host-run.ts';
import type { FactBatch } from '../facts/gather.ts';
import { parseStart, startScript, type HostStart } from './pending-handlers.ts';

// One run at a time per host: two runs interleaving fact reads and writes lose each other's work.
// The lock is flock(1) on a descriptor the host's session shell opens and keeps (fd 9; the
// commands it runs do not inherit it): it is held while the session lives, so it goes when the
// run closes its connection, or when the connection dies with the controller (the session then
// ends, see lib/connection/session.ts), and a killed controller never leaves a host locked. It
// goes through the host's connection as-is (sudo, a container's wrapper), so it locks where the
// run works, and it costs no channel of its own.

/** Where hosts keep the lock. A directory: flock opens it without O_CREAT, which fs.protected_regular refuses for a file another user created. */
export const DEFAULT_LOCK_DIR = '/run/lock/tackle';

/** flock's exit code when the wait timed out (`-E`), apart from its other failures. */
const BUSY_EXIT = 75;
const LOCKED = 'tackle-locked';
const BUSY = 'tackle-busy';

export interface LockOptions {
  /** Seconds to wait for another run's lock before failing the host. */
  timeoutSeconds: number;
  /** Who is asking, as a waiting run shows it: `task provision from CONTROLLER (pid N)`; the host adds `since TIME`. */
  holder: string;
  /** The lock directory; {@link DEFAULT_LOCK_DIR} by default. */
  dir?: string;
  /** Aborting gives up waiting (Ctrl-C): the session is closed, and the lock with it should flock get it after all. */
  signal?: AbortSignal;
}

/** A lock held on a host, with what the run found there in the same round trip. */
export interface HeldLock extends HostStart {
  /** Lets go of the lock while the connection stays open; closing the connection lets go of it too. */
  release(): Promise<void>;
}

/**
 * The script the session shell itself runs (`inShell`): open the lock directory on fd 9, wait up
 * to the timeout for the lock, record who holds it beside it, print the host's state (`read`, in a
 * subshell so its variables stay its own, without the session's descriptors). On timeout it prints the holder record and exits 75.
 * A failed `exec 9<` must not end the session shell, hence `command exec`.
 *
 * @example lockCommand({ timeoutSeconds: 300, holder: 'task web from ctl (pid 42)' }, readStateScript('web'))
 */
export function lockCommand(opts: LockOptions, read: Command): Command {
  const dir = opts.dir ?? DEFAULT_LOCK_DIR;
  const record = `${dir}/holder`;
  const busy = String(BUSY_EXIT);
  // The marker goes first: a session whose controller is already gone dies on it before
  // overwriting the record of the run that really holds the lock.
  return sh`[ -d ${dir} ] || mkdir -p ${dir} 2>/dev/null; if command exec 9<${dir}; then if flock -w ${String(opts.timeoutSeconds)} -E ${busy} 9; then echo ${LOCKED} && printf '%s since %s\n' ${opts.holder} "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > ${record} 2>/dev/null; (${read}) 8<&- 9<&-; else tackle_rc=$?; exec 9<&-; if [ "$tackle_rc" = ${busy} ]; then printf '%s %s\n' ${BUSY} "$(cat ${record} 2>/dev/null)"; fi; (exit "$tackle_rc"); fi; else (exit 1); fi`;
}

/**
 * Takes the run lock on a host in its session and reads its state, and the facts of `batch`, in
 * the same round trip. Rejects with a TackleError naming the holder when the lock stays busy past
 * the timeout ("busy: task provision from ctl (pid 42) since 2026-11-30T10:00:00Z"), or with
 * {@link Interrupted} when `signal` aborts the wait.
 *
 * @example
 * const lock = await takeHostLock(conn, { timeoutSeconds: 300, holder }, readStateScript('web'), factBatch(facts));
 * try { … } finally { await conn.close(); }
 */
export async function takeHostLock(conn: Connection, opts: LockOptions, read: Command, batch?: FactBatch): Promise<HeldLock> {
  if (batch) conn.countCommands(batch.commands);
  const result = await conn.exec(lockCommand(opts, startScript(read, batch)), { inShell: true, ...(opts.signal ? { signal: opts.signal } : {}) });
  if (opts.signal?.aborted) throw new Interrupted();
  if (result.exitCode !== 0 || !result.stdout.startsWith(`${LOCKED}\n`)) throw lockError(conn.host, opts, result);
  return {
    ...parseStart(conn.host, result, batch),
    // A session that has ended holds nothing any more.
    release: () => conn.exec(sh`exec 9<&-`, { inShell: true }).then(() => {}, () => {}),
  };
}
function lockError(host: string, opts: LockOptions, result: ExecResult): TackleError {
  const dir = opts.dir ?? DEFAULT_LOCK_DIR;
  const busy = result.stdout.split('\n').find((l) => l.startsWith(`${BUSY} `));
  if (result.exitCode === BUSY_EXIT && busy !== undefined) {
    const holder = busy.slice(BUSY.length + 1).trim() || `another run (it left no record in ${dir}/holder)`;
    return new TackleError({ phase: 'task', host, reason: `busy: ${holder} holds the lock ${dir}; gave up after ${opts.timeoutSeconds} s (--lock-timeout)` });
  }
  return new TackleError({
    phase: 'command',
    host,
    reason: `could not take the run lock ${dir}${result.exitCode === 127 ? ': flock is not installed on the host (util-linux)' : ''}`,
    command: result.command.toString(),
    exitCode: result.exitCode,
    signal: result.signal,
    stderrTail: tail(result.stderr || result.stdout),
  });
}
