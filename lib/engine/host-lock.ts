import { sh, type Command } from '../command/command.ts';
import type { Connection, ExecResult } from '../connection/connection.ts';
import { TackleError, tail } from '../errors.ts';
import { Interrupted } from './host-run.ts';
import { parseHostState, type HostState } from './pending-handlers.ts';

// One run at a time per host: two runs interleaving fact reads and writes lose each other's work.
// The lock is flock(1) held by one exec channel that stays open for the whole run: its last
// command waits for end of input, which comes when the run releases it or when the connection
// dies with the controller, so a killed controller never leaves a host locked. It goes through
// the host's connection as-is (sudo, a container's wrapper), so it locks where the run works.

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
  /** Aborting gives up waiting (Ctrl-C); an already taken lock is unaffected. */
  signal?: AbortSignal;
}

/** A lock held on a host, with what the run found there in the same round trip. */
export interface HeldLock {
  state: HostState;
  /** Ends the holder's input: the lock is free on the host once this resolves. */
  release(): Promise<void>;
}

/**
 * The holder's command: wait up to the timeout for the lock, record who holds it beside it, print
 * the host's state (`read`), then keep the lock until stdin ends. On timeout it prints the holder
 * record and exits 75.
 *
 * @example lockCommand({ timeoutSeconds: 300, holder: 'task web from ctl (pid 42)' }, readStateScript('web'))
 */
export function lockCommand(opts: LockOptions, read: Command): Command {
  const dir = opts.dir ?? DEFAULT_LOCK_DIR;
  const record = `${dir}/holder`;
  // The marker goes first: a holder whose controller is already gone dies on it before
  // overwriting the record of the run that really holds the lock.
  const holder = sh`echo ${LOCKED} && { printf '%s since %s\\n' ${opts.holder} "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > ${record} 2>/dev/null; ${read}; exec cat >/dev/null; }`;
  return sh`mkdir -p ${dir} 2>/dev/null; flock -w ${String(opts.timeoutSeconds)} -E ${String(BUSY_EXIT)} ${dir} sh -c ${holder.asArgument()} || { rc=$?; if [ "$rc" = ${String(BUSY_EXIT)} ]; then printf '%s %s\\n' ${BUSY} "$(cat ${record} 2>/dev/null)"; fi; exit "$rc"; }`;
}

/**
 * Takes the run lock on a host and reads its state in the same round trip. Rejects with a
 * TackleError naming the holder when the lock stays busy past the timeout ("busy: task provision
 * from ctl (pid 42) since 2026-11-30T10:00:00Z"), or with {@link Interrupted} when `signal` aborts
 * the wait.
 *
 * @example
 * const lock = await takeHostLock(conn, { timeoutSeconds: 300, holder }, readStateScript('web'));
 * try { … } finally { await lock.release(); }
 */
export function takeHostLock(conn: Connection, opts: LockOptions, read: Command): Promise<HeldLock> {
  const release = new AbortController();
  const command = lockCommand(opts, read);
  return new Promise((resolve, reject) => {
    let settled = false;
    let out = '';
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    // Giving up ends the holder's input too: if flock gets the lock after all, it lets go at once.
    const onAbort = (): void => settle(() => (release.abort(), reject(new Interrupted())));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const held = conn.exec(command, {
      holdStdin: true,
      signal: release.signal,
      onStdout: (chunk) => {
        if (settled) return;
        out += chunk.toString();
        if (!out.startsWith(`${LOCKED}\n`)) return;
        try {
          const state = parseHostState(out);
          if (state) settle(() => resolve({ state, release: () => (release.abort(), held.then(() => {}, () => {})) }));
        } catch (err) {
          release.abort();
          settle(() => reject(new TackleError({ phase: 'fact', host: conn.host, reason: (err as Error).message, cause: err })));
        }
      },
    });
    held.then(
      (result) => settle(() => reject(lockError(conn.host, opts, result))),
      (err: unknown) => settle(() => reject(err)),
    );
    if (opts.signal?.aborted) onAbort();
  });
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
