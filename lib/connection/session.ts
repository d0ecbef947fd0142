import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { Command, mask, raw, sh } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { framed, stdinBytes, type ExecOptions, type ExecResult, type Exit, type Spawned } from './connection.ts';

/**
 * The loop a host's one long-lived shell runs: it reads requests from its stdin (kept on fd 8; the
 * shell's own stdin becomes /dev/null) and answers each with the command's output on its stdout
 * and stderr, each ended by the request's marker line (stdout's carries the exit code).
 *
 * A request is a header line `KIND SCRIPT_BYTES BLOCKS REST MARKER`, then the script, then the
 * payload: BLOCKS whole 64 KiB blocks and REST bytes (`- -` when there is none). `dd iflag=fullblock`
 * reads exactly that many bytes in GNU coreutils and BusyBox alike, and streams a large payload.
 * - `run`: the command runs in a child `sh` that reads the script from a pipe with the payload after
 *   it, so its argv is a constant line holding only the script's length, `$$` is its own, and it cannot
 *   touch the session's variables or descriptors (8, the requests; 9, the run lock). Whatever of the
 *   payload it leaves unread is drained, so the next request starts where it should.
 *   Without a payload a watchdog reads the session's stdin while the command runs: no request comes
 *   before this one's answer, so the only thing it can see is the end of input (the controller is gone,
 *   or it stopped the run), and then the session's process group (the command, the shell; no job
 *   control, so one group) is ended with SIGTERM, releasing the lock.
 *   With a payload the copy itself sees that end: the command gets fewer bytes than planned (a file
 *   write checks size and sha256 and installs nothing) and the session ends after it.
 * - `shell`: the script is evaluated by the session shell itself, so a descriptor it opens (the run
 *   lock) stays open for the following commands. Only for tackle's own fixed scripts.
 */
export const SESSION_LOOP = `exec 8<&0 </dev/null
tackle_feed() {
  printf '%s' "$tackle_script"
  [ "$tackle_q" = - ] && return 0
  dd bs=65536 count="$tackle_q" iflag=fullblock status=none <&8
  [ "$tackle_r" = 0 ] || dd bs="$tackle_r" count=1 iflag=fullblock status=none <&8
}
tackle_child() {
  (exec sh -c "tackle_script=\\$(dd bs=$tackle_s count=1 iflag=fullblock status=none) && eval \\"\\$tackle_script\\"" 2>&7 7>&-)
  tackle_rc=$?
  cat >/dev/null
  return "$tackle_rc"
}
while read -r tackle_kind tackle_s tackle_q tackle_r tackle_m <&8; do
  tackle_script=$(dd bs="$tackle_s" count=1 iflag=fullblock status=none <&8)
  if [ "$tackle_kind" = shell ]; then
    eval "$tackle_script"
    tackle_rc=$?
  elif [ "$tackle_q" = - ]; then
    dd bs=1 count=1 status=none <&8 >/dev/null 2>&1 &
    tackle_w=$!
    { tackle_feed | tackle_child; tackle_rc=$?; kill "$tackle_w" 2>/dev/null; exit "$tackle_rc"; } 7>&2 2>/dev/null 8<&- 9<&- &
    tackle_c=$!
    wait "$tackle_w" 2>/dev/null
    [ $? = 143 ] || { kill 0; exit 129; }
    wait "$tackle_c"
    tackle_rc=$?
  else
    { tackle_feed | tackle_child 8<&-; } 7>&2 2>/dev/null 9<&-
    tackle_rc=$?
  fi
  printf '\\n%s %s\\n' "$tackle_m" "$tackle_rc"
  printf '\\n%s\\n' "$tackle_m" >&2
done`;

const loop = framed(sh`${raw(SESSION_LOOP)}`);

/**
 * The command a connection starts once per host: a POSIX `sh` (whatever the login shell is) that
 * reads {@link SESSION_LOOP} from the first bytes of its stdin ({@link SESSION_START}) and runs it.
 */
export const SESSION_COMMAND: Command = sh`exec sh -c ${loop.line.asArgument()}`;

/** What a session is sent first: the loop's text, for {@link SESSION_COMMAND}. */
export const SESSION_START: Buffer = loop.script;

const BLOCK = 65536;

/**
 * Pure: the bytes that ask the session shell to run `script` with `payload` as its stdin (none:
 * an empty stdin), ended by `marker`. The script is wrapped as {@link framed} wraps it, so a
 * truncated one is a syntax error rather than a shorter command.
 *
 * @example
 * request('run', sh`cat`, Buffer.from('hi'), 'M') // header 'run 11 0 2 M\n', then '{ :\ncat\n}', then the payload
 */
export function request(kind: 'run' | 'shell', command: Command, payload: Buffer | undefined, marker: string): { head: Buffer; payload: Buffer | undefined } {
  const script = Buffer.from(`{ :\n${command.reveal()}\n}`);
  const counts = payload === undefined ? '- -' : `${Math.floor(payload.length / BLOCK)} ${payload.length % BLOCK}`;
  return { head: Buffer.concat([Buffer.from(`${kind} ${script.length} ${counts} ${marker}\n`), script]), payload };
}

/**
 * Pure: one stream of one command's answer, fed in chunks as they arrive, up to its marker line
 * (`\nMARKER CODE\n` on stdout, `\nMARKER\n` on stderr). Binary-safe; a marker split across
 * chunks is found; bytes after the marker line are not the command's and are dropped.
 *
 * @example
 * const out = new MarkedStream('M', true);
 * out.push(Buffer.from('hello\n\nM 0')); out.push(Buffer.from('\n'));
 * out.ended // true; out.code === 0; out.bytes().toString() === 'hello\n'
 */
export class MarkedStream {
  readonly #needle: Buffer;
  readonly #parts: Buffer[] = [];
  #window = Buffer.alloc(0);
  #ended = false;
  /** The exit code on the marker line (stdout's). */
  code: number | undefined;

  constructor(
    marker: string,
    readonly withCode: boolean,
  ) {
    this.#needle = Buffer.from(`\n${marker}${withCode ? ' ' : '\n'}`);
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(chunk: Buffer): void {
    if (this.#ended) return;
    const data = this.#window.length ? Buffer.concat([this.#window, chunk]) : chunk;
    const at = data.indexOf(this.#needle);
    if (at < 0) {
      // Keep what could be the start of a marker split across chunks.
      const keep = Math.min(data.length, this.#needle.length - 1);
      this.#parts.push(data.subarray(0, data.length - keep));
      this.#window = Buffer.from(data.subarray(data.length - keep));
      return;
    }
    this.#parts.push(data.subarray(0, at));
    if (!this.withCode) {
      this.#ended = true;
      return;
    }
    const nl = data.indexOf(0x0a, at + this.#needle.length);
    if (nl < 0) {
      this.#window = Buffer.from(data.subarray(at));
      return;
    }
    this.code = Number(data.subarray(at + this.#needle.length, nl).toString());
    this.#ended = true;
  }

  /** The command's bytes: up to the marker once it ended, else all that arrived so far. */
  bytes(): Buffer {
    return Buffer.concat(this.#ended ? this.#parts : [...this.#parts, this.#window]);
  }
}

/** Why a session can no longer be used, as later commands are told. */
interface Broken {
  phase: TackleError['phase'];
  reason: string;
}

interface Pending {
  command: Command;
  out: MarkedStream;
  err: MarkedStream;
  /** Aborted by its caller: the session's end is then this command's answer, not an error. */
  stopped: boolean;
  /** Settles the command: with its result, or with the error that ended the session. */
  settle(outcome: { exit?: Exit; error?: TackleError }): void;
}

/** How long closing waits for the shell to exit (and so for the run lock to be free) before cutting it. */
const CLOSE_GRACE_MS = 5_000;

/**
 * One long-lived shell on a host running {@link SESSION_LOOP}: commands run one at a time, in the
 * order they were asked. A session that ends (the shell exits, the connection is lost, a run is
 * stopped) fails the command under way and every later one: it is never reused, and nothing
 * reopens it behind the caller's back, so a run lock taken in it can never silently be lost.
 *
 * @example
 * const session = new Session('web1', await conn.spawn(SESSION_COMMAND), (k) => stats[k]++);
 * await session.run(sh`hostname`);
 */
export class Session {
  #queue: Promise<unknown> = Promise.resolve();
  #current: Pending | undefined;
  #broken: Broken | undefined;

  constructor(
    readonly host: string,
    readonly proc: Spawned,
    /** Counts a round trip and the commands it carries. */
    readonly count: (commands: number) => void,
  ) {
    proc.stdin.on('error', () => {}); // the shell may be gone before it read everything
    proc.stdin.write(SESSION_START);
    proc.hold?.(false);
    proc.stdout.on('data', (chunk: Buffer) => this.#data(chunk, 'out'));
    proc.stderr.on('data', (chunk: Buffer) => this.#data(chunk, 'err'));
    proc.exit.then(
      (exit) => this.#ended(undefined, exit),
      (error: unknown) => this.#ended(error instanceof TackleError ? error : new TackleError({ phase: 'connect', host, reason: String(error), cause: error })),
    );
  }

  /** Runs one command after those asked before it; see {@link ExecConnection.exec}. */
  run(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const result = this.#queue.then(() => this.#send(command, options));
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Ends the shell's input and waits for it to exit, which frees what it held (the run lock). */
  async close(): Promise<void> {
    if (this.#broken) return;
    this.#broken = { phase: 'connect', reason: `the session to ${this.host} was closed` };
    this.proc.stdin.end();
    this.proc.hold?.(true);
    const timer = setTimeout(() => this.proc.kill(), CLOSE_GRACE_MS);
    await this.proc.exit.catch(() => {});
    clearTimeout(timer);
  }

  #send(command: Command, options: ExecOptions): Promise<ExecResult> {
    const started = performance.now();
    // Stopped before it started: run nothing rather than start and cut it.
    if (options.signal?.aborted) return Promise.resolve({ command, exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', durationMs: 0 });
    const broken = this.#broken;
    if (broken) return Promise.reject(new TackleError({ phase: broken.phase, host: this.host, reason: broken.reason, command: command.toString() }));
    const marker = `__TACKLE_${randomBytes(12).toString('hex')}__`;
    const input = stdinBytes(options.stdin);
    const { head, payload } = request(options.inShell ? 'shell' : 'run', command, input, marker);
    return new Promise<ExecResult>((resolve, reject) => {
      // The command's answer is its session's end: by then its traps have run (a write's cleanup).
      const stop = (): void => {
        this.#broken = { phase: 'connect', reason: `the session to ${this.host} was closed when the run was stopped` };
        pending.stopped = true;
        this.proc.kill();
      };
      const finish = ({ exit, error }: { exit?: Exit; error?: TackleError }): void => {
        if (this.#current !== pending) return;
        this.#current = undefined;
        this.proc.hold?.(false);
        options.signal?.removeEventListener('abort', stop);
        if (error) return reject(error);
        resolve({
          command,
          exitCode: exit?.exitCode ?? null,
          signal: exit?.signal ?? null,
          stdout: pending.out.bytes().toString(),
          stderr: pending.err.bytes().toString(),
          durationMs: performance.now() - started,
        });
      };
      const pending: Pending = { command, out: new MarkedStream(marker, true), err: new MarkedStream(marker, false), stopped: false, settle: finish };
      this.#current = pending;
      this.proc.hold?.(true);
      options.signal?.addEventListener('abort', stop, { once: true });
      this.count(1);
      this.proc.stdin.write(head);
      if (payload?.length) this.proc.stdin.write(payload);
    });
  }

  #data(chunk: Buffer, stream: 'out' | 'err'): void {
    const p = this.#current;
    if (!p) return; // output of no command (a stray background process): nobody's
    p[stream].push(chunk);
    if (p.out.ended && p.err.ended) p.settle({ exit: { exitCode: p.out.code ?? null, signal: null } });
  }

  /** The shell exited or its connection was lost: fail what runs now and everything after. */
  #ended(lost: TackleError | undefined, exit?: Exit): void {
    const how = exit?.signal ? `killed by ${exit.signal}` : `exit code ${exit?.exitCode ?? 'unknown'}`;
    this.#broken ??= lost ? { phase: lost.phase, reason: lost.reason } : { phase: 'command', reason: `the session to ${this.host} had ended (${how})` };
    const p = this.#current;
    if (!p) return;
    if (p.stopped) return p.settle({ exit: { exitCode: null, signal: 'SIGHUP' } });
    const error =
      lost ??
      new TackleError({
        phase: 'command',
        host: this.host,
        reason: `the session to ${this.host} ended while this command ran (the shell: ${how})`,
        command: p.command.toString(),
        exitCode: exit?.exitCode ?? null,
        signal: exit?.signal ?? null,
        stderrTail: mask(tail(p.err.bytes().toString()), p.command.secrets()),
      });
    p.settle({ error });
  }
}
