import type { Connection } from '../../lib/connection/connection.ts';
import { LocalConnection } from '../../lib/connection/local.ts';
import { HostRun, type StepResult } from '../../lib/engine/host-run.ts';
import type { Operation } from '../../lib/ops/operation.ts';

/**
 * Plans and (unless dryRun) applies one operation for real through a connection
 * (this machine by default) and returns the recorded step.
 */
export async function runOp(op: Operation, opts: { dryRun?: boolean; connection?: Connection } = {}): Promise<StepResult> {
  const run = new HostRun('local', [], {}, opts.connection ?? new LocalConnection('local'), opts.dryRun ?? false, undefined, () => {});
  await run.run(op).catch(() => {});
  const step = run.steps.at(-1);
  if (!step) throw new Error('no step recorded');
  return step;
}
