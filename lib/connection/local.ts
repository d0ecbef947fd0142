import { spawn } from 'node:child_process';
import type { Command } from '../command/command.ts';
import { TackleError } from '../errors.ts';
import { ExecConnection, framed, type Exit, type Spawned } from './connection.ts';

/**
 * Runs commands on this machine with `sh`, as the current user: the session is one `sh` process.
 *
 * @example
 * const conn = new LocalConnection('localhost');
 * await conn.exec(sh`uname -a`);
 */
export class LocalConnection extends ExecConnection {
  constructor(readonly host: string) {
    super();
  }

  async spawn(command: Command): Promise<Spawned> {
    // Nothing is waited on to start a process: commands are written to it at once.
    this.counters.channels++;
    const { line, script } = framed(command);
    // Its own process group, so that kill() ends the commands the shell started too.
    const child = spawn('sh', ['-c', line.reveal()], { stdio: 'pipe', detached: true });
    const exit = new Promise<Exit>((resolve, reject) => {
      child.on('error', (cause) =>
        reject(new TackleError({ phase: 'connect', host: this.host, reason: `could not start sh: ${cause.message}`, cause })),
      );
      child.on('close', (exitCode, signal) => resolve({ exitCode, signal }));
    });
    child.stdin.write(script);
    const handles = [child, child.stdin, child.stdout, child.stderr] as Array<{ ref(): unknown; unref(): unknown }>;
    return {
      hold: (busy) => handles.forEach((h) => (busy ? h.ref() : h.unref())),
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      exit,
      kill: () => {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          // Already gone.
        }
      },
    };
  }

  protected async closeTransport(): Promise<void> {}
}
