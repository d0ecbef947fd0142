import type { HostResult, RunEvent, RunResult } from '../engine/runner.ts';
import type { StepResult } from '../engine/host-run.ts';
import type { PendingHandler } from '../engine/pending-handlers.ts';
import { renderTable } from './table.ts';

/** The streams and environment the terminal UI writes to; injected so lib/ never touches process. */
export interface CliStreams {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: Readonly<Record<string, string | undefined>>;
}

/** Colours text with an SGR code when the stream is a terminal and NO_COLOR is unset; identity otherwise. */
export type Paint = (code: number, text: string) => string;

function painter(io: CliStreams): Paint {
  const color = io.stdout.isTTY === true && io.env.NO_COLOR === undefined;
  return (code, text) => (color ? `\u001b[${code}m${text}\u001b[0m` : text);
}

/** The part of a listr2 task row the view drives. */
interface Row {
  title: string | undefined;
  output: string | undefined;
  skip(message?: string): void;
}

/** What a host's row should show; kept until listr2 starts the row, which may come after the host's first events. */
interface HostView {
  title: string;
  lines: string[];
  row?: Row;
  finished: Promise<HostResult>;
  finish(result: HostResult): void;
}

/** The word for a step or host that changed something, or would have in a dry-run. */
export function changedWord(dryRun: boolean): string {
  return dryRun ? 'would change' : 'changed';
}

/**
 * The live view: one listr2 row per host with its current step. The default
 * renderer in a terminal, the plain line renderer when stdout is not a TTY or
 * CI is set; there every line names its host. Returns an event sink for the
 * runner and a promise for the view.
 */
export function liveView(hosts: readonly string[], io: CliStreams, opts: { dryRun?: boolean } = {}): { onEvent(e: RunEvent): void; closed: Promise<void> } {
  const dryRun = opts.dryRun ?? false;
  const views = new Map<string, HostView>();
  for (const name of hosts) {
    let finish!: (r: HostResult) => void;
    const finished = new Promise<HostResult>((resolve) => (finish = resolve));
    views.set(name, { title: `${name}: waiting`, lines: [], finished, finish });
  }
  const show = (view: HostView): void => {
    if (!view.row) return;
    if (view.row.title !== view.title) view.row.title = view.title;
    for (const line of view.lines.splice(0)) view.row.output = line;
  };
  const plain = io.stdout.isTTY !== true || io.env.CI !== undefined;
  // listr2 loads with the first view, beside the first connections, not with lib/index.ts (--help).
  const closed = import('listr2').then(async ({ DefaultRenderer, Listr, ListrLogger, ProcessOutput }) => {
    /**
     * listr2 asks the global process.stdout whether it is a terminal; the view has already asked the
     * stream it writes to (see `plain`), so its default renderer may draw into any TTY stream.
     */
    class StreamRenderer extends DefaultRenderer {
      static override nonTTY = true;
    }
    const logger = new ListrLogger({ processOutput: new ProcessOutput(io.stdout, io.stderr) });
    const list = new Listr(
      hosts.map((name) => ({
        title: `${name}: waiting`,
        task: async (_ctx, task) => {
          const view = views.get(name) as HostView;
          view.row = task;
          show(view);
          const result = await view.finished;
          task.title = `${name}: ${hostLine(result, dryRun)}`;
          if (result.status === 'skipped') task.skip(`${name}: skipped`);
          if (result.status === 'failed' || result.status === 'unreachable') throw new Error(`${name}: ${result.status}: ${result.error?.reason ?? ''}`);
        },
      })),
      {
        concurrent: true,
        exitOnError: false,
        registerSignalListeners: false,
        renderer: StreamRenderer,
        fallbackRenderer: 'simple',
        fallbackRendererCondition: plain,
        rendererOptions: { logger, collapseErrors: false } as never,
        fallbackRendererOptions: { logger } as never,
      },
    );
    await list.run().catch(() => undefined);
  });
  const onEvent = (e: RunEvent): void => {
    const view = views.get(e.host);
    if (!view) return;
    if (e.type === 'host:end') return view.finish(e.result);
    if (e.type === 'host:start') view.title = `${e.host}: connecting`;
    if (e.type === 'step:start') view.title = `${e.host}: ${e.step}`;
    if (e.type === 'step:end' && e.step.status !== 'ok') view.lines.push(`${e.host}: ${e.step.status === 'changed' ? changedWord(dryRun) : e.step.status}: ${e.step.name}`);
    show(view);
  };
  return { onEvent, closed };
}

function hostLine(r: HostResult, dryRun: boolean): string {
  const count = (s: StepResult['status']) => r.steps.filter((x) => x.status === s).length;
  const status = r.status === 'changed' ? changedWord(dryRun) : r.status;
  return `${status} (${count('ok')} ok, ${count('changed')} ${changedWord(dryRun)}, ${count('failed')} failed) in ${seconds(r.durationMs)}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

const STATUS_COLOR: Record<string, number> = { ok: 32, changed: 33, failed: 31, unreachable: 35, skipped: 90 };

/** The plan (dry-run) or the changes: each changed step with its summary, diff and commands as asked. */
export function formatChanges(result: RunResult, opts: { diff: boolean; verbose: boolean }, paint: Paint): string {
  const lines: string[] = [];
  for (const host of result.hosts) {
    const changed = host.steps.filter((s) => s.status === 'changed');
    const earlier = host.handlers?.earlier ?? [];
    if (changed.length === 0 && earlier.length === 0) continue;
    lines.push(paint(1, `${host.name}: ${changed.length} step(s) ${result.dryRun ? 'would change' : 'changed'}`));
    for (const p of earlier) lines.push(`  ${paint(33, '!')} handler "${p.handler}" is pending from an earlier run ${notifiedBy(p)}`);
    for (const step of changed) {
      lines.push(`  ${paint(33, '~')} ${step.name}${step.summary ? ` — ${step.summary}` : ''}`);
      if (opts.verbose) for (const c of step.commands ?? []) lines.push(paint(90, `      $ ${c.replace(/\n/g, '\n        ')}`));
      if (opts.diff && step.diff) lines.push(...step.diff.trimEnd().split('\n').map((l) => `      ${colorDiff(l, paint)}`));
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function notifiedBy(p: PendingHandler): string {
  return `(notified by ${p.step} at ${p.at} from ${p.by})`;
}

/** Notifications kept on the hosts: found from an earlier run (and whether they ran), or still owed. */
function handlerLines(result: RunResult): string[] {
  const lines: string[] = [];
  for (const h of result.hosts) {
    const r = h.handlers;
    if (!r) continue;
    for (const p of r.earlier) {
      const ran = r.ran.includes(p.handler);
      if (result.dryRun) lines.push(`${h.name}: handler "${p.handler}" is pending from an earlier run ${notifiedBy(p)}${ran ? ': this run would run it' : ''}`);
      else if (ran) lines.push(`${h.name}: handler "${p.handler}" was pending from an earlier run ${notifiedBy(p)}: ran`);
    }
    if (result.dryRun) continue;
    for (const name of r.outstanding) lines.push(`${h.name}: handler "${name}" stays pending on the host; the next run of ${result.task} that gets through its steps runs it`);
  }
  return lines;
}

function colorDiff(line: string, paint: Paint): string {
  if (line.startsWith('+') && !line.startsWith('+++')) return paint(32, line);
  if (line.startsWith('-') && !line.startsWith('---')) return paint(31, line);
  return line;
}

/** The recap: per host ok / changed / failed / unreachable counts and time, then the errors. */
export function formatRecap(result: RunResult, paint: Paint): string {
  const changed = changedWord(result.dryRun);
  const rows = result.hosts.map((h) => {
    const n = (s: string) => String(h.steps.filter((x) => x.status === s).length);
    const cells = [h.name, h.status === 'changed' ? changed : h.status, n('ok'), n('changed'), n('failed'), h.status === 'unreachable' ? '1' : '0', seconds(h.durationMs)];
    return { cells, status: h.status };
  });
  const header = ['HOST', 'STATUS', 'OK', changed.toUpperCase(), 'FAILED', 'UNREACHABLE', 'TIME'];
  const table = renderTable(header, rows, (line, row) => paint(STATUS_COLOR[row.status] ?? 0, line));
  const out = [`\nRECAP ${result.task}${result.dryRun ? ' (dry-run: nothing was changed)' : ''}${result.interrupted ? ' (interrupted)' : ''}`, table.trimEnd()];
  // Which steps changed, without --verbose: names only, one line each, host first (grep-friendly).
  const steps = result.hosts.flatMap((h) => h.steps.filter((s) => s.status === 'changed').map((s) => `  ${h.name}: ${s.name}`));
  if (steps.length) out.push('', result.dryRun ? 'Steps that would change:' : 'Changed steps:', ...steps);
  const handlers = handlerLines(result);
  if (handlers.length) out.push('', ...handlers);
  for (const h of result.hosts) {
    const err = h.error ?? h.steps.find((s) => s.error)?.error;
    if (err) out.push('', paint(31, `${h.name} ${h.status}:`), `  ${err.message.replace(/\n/g, '\n  ')}`);
  }
  out.push(`\n${result.hosts.length} host(s) in ${seconds(result.durationMs)}`);
  return `${out.join('\n')}\n`;
}

export { painter };
