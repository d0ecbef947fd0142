import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { TackleError } from '../../../lib/errors.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { connectContext } from '../../../lib/connection/open.ts';
import { loadInventoryFile } from '../../../lib/inventory/load.ts';
import { renderTable } from '../../../lib/cli/table.ts';
import { collectFacts, parseReportArgs } from '../../../lib/health/report.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';

t.test('report flags', async (t) => {
  t.same(parseReportArgs([]), { inventory: './inventory.ts', json: false, concurrency: 10, acceptNewHostKeys: false, help: false, own: {} });
  t.same(parseReportArgs(['--json', '--limit', 'web', '--app', 'shop', '--concurrency', '3'], ['app', 'root']), {
    inventory: './inventory.ts',
    limit: 'web',
    json: true,
    concurrency: 3,
    acceptNewHostKeys: false,
    help: false,
    own: { app: 'shop', root: undefined },
  });
  t.throws(() => parseReportArgs(['--frobnicate']), TypeError);
  t.throws(() => parseReportArgs(['--concurrency', '0']), /--concurrency must be/);
  t.same(connectContext({ HOME: '/home/me', USER: 'me', SSH_AUTH_SOCK: '/tmp/agent' }, { acceptNewHostKeys: true }), { home: '/home/me', localUser: 'me', acceptNewHostKeys: true, sshAuthSock: '/tmp/agent' });
});

t.test('tables: padded columns, styled rows', async (t) => {
  const rows = [{ cells: ['web1', 'disk /', '93 %'], bad: true }, { cells: ['', 'memory', '3 %'], bad: false }];
  t.equal(renderTable(['HOST', 'CHECK', 'VALUE'], rows), 'HOST  CHECK   VALUE\nweb1  disk /  93 %\n      memory  3 %\n');
  t.equal(renderTable(['H', 'C', 'V'], rows, (line, row) => (row.bad ? `!${line}` : line)), 'H     C       V\n!web1  disk /  93 %\n      memory  3 %\n');
});

t.test('collecting: one exec per host, unreachable hosts reported, order kept', async (t) => {
  const inv = defineInventory({ hosts: { a: { connection: 'local' }, b: { connection: 'local' }, down: { address: '192.0.2.1' } } });
  const hosts = [...inv.hosts.values()];
  const conns: LocalConnection[] = [];
  const fact = (n: number) => defineFact(`n${n}`, sh`echo ${String(n)}`, ({ stdout }) => Number(stdout));
  const results = await collectFacts(
    hosts,
    async (h) => {
      if (h.name === 'down') throw new TackleError({ phase: 'connect', host: 'down', reason: 'no route' });
      const c = new LocalConnection(h.name);
      conns.push(c);
      return c;
    },
    (h) => (h.name === 'a' ? [fact(1), fact(2)] : [fact(3)]),
    (values, h) => `${h.name}:${values.join('+')}`,
    2,
  );
  t.same(results.map((r) => (r.kind === 'ok' ? r.value : `${r.kind}: ${r.error.reason}`)), ['a:1+2', 'b:3', 'unreachable: no route']);
  t.same(conns.map((c) => c.stats().channels), [1, 1], 'each host read in one exec');
  const failing = await collectFacts(hosts.slice(0, 1), async () => new LocalConnection('a'), () => [defineFact('bad', sh`echo x`, () => { throw new Error('nope'); })], (v) => v);
  t.match(failing[0], { kind: 'failed', error: { phase: 'fact', reason: /could not understand fact bad: nope/ } });
});

t.test('loading an inventory module', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tackle-report-'));
  const good = join(dir, 'good.ts');
  await writeFile(good, `import { defineInventory } from ${JSON.stringify(resolve('lib/index.ts'))};\nexport default defineInventory({ hosts: { x: { connection: 'local' } } });\n`);
  t.same([...(await loadInventoryFile(good)).hosts.keys()], ['x']);
  const bad = join(dir, 'bad.ts');
  await writeFile(bad, 'export default { hosts: {} };\n');
  await t.rejects(loadInventoryFile(bad), { name: 'TackleError', message: /must default-export defineInventory/ });
  await t.rejects(loadInventoryFile(join(dir, 'none.ts')), { name: 'TackleError', message: /cannot load inventory/ });
});
