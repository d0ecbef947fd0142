// The releases of an app on each host: which one is live, which are kept, and the record of
// deploys and rollbacks (ref, commit, time, result) that scripts/deploy.ts and rollback.ts keep
// on the host in /srv/APP/releases.jsonl, and where a plain rollback would go. Reads only.
//
//   npx tsx scripts/releases.ts --limit web
//   npx tsx scripts/releases.ts --app shop --last 20 --json -      # the JSON report on stdout (each host's `data`)
// For a blue/green app it also names the color (and port) the current release went live on.
//
// The app comes from the hosts' `app` var (and `appRoot`, default /srv), or --app / --root.
// A read-only task on the one CLI: no host lock; exit 2 when a host could not be read.
import { type CliOutput, type Color, defineTask, type HostReport, type JsonReport, releaseLayout, type ReleaseLayout, type ReleaseRecord, type ReleasesState, releasesState, renderTable, rollbackTarget, runIfMain, v } from '../lib/index.ts';

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

/** Reads each host's releases of its app; changes nothing. Its findings are each host's `data` in the report. */
export const releasesTask = defineTask({
  name: 'releases',
  readOnly: true,
  vars: {
    /** The app (`--app`); the var deploy.ts reads. */
    app: v.fileName(),
    /** Where apps live (`--root`). */
    appRoot: v.path().default('/srv'),
    /** Records shown per host (`--last`). */
    last: v.integer({ min: 0 }).default(10),
  },
  flags: {
    app: { type: 'string', description: "the app (default: each host's var app)" },
    root: { type: 'string', var: 'appRoot', description: "where apps live (default: each host's var appRoot, or /srv)" },
    last: { type: 'number', description: 'records shown per host (default 10)' },
  },
  async run(host): Promise<HostReleases> {
    const layout = releaseLayout(host.vars.app, host.vars.appRoot);
    const [state] = await host.facts([releasesState(layout.dir)]);
    return summarize(host.name, layout, state, host.vars.last);
  },
});

/** A host's line: its app, the live release and where a rollback goes, or why it could not be read. */
function hostLine(h: HostReport): string {
  const r = h.data as HostReleases | undefined;
  if (!r) return `${h.name}: cannot read: ${h.error?.reason ?? h.status}`;
  const back = r.current ? `; a rollback goes to ${r.rollbackTo ?? '(none)'}` : '';
  const color = r.live ? ` (${r.live.color ? `${r.live.color}, ` : ''}port ${r.live.port})` : '';
  return `${r.host}: ${r.app} current ${r.current ?? '(none)'}${color}; ${r.releases?.length ?? 0} release(s) in ${r.dir}/releases${back}`;
}

/** Each host's line, then every record in one table. */
export const releasesOutput: CliOutput = {
  render(report: JsonReport) {
    const found = report.hosts.flatMap((h) => (h.data ? [h.data as HostReleases] : []));
    const rows = found.flatMap((h) =>
      (h.records ?? []).map((r) => ({
        cells: [h.host, r.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), r.action, `${r.release}${r.port === undefined ? '' : ` @${r.color ?? ''}:${r.port}`}${r.release === h.current ? ' *' : ''}`, r.ref ?? (r.image ? `image ${r.image}` : ''), r.commit?.slice(0, 7) ?? '', r.result, short(r.reason ?? '')],
      })),
    );
    const table = rows.length ? `\n${renderTable(['HOST', 'TIME', 'ACTION', 'RELEASE (* live)', 'REF', 'COMMIT', 'RESULT', 'REASON'], rows)}` : '';
    return `${report.hosts.map(hostLine).join('\n')}\n${table}`;
  },
};

await runIfMain(import.meta, releasesTask, releasesOutput);
