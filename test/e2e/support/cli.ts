// Runs a task file as a person would (`npx tsx tasks/NAME.ts …`) and reads its JSON report.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { JsonReport } from '../../../lib/engine/report.ts';
import type { HostSpec } from '../../../lib/inventory/inventory.ts';
import { run } from '../../../lab/exec.ts';
import { writeInventory, type Lab } from '../../../lab/lab.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  report: JsonReport | undefined;
}

/** Runs `tasks/<file>` (or any task path) with flags; the JSON report is read back when written. */
export async function runTaskCli(taskFile: string, args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-cli-'));
  const json = join(dir, 'report.json');
  const result = await run('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, '--import', 'tsx', resolve(ROOT, taskFile), ...args, '--json', json], {
    timeoutMs: 600_000,
  });
  const report = await readFile(json, 'utf8').then((t) => JSON.parse(t) as JsonReport, () => undefined);
  return { ...result, report };
}

/** Writes an inventory module for lab hosts in a temporary directory; `overrides` may change any field of each host. */
export async function labInventory(lab: Lab, overrides: Record<string, Partial<HostSpec>> = {}, extra = ''): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tackle-inv-')), 'inventory.ts');
  await writeInventory(lab, file, { overrides, extra });
  return file;
}

/** Names of the steps a report shows as changed, per host. */
export function changedSteps(report: JsonReport | undefined): Record<string, string[]> {
  return Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h.steps.filter((s) => s.status === 'changed').map((s) => s.name)]));
}

/**
 * Per host, every step as the run saw it: `status name — summary`, with the run's own timestamps
 * (dump names, ISO times) masked. A dry-run must equal the real run in all of it, not only in
 * which steps changed.
 */
export function plannedSteps(report: JsonReport | undefined): Record<string, string[]> {
  const stamp = (text: string) => text.replace(/\d{8}T\d{6}Z/g, 'STAMP').replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, 'TIME');
  return Object.fromEntries((report?.hosts ?? []).map((h) => [h.name, h.steps.map((s) => stamp(`${s.status} ${s.name}${s.summary ? ` — ${s.summary}` : ''}`))]));
}
