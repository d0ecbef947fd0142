import { Buffer } from 'node:buffer';
import type { Readable, Writable } from 'node:stream';
import { Command, Secret, mask, raw, sh } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { TEMP, digestOf, receiveWhole, replaceScript } from './replace.ts';
import { SESSION_COMMAND, Session } from './session.ts';

/** What a command reads on its standard input. */
export type Stdin = string | Buffer | Secret;

export interface ExecOptions {
  stdin?: Stdin;
  /** Aborting kills the command: its session is closed (a later command on the connection fails at once). */
  signal?: AbortSignal;
  /**
   * Runs the command in the session's shell itself rather than in a child of it, so a descriptor it
   * opens (the run lock's) stays open until the session ends. Its stdin is empty; an `exit` in it
   * ends the session. Only for tackle's own fixed scripts.
   */
  inShell?: boolean;
}

/** The outcome of one command: also the error payload when it fails. */
export interface ExecResult {
  command: Command;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Counters for benchmarks: how much a host cost us. */
export interface ConnectionStats {
  /** Channels (SSH) or processes (local) opened: one per connection, for its session. */
  channels: number;
  /** Commands sent, counting each command of a batch. */
  commands: number;
  /**
   * Exchanges the controller waits on: opening the session's SSH channel, answering sudo's
   * password prompt, and each command (a batch of facts counting once). Starting a local process
   * and closing are not counted.
   */
  roundTrips: number;
}

/** How a started command ended. */
export interface Exit {
  exitCode: number | null;
  signal: string | null;
}

/**
 * A command running on a host, as streams: what the command reads and writes, nothing else
 * (no framing, no sudo prompt). `exit` settles once stdout and stderr have ended; it rejects
 * with a TackleError of phase `connect` when the host is lost, or of phase `command` when a
 * wrapper could not start the command (sudo refused the password).
 */
export interface Spawned {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exit: Promise<Exit>;
  /** Ends the command now (closes its channel, kills its process). */
  kill(): void;
  /**
   * Whether the command keeps the controller's process alive (Node's ref/unref): a session is
   * held only while a command runs, so an idle local session never keeps a script from ending.
   * Absent where something else holds the process anyway (an SSH connection until it is closed).
   */
  hold?(busy: boolean): void;
}

/**
 * How tackle reaches a host: one long-lived shell per host (its session, opened at the first
 * command) runs every command, one at a time. `exec` runs a command to its end and resolves for
 * any exit code, rejecting only when the command could not run (the host cannot be reached, sudo
 * refused, the session had ended: a `TackleError`). A command's text and stdin travel over the
 * session's stdin, so no secret in them ever shows in a process list or a sudo log.
 */
export interface Connection {
  readonly host: string;
  /**
   * Starts a command in a channel (a process) of its own, outside the session, and hands back its
   * streams: the primitive a session and the wrappers (sudo, containers) are built on.
   * @example const p = await conn.spawn(sh`cat > /tmp/x`); p.stdin.end('data'); await p.exit;
   */
  spawn(command: Command): Promise<Spawned>;
  /** @example const r = await conn.exec(sh`cat > /tmp/x`, { stdin: 'data' }); */
  exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Writes a file as the connection's user (through sudo when becoming root), whole or not at all:
   * a temporary file beside it, checked for exactly `data`, renamed over it; mode `options.mode` (default 0644).
   */
  put(path: string, data: Stdin, options?: { mode?: string }): Promise<void>;
  get(path: string): Promise<Buffer>;
  /** Ends the session (waiting for its shell to exit, so what it held is free), then the connection. */
  close(): Promise<void>;
  stats(): ConnectionStats;
  /** Counts commands sent inside one exec, so batches show in the stats. */
  countCommands(n: number): void;
}

/**
 * A command made fit to start in argv-visible places (an SSH exec request, `sh -c`, sudo's
 * command line): `line` is the same for every command of that length and reads `script`, the
 * command's real text, from the first bytes of stdin, then runs it in the same shell, so the
 * command's own stdin follows untouched. `dd iflag=fullblock` reads no byte past its count, in
 * GNU coreutils and BusyBox alike (BusyBox's `head -c` reads ahead and would eat the stdin).
 * The braces make a truncated script a syntax error rather than a shorter command.
 *
 * @example
 * const { line, script } = framed(sh`echo ${secret('s3cret')}`);
 * line.toString() // 'tackle_script=$(dd bs=17 count=1 iflag=fullblock status=none) && eval "$tackle_script"'
 */
export function framed(command: Command): { line: Command; script: Buffer } {
  // `:` keeps an empty command valid; the exit status stays the command's own.
  const script = Buffer.from(`{ :\n${command.reveal()}\n}`);
  return { line: sh`${raw(`tackle_script=$(dd bs=${script.length} count=1 iflag=fullblock status=none) && eval "$tackle_script"`)}`, script };
}

/** The bytes a command reads on stdin. */
export function stdinBytes(stdin: Stdin | undefined): Buffer | undefined {
  if (stdin === undefined) return undefined;
  if (stdin instanceof Secret) return Buffer.from(stdin.reveal());
  return typeof stdin === 'string' ? Buffer.from(stdin) : stdin;
}

/** Throws a `command` error, masked and naming the host, unless the command exited 0. */
export function assertOk(result: ExecResult, host: string, reason?: string): ExecResult {
  if (result.exitCode === 0) return result;
  const secrets = result.command.secrets();
  throw new TackleError({
    phase: 'command',
    host,
    reason: reason ?? (result.signal ? `command killed by ${result.signal}` : `command exited with code ${result.exitCode}`),
    command: result.command.toString(),
    exitCode: result.exitCode,
    signal: result.signal,
    stderrTail: mask(tail(result.stderr || result.stdout), secrets),
  });
}

/**
 * exec, put and get through the connection's one session, which `spawn` starts at the first
 * command, so that sudo and container wrappers get them for free.
 */
export abstract class ExecConnection implements Connection {
  abstract readonly host: string;
  abstract spawn(command: Command): Promise<Spawned>;
  /** Closes what carries the session (the SSH connection, a wrapper's inner connection). */
  protected abstract closeTransport(): Promise<void>;
  /** This layer's own counts; a wrapper adds its inner connection's. */
  protected readonly counters: ConnectionStats = { channels: 0, roundTrips: 0, commands: 0 };
  #session: Promise<Session> | undefined;

  exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    // A session that could not start (the host lost, sudo refused) fails every command the same way.
    this.#session ??= this.spawn(SESSION_COMMAND).then(
      (proc) =>
        new Session(this.host, proc, (n) => {
          this.counters.roundTrips++;
          this.counters.commands += n;
        }),
    );
    return this.#session.then((session) => session.run(command, options));
  }

  async put(path: string, data: Stdin, options: { mode?: string } = {}): Promise<void> {
    const script = replaceScript(path, [receiveWhole(TEMP, digestOf(data)), sh`chmod ${options.mode ?? '0644'} ${TEMP}`]);
    assertOk(await this.exec(script, { stdin: data }), this.host, `could not write ${path}`);
  }

  async get(path: string): Promise<Buffer> {
    // base64 keeps binary content intact through the string-typed exec result.
    const r = assertOk(await this.exec(sh`base64 -w0 < ${path}`), this.host, `could not read ${path}`);
    return Buffer.from(r.stdout, 'base64');
  }

  async close(): Promise<void> {
    await this.#session?.then(
      (session) => session.close(),
      () => {},
    );
    await this.closeTransport();
  }

  stats(): ConnectionStats {
    return { ...this.counters };
  }

  countCommands(n: number): void {
    this.counters.commands += n;
  }
}

/**
 * A connection that starts its session through another one, rewritten (sudo, a container's
 * `pct exec`); closing reaches the inner connection, whose stats add to its own. The text goes
 * over stdin ({@link framed}); only the constant line is wrapped, so the wrapper's own command
 * line (and sudo's log of it) never holds a command.
 */
export abstract class WrappedConnection extends ExecConnection {
  constructor(readonly inner: Connection) {
    super();
  }

  /** The command the inner connection runs to start `line` (a {@link framed} line). */
  protected abstract wrap(line: Command): Command;

  async spawn(command: Command): Promise<Spawned> {
    const { line, script } = framed(command);
    const proc = await this.inner.spawn(this.wrap(line));
    proc.stdin.write(script);
    return proc;
  }

  protected closeTransport(): Promise<void> {
    return this.inner.close();
  }

  override stats(): ConnectionStats {
    const inner = this.inner.stats();
    return { channels: inner.channels + this.counters.channels, roundTrips: inner.roundTrips + this.counters.roundTrips, commands: inner.commands + this.counters.commands };
  }
}
