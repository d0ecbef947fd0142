// Metrics in Prometheus' text exposition format, as node_exporter's textfile collector reads
// them (`*.prom` files in its directory): rendering, reading back samples tackle wrote earlier,
// and writing a file so that a scrape never sees half of it.
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { sh } from '../command/command.ts';
import { TEMP, digestOf, receiveWhole, replaceScript } from '../connection/replace.ts';
import type { Operation } from '../ops/operation.ts';
import { shell } from '../ops/shell.ts';

/** One sample: its labels (names as Prometheus allows them) and its value. */
export interface Sample {
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** A metric family: its name, HELP text, TYPE and samples. tackle writes gauges only. */
export interface Metric {
  name: string;
  help: string;
  type: 'gauge';
  samples: readonly Sample[];
}

/** Where Debian's prometheus-node-exporter reads `*.prom` files. @example posix.join(NODE_EXPORTER_TEXTFILE_DIR, 'tackle_backup.prom') */
export const NODE_EXPORTER_TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value between double quotes: backslash, quote and newline escaped, as the format requires. */
function escapeLabel(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/**
 * The metrics as an exposition-format text: `# HELP` and `# TYPE` before each family's samples,
 * label values escaped, samples sorted by their labels so that equal input gives equal bytes.
 * Families without samples are left out. A bad metric or label name is a TypeError.
 *
 * @example
 * renderTextfile([{ name: 'tackle_up', help: 'Reachable.', type: 'gauge', samples: [{ labels: { host: 'db1' }, value: 1 }] }])
 * // '# HELP tackle_up Reachable.\n# TYPE tackle_up gauge\ntackle_up{host="db1"} 1\n'
 */
export function renderTextfile(metrics: readonly Metric[]): string {
  const seen = new Set<string>();
  let out = '';
  for (const m of metrics) {
    if (!METRIC_NAME.test(m.name)) throw new TypeError(`not a Prometheus metric name: ${JSON.stringify(m.name)}`);
    if (seen.has(m.name)) throw new TypeError(`metric ${m.name} given twice`);
    seen.add(m.name);
    if (m.samples.length === 0) continue;
    const lines = m.samples.map((s) => {
      const labels = Object.keys(s.labels)
        .sort()
        .map((k) => {
          if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new TypeError(`metric ${m.name}: not a label name: ${JSON.stringify(k)}`);
          return `${k}="${escapeLabel(s.labels[k] as string)}"`;
        });
      return `${m.name}${labels.length ? `{${labels.join(',')}}` : ''} ${formatValue(s.value)}`;
    });
    if (new Set(lines.map((l) => l.slice(0, l.lastIndexOf(' ')))).size !== lines.length) throw new TypeError(`metric ${m.name}: two samples with the same labels`);
    out += `# HELP ${m.name} ${m.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${m.name} ${m.type}\n${lines.sort().join('\n')}\n`;
  }
  return out;
}

/**
 * The samples of metric `name` in an exposition text tackle wrote (its previous file): what a
 * run must carry over when it did not measure them again. Lines it cannot read are skipped.
 *
 * @example readSamples('m{host="db1"} 5\n', 'm') // [{ labels: { host: 'db1' }, value: 5 }]
 */
export function readSamples(text: string, name: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !/^[{ ]/.test(line.slice(name.length))) continue;
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const pair = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/;
      rest = rest.slice(1);
      for (let m = pair.exec(rest); m; m = pair.exec(rest)) {
        labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(m[0].length);
      }
      if (!rest.startsWith('}')) continue;
      rest = rest.slice(1);
    }
    const value = /^ (\S+)(?: -?\d+)?$/.exec(rest)?.[1];
    const n = value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
    if (value !== undefined && (value === 'NaN' || !Number.isNaN(n))) samples.push({ labels, value: n });
  }
  return samples;
}

/**
 * Writes `text` to `path` through a temporary file in the same directory and a rename, as
 * node_exporter's textfile collector asks: a scrape sees the old file or the new one, never a
 * part. The temporary name does not end in `.prom`, so the collector never reads it.
 *
 * @example await writeTextfile('/var/lib/prometheus/node-exporter/tackle_backup.prom', renderTextfile(metrics));
 */
export async function writeTextfile(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Writes an exposition text into a host's node_exporter textfile directory, whole or not at all
 * (the shared replace: size and sha256 checked before the rename), and only when that directory
 * exists: a host without node_exporter is left alone. The temporary name drops the `.prom`
 * extension, which the collector would read half-written.
 *
 * @example await host.run(hostTextfile({ name: 'tackle_backup.prom', text }));
 */
export function hostTextfile(file: { name: string; text: string; dir?: string }): Operation {
  const dir = file.dir ?? NODE_EXPORTER_TEXTFILE_DIR;
  const path = posix.join(dir, file.name);
  return shell({
    name: `node_exporter textfile ${path}`,
    command: replaceScript(path, [receiveWhole(TEMP, digestOf(file.text)), sh`chmod 0644 ${TEMP}`], { keepExtension: false }),
    stdin: file.text,
    // Only where node_exporter's directory exists; it writes that one file.
    removes: dir,
    writes: [path],
  });
}
