// Local process helpers for the lab. Every program is run without a shell, with an argument
// vector, so no path or value ever needs quoting.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** What a finished process left behind. A non-zero `code` is a result, not an exception. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; 128 + signal number when the process was killed by a signal. */
  code: number;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. Without it stdin is closed at once (like `</dev/null`). */
  input?: string;
  /** Kill the process (SIGKILL) after this long. */
  timeoutMs?: number;
}

/** Thrown by {@link check}: the result of the failed process is kept on the error. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    super(`${argv.join(' ')} exited with code ${result.code}${describeTail(result.stderr || result.stdout)}`);
    this.name = 'CommandError';
  }
}

function describeTail(output: string): string {
  const tail = lastLines(output, 15);
  return tail ? `:\n${tail}` : ' and printed nothing';
}

/** The last `count` non-empty lines of `text`, for error messages. */
export function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/**
 * Runs `file` with `args` and resolves with its output and exit code; rejects only when the
 * program cannot be started at all (e.g. not installed).
 *
 * @example const { code } = await run('ip', ['link', 'show', 'tkl-3-br']);
 */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'pipe', timeout: opts.timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (err) => reject(new Error(`cannot run ${file}: ${err.message}`, { cause: err })));
    child.on('close', (code, signal) => {
      resolve({ stdout, stderr, code: code ?? 128 + (signal ? constants.signals[signal] : 0) });
    });
    // A program that exits before reading its input makes the write fail with EPIPE; its exit code
    // already tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Like {@link run} but a non-zero exit is a {@link CommandError}; resolves with stdout.
 *
 * @example await check('ip', ['netns', 'add', 'tkl-3-lab1']);
 */
export async function check(file: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const result = await run(file, args, opts);
  if (result.code !== 0) throw new CommandError([file, ...args], result);
  return result.stdout;
}

/** Resolves after `ms` milliseconds; used only between polls, never as a stand-in for readiness. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls `attempt` until it returns a value other than `undefined`, pausing `intervalMs` between
 * tries; throws the error built by `onTimeout` once `timeoutMs` has passed.
 *
 * @example await poll(async () => ((await run('ssh', args)).code === 0 ? true : undefined), { timeoutMs: 5000, onTimeout: () => new Error('no sshd') });
 */
export async function poll<T>(
  attempt: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; onTimeout: () => Promise<Error> | Error },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw await opts.onTimeout();
    await delay(opts.intervalMs ?? 100);
  }
}
