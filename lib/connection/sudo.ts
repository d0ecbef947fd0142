import { Buffer } from 'node:buffer';
import { sh, type Command, type Secret } from '../command/command.ts';
import { ExecConnection, stdinBytes, type Connection, type ConnectionStats, type ExecOptions, type ExecResult } from './connection.ts';

export interface BecomeOptions {
  /** Target user; root by default. */
  user?: string;
  /** The sudo password. It travels on stdin, never on a command line. */
  password?: Secret;
}

/**
 * Wraps a connection so that every command runs through sudo.
 * Without a password `sudo -n` fails at once instead of hanging on a prompt.
 *
 * @example
 * const root = new SudoConnection(conn, { password: secret(env.SUDO_PASSWORD) });
 */
export class SudoConnection extends ExecConnection {
  constructor(
    readonly inner: Connection,
    readonly options: BecomeOptions = {},
  ) {
    super();
  }

  get host(): string {
    return this.inner.host;
  }

  async exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const user = this.options.user ?? 'root';
    const password = this.options.password;
    // sudo -S reads exactly one line for the password; the rest of stdin reaches the command.
    const wrapped = password
      ? sh`sudo -S -p '' -H -u ${user} -- sh -c ${command.asArgument()}`
      : sh`sudo -n -H -u ${user} -- sh -c ${command.asArgument()}`;
    const stdin = password ? Buffer.concat([Buffer.from(`${password.reveal()}\n`), stdinBytes(options.stdin) ?? Buffer.alloc(0)]) : options.stdin;
    const result = await this.inner.exec(wrapped, { ...options, ...(stdin === undefined ? {} : { stdin }) });
    return { ...result, command };
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
