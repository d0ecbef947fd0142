// The result of a run as data: the JSON report (`--json`) and the exit code it ends with. The
// command line writes and renders them (lib/cli); scripts and the webhook read them from here.
import type { TackleError } from '../errors.ts';
import type { StepResult } from './host-run.ts';
import type { HostResult, RunResult, RunWarning } from './runner.ts';

export interface ReportError {
  message: string;
  phase: string;
  reason: string;
  host?: string;
  step?: string;
  command?: string;
  exitCode?: number | null;
  stderrTail?: string;
}

export type StepReport = Omit<StepResult, 'error'> & { error?: ReportError };

/** One host in the report; `data` is what a read-only task (a report such as scripts/health.ts) found there. */
export type HostReport = Omit<HostResult, 'error' | 'steps'> & { steps: StepReport[]; error?: ReportError };

/** The `--json` report. `summary` counts hosts. All text is masked. */
export interface JsonReport {
  task: string;
  dryRun: boolean;
  interrupted: boolean;
  startedAt: string;
  durationMs: number;
  hosts: HostReport[];
  summary: Record<'ok' | 'changed' | 'failed' | 'unreachable' | 'skipped', number>;
  /** What the run noticed that did not stop it (vars the task does not declare); absent when nothing. */
  warnings?: RunWarning[];
}

function errorReport(e: TackleError): ReportError {
  const { cause: _c, signal: _s, ...fields } = e.fields();
  return JSON.parse(JSON.stringify({ message: e.message, ...fields })) as ReportError;
}

/**
 * Builds the JSON report of a run, with the warnings found before it (see varWarnings).
 *
 * @example toJsonReport(result).summary // { ok: 1, changed: 0, … }
 */
export function toJsonReport(result: RunResult, warnings: readonly RunWarning[] = []): JsonReport {
  const summary = { ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0 };
  for (const h of result.hosts) summary[h.status]++;
  return {
    task: result.task,
    dryRun: result.dryRun,
    interrupted: result.interrupted,
    startedAt: result.startedAt.toISOString(),
    durationMs: result.durationMs,
    hosts: result.hosts.map((h) => ({
      name: h.name,
      status: h.status,
      durationMs: h.durationMs,
      steps: h.steps.map(({ error, ...s }) => ({ ...s, ...(error ? { error: errorReport(error) } : {}) })),
      ...(h.error ? { error: errorReport(h.error) } : {}),
      ...(h.handlers ? { handlers: h.handlers } : {}),
      ...(h.data !== undefined ? { data: h.data } : {}),
    })),
    summary,
    ...(warnings.length > 0 ? { warnings: [...warnings] } : {}),
  };
}

/**
 * The exit codes of every tackle program (tasks, scripts and reports alike), by name. The README's
 * "Exit codes" table and `--help` list {@link EXIT_CODE_MEANINGS}; a test holds them together.
 */
export const EXIT = {
  /** Every host ok or changed (a dry-run: would change); a report found nothing wrong. */
  ok: 0,
  /** Usage, inventory, vars or task errors found before any host was contacted. */
  usage: 1,
  /** A host failed or was unreachable (the others still ran); a report found something critical. */
  failed: 2,
  /** A report found a warning, and nothing failed or critical. */
  warning: 3,
  /** Interrupted with Ctrl-C. */
  interrupted: 130,
  /** Stopped by SIGTERM. */
  terminated: 143,
} as const;

/** Each exit code with what it means, in the words of `--help` and the README table. */
export const EXIT_CODE_MEANINGS: ReadonlyArray<{ code: number; when: string }> = [
  { code: EXIT.ok, when: 'every host ok or changed (a dry-run: would change); a report found nothing wrong' },
  { code: EXIT.usage, when: 'usage, inventory, vars or task errors found before any host was contacted' },
  { code: EXIT.failed, when: 'any host failed or was unreachable (the others still ran); a report found something critical' },
  { code: EXIT.warning, when: 'a report found a warning, and nothing failed or was critical' },
  { code: EXIT.interrupted, when: 'interrupted with Ctrl-C (even when a step stopped mid-way failed its host)' },
  { code: EXIT.terminated, when: 'stopped by SIGTERM' },
];

/**
 * 0 when every host is ok or changed, 2 when any failed or was unreachable. An interrupted run
 * exits as a process killed by the signal would, 130 (Ctrl-C) or 143 (`signal` SIGTERM), even
 * when a host failed (the report says which): a step stopped mid-way fails its host.
 *
 * @example
 * exitCodeOf(result, 'SIGTERM') // 143 when result.interrupted
 */
export function exitCodeOf(result: Pick<RunResult, 'interrupted' | 'hosts'>, signal?: 'SIGINT' | 'SIGTERM'): number {
  if (result.interrupted) return signal === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
  return result.hosts.some((h) => h.status === 'failed' || h.status === 'unreachable') ? EXIT.failed : EXIT.ok;
}
