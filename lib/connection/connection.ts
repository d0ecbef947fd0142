import { Buffer } from 'node:buffer';
import { Command, Secret, mask, sh } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { TEMP, digestOf, receiveWhole, replaceScript } from './replace.ts';

/** What a command reads on its standard input. */
export type Stdin = string | Buffer | Secret;

export interface ExecOptions {
  stdin?: Stdin;
  /** Aborting kills the remote command (its channel is closed). */
  signal?: AbortSignal;
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
}

/**
 * How tackle reaches a host. `exec` resolves for any exit code; it rejects
 * only when the host cannot be reached (a `TackleError` of phase `connect`).
 */
export interface Connection {
  readonly host: string;
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

/** put/get on top of exec, so that sudo and container wrappers get them for free. */
export abstract class ExecConnection implements Connection {
  abstract readonly host: string;
  abstract exec(command: Command, options?: ExecOptions): Promise<ExecResult>;
  abstract close(): Promise<void>;
  abstract stats(): ConnectionStats;
  abstract countCommands(n: number): void;

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
 * `pct exec`): closing, stats and counting go to the inner connection.
 */
export abstract class WrappedConnection extends ExecConnection {
  constructor(readonly inner: Connection) {
    super();
  }

  /** The command as the inner connection must run it. */
  protected abstract wrap(command: Command, options: ExecOptions): { command: Command; options: ExecOptions };

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const wrapped = this.wrap(command, options);
    // Results name the command the caller asked for, not its wrapping.
    return { ...(await this.inner.exec(wrapped.command, wrapped.options)), command };
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
