import { spawn } from 'node:child_process';
import type { Command } from '../command/command.ts';
import { TackleError } from '../errors.ts';
import { ExecConnection, stdinBytes, type ConnectionStats, type ExecOptions, type ExecResult } from './connection.ts';

/**
 * Runs commands on this machine with `sh -c`, as the current user.
 *
 * @example
 * const conn = new LocalConnection('localhost');
 * await conn.exec(sh`uname -a`);
 */
export class LocalConnection extends ExecConnection {
  readonly #stats: ConnectionStats = { channels: 0, commands: 0 };
  constructor(readonly host: string) {
    super();
  }

  exec(command: Command, options: ExecOptions = {}): Promise<ExecResult> {
    const started = performance.now();
    this.#stats.channels++;
    this.#stats.commands++;
    return new Promise((resolve, reject) => {
      // A held stdin ends on abort (below) rather than the process being killed.
      const child = spawn('sh', ['-c', command.reveal()], { stdio: 'pipe', ...(options.holdStdin ? {} : { signal: options.signal }) });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => {
        out.push(d);
        options.onStdout?.(d);
      });
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => {}); // a command that ignores stdin closes the pipe early
      child.on('error', (cause) => {
        if (cause.name === 'AbortError') return; // 'close' still follows with the signal
        reject(new TackleError({ phase: 'connect', host: this.host, reason: `could not start sh: ${cause.message}`, cause }));
      });
      child.on('close', (code, signal) =>
        resolve({
          command,
          exitCode: code,
          signal,
          stdout: Buffer.concat(out).toString(),
          stderr: Buffer.concat(err).toString(),
          durationMs: performance.now() - started,
        }),
      );
      const input = stdinBytes(options.stdin);
      if (!options.holdStdin || options.signal?.aborted) return void child.stdin.end(input);
      if (input) child.stdin.write(input);
      options.signal?.addEventListener('abort', () => child.stdin.end(), { once: true });
    });
  }

  async close(): Promise<void> {}

  stats(): ConnectionStats {
    return { ...this.#stats };
  }

  countCommands(n: number): void {
    this.#stats.commands += n;
  }
}
