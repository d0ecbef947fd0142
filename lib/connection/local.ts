import { spawn } from 'node:child_process';
import type { Command } from '../command/command.ts';
import { TackleError } from '../errors.ts';
import { ExecConnection, framed, type ConnectionStats, type Exit, type Spawned } from './connection.ts';

/**
 * Runs commands on this machine with `sh`, as the current user.
 *
 * @example
 * const conn = new LocalConnection('localhost');
 * await conn.exec(sh`uname -a`);
 */
export class LocalConnection extends ExecConnection {
  readonly #stats: ConnectionStats = { channels: 0, roundTrips: 0, commands: 0 };
  constructor(readonly host: string) {
    super();
  }

  async spawn(command: Command): Promise<Spawned> {
    this.#stats.channels++;
    this.#stats.roundTrips++;
    this.#stats.commands++;
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
    return {
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

  async close(): Promise<void> {}

  stats(): ConnectionStats {
    return { ...this.#stats };
  }

  countCommands(n: number): void {
    this.#stats.commands += n;
  }
}
