// The releases of an app on each host: which one is live, which are kept, and the record of
// deploys and rollbacks (ref, commit, time, result) that scripts/deploy.ts and rollback.ts keep
// on the host in /srv/APP/releases.jsonl, and where a plain rollback would go. Reads only.
//
//   npx tsx scripts/releases.ts --limit web
//   npx tsx scripts/releases.ts --app shop --last 20 --json
// For a blue/green app it also names the color (and port) the current release went live on.
//
// The app comes from the hosts' `app` var (and `appRoot`, default /srv), or --app / --root.
import { resolve } from 'node:path';
import { isMain, openConnection, selectHosts } from '../lib/index.ts';
import { releasesState, type Color, type ReleaseRecord, type ReleasesState } from '../lib/facts/deploy.ts';
import { connectContext } from '../lib/connection/open.ts';
import { loadInventoryFile } from '../lib/inventory/load.ts';
import { renderTable } from '../lib/cli/table.ts';
import { collectFacts, reportArgs, type ReportIo, REPORT_USAGE } from '../lib/health/report.ts';
import { releaseLayout, rollbackTarget, type ReleaseLayout } from '../lib/ops/deploy.ts';

const USAGE = `Usage: npx tsx scripts/releases.ts [options]

${REPORT_USAGE}  --app NAME               the app (default: each host's var app)
  --root DIR               where apps live (default: each host's var appRoot, or /srv)
  --last N                 records shown per host (default 10)
`;


/** One host's releases as the JSON output has them. */
interface HostReleases {
  host: string;
  app: string;
  dir: string;
  current?: string;
  releases?: string[];
  /** Blue/green: the color (and port) the current release went live on, as its record says. */
  live?: { color?: Color; port: number };
  /** Blue/green: the release each color's `current-PORT` link names. */
  colors?: Array<{ port: number; release: string }>;
  /** Where a plain rollback.ts would go: the release that ran healthily before the current one. */
  rollbackTo?: string;
  records?: ReleaseRecord[];
  error?: string;
}

function summarize(host: string, layout: ReleaseLayout, state: ReleasesState, last: number): HostReleases {
  const base = { host, app: layout.app, dir: layout.dir };
  if (state.kind === 'missing') return { ...base, releases: [], records: [] };
  const current = state.current.kind === 'release' ? state.current.id : state.current.kind === 'other' ? `(not tackle's: ${state.current.target})` : undefined;
  const rollbackTo = state.current.kind === 'release' ? rollbackTarget(state, state.current.id).target?.id : undefined;
  const wentLive = state.records.findLast((r) => r.release === current && r.result === 'ok');
  const live = wentLive?.port !== undefined ? { live: { ...(wentLive.color ? { color: wentLive.color } : {}), port: wentLive.port } } : {};
  const colors = state.slots.length ? { colors: state.slots.map((x) => ({ port: x.port, release: x.id })) } : {};
  return { ...base, ...(current ? { current } : {}), ...live, ...colors, releases: state.releases.map((r) => r.id), ...(rollbackTo ? { rollbackTo } : {}), records: state.records.slice(-last) };
}

/** A reason fits a table cell; --json has it whole. */
function short(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Runs the report; resolves with the exit code (2 when a host could not be read). */
export async function main(io: ReportIo): Promise<number> {
  const args = reportArgs(io, USAGE, ['app', 'root', 'last'], 1);
  if (typeof args === 'number') return args;
  const last = Number(args.own.last ?? 10);
  let inventory;
  let hosts;
  const layouts = new Map<string, ReleaseLayout>();
  try {
    if (!Number.isInteger(last) || last < 0) throw new Error(`--last takes a whole number, got ${args.own.last}`);
    inventory = await loadInventoryFile(resolve(io.cwd, args.inventory));
    hosts = selectHosts(inventory, args.limit);
    const missing: string[] = [];
    for (const h of hosts) {
      const app = args.own.app ?? h.vars.app;
      const root = args.own.root ?? h.vars.appRoot ?? '/srv';
      if (typeof app !== 'string') missing.push(h.name);
      else layouts.set(h.name, releaseLayout(app, String(root)));
    }
    if (missing.length) throw new Error(`no app for ${missing.join(', ')}: set the var app or pass --app`);
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
  const ctx = connectContext(io.env, { acceptNewHostKeys: args.acceptNewHostKeys });
  const inv = inventory;
  const layout = (name: string) => layouts.get(name) as ReleaseLayout;
  const results = await collectFacts(
    hosts,
    (h) => openConnection(h, inv, ctx),
    (h) => [releasesState(layout(h.name).dir)],
    ([state], h) => summarize(h.name, layout(h.name), state as ReleasesState, last),
    args.concurrency,
  );
  const out: HostReleases[] = results.map((r) => (r.kind === 'ok' ? r.value : { host: r.host.name, app: layout(r.host.name).app, dir: layout(r.host.name).dir, error: r.error.reason }));

  if (args.json) io.stdout.write(`${JSON.stringify({ hosts: out }, null, 2)}\n`);
  else {
    for (const h of out) {
      const back = h.current ? `; a rollback goes to ${h.rollbackTo ?? '(none)'}` : '';
      const color = h.live ? ` (${h.live.color ? `${h.live.color}, ` : ''}port ${h.live.port})` : '';
      io.stdout.write(`${h.host}: ${h.error ? `cannot read: ${h.error}` : `${h.app} current ${h.current ?? '(none)'}${color}; ${h.releases?.length ?? 0} release(s) in ${h.dir}/releases${back}`}\n`);
    }
    const rows = out.flatMap((h) =>
      (h.records ?? []).map((r) => ({
        cells: [h.host, r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), r.action, `${r.release}${r.port === undefined ? '' : ` @${r.color ?? ''}:${r.port}`}${r.release === h.current ? ' *' : ''}`, r.ref ?? (r.image ? `image ${r.image}` : ''), r.commit?.slice(0, 7) ?? '', r.result, short(r.reason ?? '')],
      })),
    );
    if (rows.length) io.stdout.write(`\n${renderTable(['HOST', 'TIME', 'ACTION', 'RELEASE (* live)', 'REF', 'COMMIT', 'RESULT', 'REASON'], rows)}`);
  }
  return out.some((h) => h.error) ? 2 : 0;
}

if (isMain(import.meta.url, process.argv)) {
  process.exitCode = await main({ argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
}
