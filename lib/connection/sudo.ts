import { Buffer } from 'node:buffer';
import { sh, type Command, type Secret } from '../command/command.ts';
import { WrappedConnection, stdinBytes, type Connection, type ExecOptions } from './connection.ts';

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
export class SudoConnection extends WrappedConnection {
  constructor(
    inner: Connection,
    readonly options: BecomeOptions = {},
  ) {
    super(inner);
  }

  get host(): string {
    return this.inner.host;
  }

  protected wrap(command: Command, options: ExecOptions): { command: Command; options: ExecOptions } {
    const user = this.options.user ?? 'root';
    const password = this.options.password;
    if (!password) return { command: sh`sudo -n -H -u ${user} -- sh -c ${command.asArgument()}`, options };
    // sudo -S reads exactly one line for the password; the rest of stdin reaches the command.
    const stdin = Buffer.concat([Buffer.from(`${password.reveal()}\n`), stdinBytes(options.stdin) ?? Buffer.alloc(0)]);
    return { command: sh`sudo -S -p '' -H -u ${user} -- sh -c ${command.asArgument()}`, options: { ...options, stdin } };
  }
}
