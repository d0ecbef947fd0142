import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { hostTextfile, readSamples, renderTextfile, writeTextfile, type Metric } from '../../../lib/metrics/textfile.ts';
import { parseExposition } from '../../support/exposition.ts';
import { tempDir } from '../../support/temp-dir.ts';

const gauge = (name: string, samples: Metric['samples'], help = 'Help.'): Metric => ({ name, help, type: 'gauge', samples });

t.test('rendering: HELP and TYPE before the samples, labels sorted and escaped, stable order', async (t) => {
  const text = renderTextfile([
    gauge('tackle_b', [
      { labels: { host: 'db2', database: 'app' }, value: 2 },
      { labels: { database: 'app', host: 'db1' }, value: 1.5 },
    ]),
    gauge('tackle_a', [{ labels: {}, value: 1796000000.25 }], 'Line one\nback\\slash'),
  ]);
  t.equal(
    text,
    `# HELP tackle_b Help.
# TYPE tackle_b gauge
tackle_b{database="app",host="db1"} 1.5
tackle_b{database="app",host="db2"} 2
# HELP tackle_a Line one\\nback\\\\slash
# TYPE tackle_a gauge
tackle_a 1796000000.25
`,
  );
  const parsed = parseExposition(text);
  t.same(parsed.get('tackle_a'), { help: 'Line one\nback\\slash', type: 'gauge', samples: [{ labels: {}, value: 1796000000.25 }] });
});

t.test('label values with quotes, backslashes and newlines survive a strict parse and a read back', async (t) => {
  const nasty = 'a"b\\c\nd} e="f",';
  const metrics = [gauge('tackle_x', [{ labels: { host: nasty, database: 'ok' }, value: NaN }, { labels: { host: 'inf', database: '' }, value: Infinity }]), gauge('tackle_empty', [])];
  const text = renderTextfile(metrics);
  t.notMatch(text, /tackle_empty/, 'a family without samples is left out');
  t.equal(text.split('\n').length, 5, 'no raw newline inside a sample line');
  const parsed = parseExposition(text).get('tackle_x');
  t.same(parsed?.samples.map((s) => s.labels.host).sort(), ['inf', nasty].sort());
  t.ok(Number.isNaN(parsed?.samples.find((s) => s.labels.host === nasty)?.value));
  const byHost = (samples: ReadonlyArray<{ labels: Readonly<Record<string, string>> }> = []) => [...samples].sort((a, b) => String(a.labels.host).localeCompare(String(b.labels.host)));
  t.same(byHost(readSamples(text, 'tackle_x')), byHost(parsed?.samples), 'read back as the strict reader reads it');
  t.same(readSamples(`${text}tackle_x_total 3\ngarbage{ 1\n`, 'tackle_x').length, 2, 'a longer name or a broken line is not taken');
});

t.test('misuse is a TypeError: bad metric or label names, a family twice, a series twice', async (t) => {
  t.throws(() => renderTextfile([gauge('tackle-backup', [{ labels: {}, value: 1 }])]), TypeError);
  t.throws(() => renderTextfile([gauge('tackle_x', [{ labels: { 'data-base': 'a' }, value: 1 }])]), /not a label name/);
  t.throws(() => renderTextfile([gauge('tackle_x', [{ labels: { __name__: 'a' }, value: 1 }])]), /not a label name/);
  t.throws(() => renderTextfile([gauge('tackle_x', []), gauge('tackle_x', [])]), /given twice/);
  t.throws(() => renderTextfile([gauge('tackle_x', [{ labels: { a: '1' }, value: 1 }, { labels: { a: '1' }, value: 2 }])]), /same labels/);
});

t.test('the strict reader refuses what the format does not allow', async (t) => {
  t.throws(() => parseExposition('m 1'), /newline/);
  t.throws(() => parseExposition('m{a="\\x"} 1\n'), /bad escape/);
  t.throws(() => parseExposition('m 1\n# TYPE m gauge\n'), /after its samples/);
  t.throws(() => parseExposition('m 1\nn 1\nm 2\n'), /appears again/);
  t.throws(() => parseExposition('m{a="1",a="2"} 1\n'), /twice/);
  t.throws(() => parseExposition('m one\n'), /bad value/);
});

t.test('writeTextfile replaces the file whole and leaves no temporary file', async (t) => {
  const dir = tempDir('textfile');
  const file = join(dir, 'tackle.prom');
  await writeFile(file, 'old\n');
  await writeTextfile(file, 'new\n');
  t.equal(await readFile(file, 'utf8'), 'new\n');
  t.same(await readdir(dir), ['tackle.prom']);
  await t.rejects(writeTextfile(join(dir, 'missing', 'x.prom'), 'x'), { code: 'ENOENT' });
});

t.test('on a host: only where node_exporter has its directory, through a temporary name that is not *.prom', async (t) => {
  const op = hostTextfile({ name: 'tackle_backup.prom', text: 'm 1\n' });
  t.equal(op.name, 'shell node_exporter textfile /var/lib/prometheus/node-exporter/tackle_backup.prom');
  const [guard] = Object.values(op.facts);
  t.match(String((guard as { command?: unknown }).command), /test -e \/var\/lib\/prometheus\/node-exporter/);
  const change = op.plan({ removes: { kind: 'exists' } } as never);
  t.same(change?.effects?.writes, ['/var/lib/prometheus/node-exporter/tackle_backup.prom'], 'it writes that one file: later steps stay planned');
  const command = String(change?.actions[0]?.command);
  t.match(command, /tackle_tmp=\$\(mktemp \/var\/lib\/prometheus\/node-exporter\/\.tackle-[0-9a-f]{8}-XXXXXX\)\n/, 'a temporary name the collector does not read');
  t.notMatch(command, /--suffix/);
  t.match(command, /only %s of %s bytes arrived/, 'renamed only once the host got exactly the planned bytes');
  t.ok(command.includes(createHash('sha256').update('m 1\n').digest('hex')));
  t.match(command, /mv -fT -- "\$tackle_tmp" \/var\/lib\/prometheus\/node-exporter\/tackle_backup\.prom\n/);
  t.equal(change?.actions[0]?.stdin, 'm 1\n');
  t.equal(op.plan({ removes: { kind: 'missing' } } as never), undefined, 'no node_exporter directory: nothing to do');
});
