/** The phase of a run in which an error arose. */
export type Phase = 'inventory' | 'connect' | 'fact' | 'operation' | 'command' | 'task';

/** Structured fields every tackle error carries; all text is already masked. */
export interface ErrorFields {
  phase: Phase;
  /** Plain-language reason, the first thing a person reads. */
  reason: string;
  host?: string;
  step?: string;
  command?: string;
  exitCode?: number | null;
  signal?: string | null;
  stderrTail?: string;
  cause?: unknown;
}

/**
 * The error type of every expected failure. Misuse of the API is a TypeError instead.
 *
 * @example
 * if (err instanceof TackleError && err.phase === 'connect') markUnreachable(err.host);
 */
export class TackleError extends Error {
  readonly phase: Phase;
  readonly reason: string;
  readonly host: string | undefined;
  readonly step: string | undefined;
  readonly command: string | undefined;
  readonly exitCode: number | null | undefined;
  readonly signal: string | null | undefined;
  readonly stderrTail: string | undefined;

  constructor(fields: ErrorFields) {
    super(formatMessage(fields), fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'TackleError';
    this.phase = fields.phase;
    this.reason = fields.reason;
    this.host = fields.host;
    this.step = fields.step;
    this.command = fields.command;
    this.exitCode = fields.exitCode;
    this.signal = fields.signal;
    this.stderrTail = fields.stderrTail;
  }

  /** A copy naming the host and step, for errors raised below the runner. */
  at(host: string, step?: string): TackleError {
    return new TackleError({ ...this.fields(), host: this.host ?? host, step: this.step ?? step });
  }

  fields(): ErrorFields {
    return {
      phase: this.phase,
      reason: this.reason,
      host: this.host,
      step: this.step,
      command: this.command,
      exitCode: this.exitCode,
      signal: this.signal,
      stderrTail: this.stderrTail,
      cause: this.cause,
    };
  }

  toJSON(): Record<string, unknown> {
    const { cause: _cause, ...rest } = this.fields();
    return { message: this.message, ...rest };
  }
}

function formatMessage(f: ErrorFields): string {
  const where = [f.host, f.step].filter(Boolean).join(' › ');
  let msg = where ? `${where}: ${withoutOp(f.reason, f.step)}` : f.reason;
  if (f.command) msg += `\n  command: ${f.command}`;
  if (f.exitCode !== undefined && f.exitCode !== null) msg += `\n  exit code: ${f.exitCode} (${explainExitCode(f.exitCode)})`;
  if (f.signal) msg += `\n  signal: ${f.signal}`;
  if (f.stderrTail) msg += `\n  stderr: ${f.stderrTail.replace(/\n/g, '\n          ')}`;
  return msg;
}

/**
 * A refusal's reason starts with its operation ("files.file: path must be absolute") so that it
 * reads well alone; after a step named for that operation the name would come twice.
 */
function withoutOp(reason: string, step: string | undefined): string {
  const op = /^([a-z][A-Za-z0-9]*\.[A-Za-z0-9.]+): /.exec(reason)?.[1];
  const last = step?.split(' › ').at(-1);
  return op && last && (last === op || last.startsWith(`${op} `)) ? reason.slice(op.length + 2) : reason;
}

/** Says in words what a shell exit code usually means. */
export function explainExitCode(code: number): string {
  if (code === 0) return 'success';
  if (code === 1) return 'general error';
  if (code === 2) return 'misuse or invalid arguments';
  if (code === 126) return 'command found but not executable';
  if (code === 127) return 'command not found';
  if (code > 128 && code < 160) return `killed by signal ${code - 128}`;
  return 'failed';
}

/** The last lines of some output, for error messages. */
export function tail(text: string, lines = 8): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
