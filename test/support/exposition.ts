// A strict reader of Prometheus' text exposition format (version 0.0.4), written from the format's
// specification and independent of lib/metrics: tests parse what tackle writes with it, so that a
// file node_exporter's textfile collector would reject fails here first.

export interface ParsedSample {
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  help?: string;
  type?: string;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Parses an exposition text; throws naming the line on anything the format does not allow. */
export function parseExposition(text: string): Map<string, Family> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the text does not end with a newline');
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  let current: string | undefined;
  const closed = new Set<string>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { samples: [] }));
    return f;
  };
  // Samples and metadata of one family must be together: starting another family closes it.
  const enter = (name: string, n: number) => {
    if (name === current) return;
    if (closed.has(name)) throw new Error(`line ${n}: ${name} appears again after another family`);
    if (current !== undefined) closed.add(current);
    current = name;
  };
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const n = i + 1;
      if (line === '') throw new Error(`line ${n}: empty line`);
      const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (meta) {
        const [, kind, name = '', rest = ''] = meta;
        if (NAME.exec(name)?.[0] !== name) throw new Error(`line ${n}: bad metric name ${JSON.stringify(name)}`);
        enter(name, n);
        const f = family(name);
        if (kind === 'HELP') {
          if (f.help !== undefined) throw new Error(`line ${n}: second HELP for ${name}`);
          if (/\\[^\\n]|\\$/.test(rest.replace(/\\\\/g, ''))) throw new Error(`line ${n}: bad escape in HELP`);
          f.help = rest.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        } else {
          if (f.type !== undefined) throw new Error(`line ${n}: second TYPE for ${name}`);
          if (f.samples.length) throw new Error(`line ${n}: TYPE for ${name} after its samples`);
          if (!TYPES.has(rest)) throw new Error(`line ${n}: unknown type ${JSON.stringify(rest)}`);
          f.type = rest;
        }
        return;
      }
      if (line.startsWith('#')) return;
      const name = NAME.exec(line)?.[0];
      if (!name) throw new Error(`line ${n}: not a sample: ${JSON.stringify(line)}`);
      enter(name, n);
      let rest = line.slice(name.length);
      const labels: Record<string, string> = {};
      if (rest.startsWith('{')) {
        rest = rest.slice(1);
        while (!rest.startsWith('}')) {
          const label = LABEL.exec(rest)?.[0];
          if (!label || !rest.slice(label.length).startsWith('="')) throw new Error(`line ${n}: bad label at ${JSON.stringify(rest)}`);
          if (label in labels) throw new Error(`line ${n}: label ${label} twice`);
          rest = rest.slice(label.length + 2);
          let value = '';
          for (;;) {
            const c = rest[0];
            if (c === undefined) throw new Error(`line ${n}: unterminated label value`);
            rest = rest.slice(1);
            if (c === '"') break;
            if (c === '\\') {
              const e = rest[0];
              rest = rest.slice(1);
              if (e === 'n') value += '\n';
              else if (e === '\\' || e === '"') value += e;
              else throw new Error(`line ${n}: bad escape \\${e ?? ''} in a label value`);
            } else value += c;
          }
          labels[label] = value;
          if (rest.startsWith(',')) rest = rest.slice(1);
          else if (!rest.startsWith('}')) throw new Error(`line ${n}: expected , or } at ${JSON.stringify(rest)}`);
        }
        rest = rest.slice(1);
      }
      const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
      const raw = m?.[1];
      const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
      if (!raw || !/^(NaN|[-+]Inf|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/.test(raw)) throw new Error(`line ${n}: bad value in ${JSON.stringify(line)}`);
      const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seriesSeen.has(series)) throw new Error(`line ${n}: the same series twice`);
      seriesSeen.add(series);
      family(name).samples.push({ labels, value });
    });
  return families;
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = families.get(name)?.samples.filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? [];
  if (found.length > 1) throw new Error(`${name}: ${found.length} samples match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}
