import type { TackleError } from '../errors.ts';
import type { StepResult } from '../engine/host-run.ts';
import type { HostResult, RunResult } from '../engine/runner.ts';

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
}

function errorReport(e: TackleError): ReportError {
  const { cause: _c, signal: _s, ...fields } = e.fields();
  return JSON.parse(JSON.stringify({ message: e.message, ...fields })) as ReportError;
}

/** Builds the JSON report of a run. */
export function toJsonReport(result: RunResult): JsonReport {
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
    })),
    summary,
  };
}

/**
 * 0 when every host is ok or changed, 2 when any failed or was unreachable. An interrupted run
 * exits as a process killed by the signal would, 130 (Ctrl-C) or 143 (`signal` SIGTERM), even
 * when a host failed (the report says which): a step stopped mid-way fails its host.
 *
 * @example
 * exitCodeOf(result, 'SIGTERM') // 143 when result.interrupted
 */
export function exitCodeOf(result: RunResult, signal?: 'SIGINT' | 'SIGTERM'): number {
  if (result.interrupted) return signal === 'SIGTERM' ? 143 : 130;
  return result.hosts.some((h) => h.status === 'failed' || h.status === 'unreachable') ? 2 : 0;
}
