import { Buffer } from 'node:buffer';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Command, Secret, mask, raw, sh } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { TEMP, digestOf, receiveWhole, replaceScript } from './replace.ts';

/** What a command reads on its standard input. */
export type Stdin = string | Buffer | Secret;

export interface ExecOptions {
  stdin?: Stdin;
  /** Aborting kills the remote command (its channel is closed); with `holdStdin`, it ends stdin instead. */
  signal?: AbortSignal;
  /** Leaves stdin open after `stdin` until `signal` aborts: the command runs until it reads end of input (a lock holder). */
  holdStdin?: boolean;
  /** Receives stdout as it arrives, for a command that reports while it keeps running. */
  onStdout?(chunk: Buffer): void;
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
  /** Channels (SSH) or processes (local) opened. */
  channels: number;
  /** Commands sent, counting each command of a batch. */
  commands: number;
  /** Exchanges that wait for the host's answer: each command started, a batch of facts counting once. */
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
}

/**
 * How tackle reaches a host. `spawn` is the primitive; `exec` runs a command to its end and
 * resolves for any exit code, rejecting only when the command could not run (the host cannot be
 * reached, sudo refused: a `TackleError`). Every implementation sends the command's text over its stdin
 * ({@link framed}), so no secret in it ever shows in a process list or a sudo log.
 */
export interface Connection {
  readonly host: string;
  /**
   * Starts a command and hands back its streams.
   * @example const p = await conn.spawn(sh`cat > /tmp/x`); p.stdin.end('data'); await p.exit;
   */
  spawn(command: Command): Promise<Spawned>;
  exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Writes a file as the connection's user (through sudo when becoming root), whole or not at all:
   * a temporary file beside it, checked for exactly `data`, renamed over it; mode `options.mode` (default 0644).
   */
  put(path: string, data: Stdin, options?: { mode?: string }): Promise<void>;
  get(path: string): Promise<Buffer>;
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

/** Resolves when a stream has ended or was destroyed; output already read stays read. */
function ended(stream: Readable): Promise<void> {
  return finished(stream).catch(() => {});
}

/** exec, put and get on top of spawn, so that sudo and container wrappers get them for free. */
export abstract class ExecConnection implements Connection {
  abstract readonly host: string;
  abstract spawn(command: Command): Promise<Spawned>;
  abstract close(): Promise<void>;
  abstract stats(): ConnectionStats;
  abstract countCommands(n: number): void;

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const started = performance.now();
    // Stopped before it started (e.g. while waiting for a channel): run nothing rather than start and cut it.
    if (options.signal?.aborted && !options.holdStdin) return { command, exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', durationMs: 0 };
    const proc = await this.spawn(command);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    proc.stdout.on('data', (d: Buffer) => {
      out.push(d);
      options.onStdout?.(d);
    });
    proc.stderr.on('data', (d: Buffer) => err.push(d));
    proc.stdin.on('error', () => {}); // a command that ignores stdin closes the pipe early
    // A held stdin (a lock holder) ends on abort, so the command finishes by itself.
    const abort = options.holdStdin ? () => proc.stdin.end() : () => proc.kill();
    const input = stdinBytes(options.stdin);
    if (options.holdStdin && input) proc.stdin.write(input);
    else if (!options.holdStdin) proc.stdin.end(input);
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener('abort', abort, { once: true });
    try {
      const [exit] = await Promise.all([proc.exit, ended(proc.stdout), ended(proc.stderr)]);
      return {
        command,
        exitCode: exit.exitCode,
        // A closed SSH channel reports no signal; say how it ended.
        signal: exit.signal ?? (options.signal?.aborted ? 'SIGHUP' : null),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        durationMs: performance.now() - started,
      };
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
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
}

/**
 * A connection that runs each command through another one, rewritten (sudo, a container's
 * `pct exec`): closing, stats and counting go to the inner connection. The command's text goes
 * over stdin ({@link framed}); only the constant line is wrapped, so the wrapper's own command
 * line (and sudo's log of it) never holds the command.
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

  close(): Promise<void> {
    return this.inner.close();
  }

  stats(): ConnectionStats {
    return this.inner.stats();
  }

  countCommands(n: number): void {
    this.inner.countCommands(n);
  }
}
