import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { sh, type Command, type Secret } from '../command/command.ts';
import { TackleError, tail } from '../errors.ts';
import { WrappedConnection, framed, type Connection, type Exit, type Spawned } from './connection.ts';

export interface BecomeOptions {
  /** Target user; root by default. */
  user?: string;
  /** The sudo password. It travels on stdin, only when sudo asks for it. */
  password?: Secret;
}

/**
 * Wraps a connection so that its session (and so every command) runs through sudo, entered once.
 * Without a password `sudo -n` fails at once instead of hanging on a prompt. With one, sudo
 * prompts with a one-time text and the shell it starts announces itself with another: the
 * password is written only in answer to the prompt, and the command's own stdin only after the
 * announcement, so a sudo that does not ask (NOPASSWD, a cached timestamp) never passes the
 * password on to the command. A second prompt means the password was refused.
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

  protected wrap(line: Command): Command {
    return sh`sudo -n -H -u ${this.options.user ?? 'root'} -- sh -c ${line.asArgument()}`;
  }

  override async spawn(command: Command): Promise<Spawned> {
    const password = this.options.password;
    if (!password) return super.spawn(command);
    const nonce = randomBytes(12).toString('hex');
    // sudo expands %p to the user whose password it asks for (the login user, unless targetpw).
    const prompt = new RegExp(`\\[tackle-sudo-${nonce} ([^\\]\\n]*)\\]`);
    const ready = `[tackle-ready-${nonce}]\n`;
    const { line, script } = framed(command);
    const started = sh`printf '%s\\n' ${ready.trimEnd()} >&2 && ${line}`;
    const proc = await this.inner.spawn(sh`sudo -S -p ${`[tackle-sudo-${nonce} %p]`} -H -u ${this.options.user ?? 'root'} -- sh -c ${started.asArgument()}`);

    const stdin = new PassThrough();
    const stderr = new PassThrough();
    let before = ''; // what sudo said before the shell started: prompts, lecture, complaints
    // `asked` is set once the password was sent: the user sudo named in its prompt.
    let state: { kind: 'waiting'; asked?: string } | { kind: 'running' } | { kind: 'refused'; user: string } = { kind: 'waiting' };
    proc.stderr.on('data', (chunk: Buffer) => {
      if (state.kind === 'running') return void stderr.write(chunk);
      before += chunk.toString('latin1');
      for (;;) {
        if (state.kind !== 'waiting') return;
        const p = prompt.exec(before);
        const r = before.indexOf(ready);
        if (r >= 0 && (p === null || r < p.index)) {
          const rest = Buffer.from(before.slice(r + ready.length), 'latin1');
          state = { kind: 'running' };
          before = '';
          if (rest.length) stderr.write(rest);
          proc.stdin.write(script);
          stdin.pipe(proc.stdin);
          return;
        }
        if (p === null) return;
        before = before.slice(0, p.index) + before.slice(p.index + p[0].length);
        const asked = p[1] ?? '';
        if (state.asked !== undefined) {
          state = { kind: 'refused', user: asked };
          proc.kill();
          return;
        }
        state = { kind: 'waiting', asked };
        this.counters.roundTrips++;
        proc.stdin.write(`${password.reveal()}\n`);
      }
    });
    proc.stderr.on('end', () => stderr.end());
    proc.stdin.on('error', () => {}); // sudo or the command may exit before reading everything

    const exit = proc.exit.then((result): Exit => {
      const said = tail(Buffer.from(before, 'latin1').toString());
      if (state.kind === 'running') return result;
      if (state.kind === 'refused' || (state.asked !== undefined && /incorrect password/.test(said))) {
        const who = state.kind === 'refused' ? state.user : state.asked;
        throw new TackleError({ phase: 'command', host: this.host, reason: `sudo refused the password for ${who} on ${this.host}` });
      }
      throw new TackleError({
        phase: 'command',
        host: this.host,
        reason: `sudo did not run the command as ${this.options.user ?? 'root'} on ${this.host}${said ? `: ${said.split('\n').at(-1)}` : ''}`,
        exitCode: result.exitCode,
        stderrTail: said,
      });
    });
    return { stdin, stdout: proc.stdout, stderr, exit, kill: () => proc.kill(), ...(proc.hold ? { hold: proc.hold } : {}) };
  }
}
