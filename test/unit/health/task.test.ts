// The health report as a read-only task: what it reads (one round trip per host, no lock), what it
// leaves in the report, and how its findings become the exit code of the one CLI.
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { runCli } from '../../../lib/cli/main.ts';
import { renderTable } from '../../../lib/cli/table.ts';
import { EXIT, toJsonReport, type JsonReport } from '../../../lib/engine/report.ts';
import { runTask } from '../../../lib/engine/runner.ts';
import { unreachableHealth, type HostHealth } from '../../../lib/health/evaluate.ts';
import { healthExitCode, healthOf, healthTask } from '../../../lib/health/task.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { loadInventoryFile } from '../../../lib/inventory/load.ts';
import { healthOutput } from '../../../scripts/health.ts';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

function streams() {
  const out = { stdout: '', stderr: '' };
  const stream = (key: 'stdout' | 'stderr') => ({ write: (s: string) => ((out[key] += s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
  return { out, stdout: stream('stdout'), stderr: stream('stderr') };
}

async function inventoryFile(hosts: string): Promise<string> {
  const dir = tempDir('health');
  const file = join(dir, 'inventory.ts');
  await writeFile(file, `import { defineInventory } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};\nexport default defineInventory({ hosts: ${hosts} });\n`);
  return file;
}

const host = (name: string, severity: HostHealth['severity']): HostHealth => ({ host: name, severity, checks: [{ check: 'memory', subject: '', value: '1 % used', severity }] });

t.test('a read-only task: one round trip per host, no lock, no handler records, its findings in the report', async (t) => {
  const inv = defineInventory({ hosts: { here: { connection: 'local', vars: { health: { services: [] } } } } });
  const conns: LocalConnection[] = [];
  const dir = tempDir('health');
  const result = await runTask(healthTask, [...inv.hosts.values()], {
    connect: async (h) => {
      const c = new LocalConnection(h.name);
      conns.push(c);
      return c;
    },
    hostPaths: () => ({ lock: join(dir, 'lock'), state: join(dir, 'state') }),
  });
  t.equal(healthTask.readOnly, true);
  t.same(conns.map((c) => c.stats().channels), [1], 'the facts in one exec: no lock taken, no records read');
  const [here] = healthOf(toJsonReport(result));
  t.match(here, { host: 'here', severity: /^(ok|warning|critical)$/ });
  t.ok(here?.checks.some((c) => c.check === 'memory'), 'the findings are the host data');
});

t.test('health through the one CLI: vars checked as for any task (exit 1, "error:"), --json - on stdout, the table on stderr', async (t) => {
  const bad = streams();
  const code = await runCli(healthTask, { argv: ['--inventory', await inventoryFile("{ here: { connection: 'local', vars: { health: { disk: { warning: 'high' } } } } }")], cwd: '/', env: {}, ...bad }, healthOutput);
  t.equal(code, EXIT.usage);
  t.match(bad.out.stderr, /^error: task health: vars do not fit task health:\n {2}- host here: var health\.disk\.warning must be a number/);
  t.equal(bad.out.stdout, '', 'nothing connected, nothing shown');

  const good = streams();
  const inv = await inventoryFile("{ here: { connection: 'local', vars: { health: { services: [] } } } }");
  const exit = await runCli(healthTask, { argv: ['--inventory', inv, '--json', '-'], cwd: '/', env: {}, ...good }, healthOutput);
  const report = JSON.parse(good.out.stdout) as JsonReport;
  t.match(report, { task: 'health', summary: { ok: 1 }, hosts: [{ name: 'here', status: 'ok', steps: [], data: { host: 'here' } }] });
  const [here] = healthOf(report);
  t.equal(exit, healthExitCode(EXIT.ok, healthOf(report)), 'the exit code follows the worst finding');
  t.match(good.out.stderr, /^HOST\s+CHECK\s+VALUE\s+STATUS$/m, 'the table goes to stderr');
  t.match(good.out.stderr, new RegExp(`\\n1 host\\(s\\): ${here?.severity === 'ok' ? 1 : 0} ok, `));

  const help = streams();
  t.equal(await runCli(healthTask, { argv: ['--help'], cwd: '/', env: {}, ...help }, healthOutput), EXIT.ok);
  t.match(help.out.stdout, /--prometheus STRING\s+also write the figures[\s\S]*health\.disk\.warning[\s\S]*Exit codes:\n {2}0 /);
});

t.test('findings to the exit code: the run first, then the worst severity', async (t) => {
  t.equal(healthExitCode(EXIT.ok, [host('a', 'ok'), host('b', 'ok')]), EXIT.ok);
  t.equal(healthExitCode(EXIT.ok, [host('a', 'ok'), host('b', 'warning')]), EXIT.warning);
  t.equal(healthExitCode(EXIT.ok, [host('a', 'critical'), host('b', 'warning')]), EXIT.failed);
  t.equal(healthExitCode(EXIT.failed, [host('a', 'ok')]), EXIT.failed, 'an unreachable host');
  t.equal(healthExitCode(EXIT.interrupted, [host('a', 'warning')]), EXIT.interrupted);
});

t.test('a host not read is critical in the findings, with the reason', async (t) => {
  const report = toJsonReport({
    task: 'health', dryRun: false, interrupted: false, startedAt: new Date(0), durationMs: 1,
    hosts: [
      { name: 'a', status: 'ok', durationMs: 1, steps: [], data: host('a', 'ok') },
      { name: 'b', status: 'skipped', durationMs: 0, steps: [] },
    ],
  });
  t.same(healthOf(report), [host('a', 'ok'), unreachableHealth('b', 'not read (skipped)')]);
  t.match(healthOutput.render?.(report, (_c, s) => s, 'the recap'), /^HOST\s+CHECK\s+VALUE\s+STATUS\na\s+memory\s+1 % used\s+OK\nb\s+reachable\s+not read \(skipped\)\s+CRITICAL\n\n2 host\(s\): 1 ok, 0 warning, 1 critical\n$/);
});

t.test('tables: padded columns, styled rows', async (t) => {
  const rows = [{ cells: ['web1', 'disk /', '93 %'], bad: true }, { cells: ['', 'memory', '3 %'], bad: false }];
  t.equal(renderTable(['HOST', 'CHECK', 'VALUE'], rows), 'HOST  CHECK   VALUE\nweb1  disk /  93 %\n      memory  3 %\n');
  t.equal(renderTable(['H', 'C', 'V'], rows, (line, row) => (row.bad ? `!${line}` : line)), 'H     C       V\n!web1  disk /  93 %\n      memory  3 %\n');
});

t.test('loading an inventory module', async (t) => {
  const dir = tempDir('report');
  const good = join(dir, 'good.ts');
  await writeFile(good, `import { defineInventory } from ${JSON.stringify(resolve('lib/index.ts'))};\nexport default defineInventory({ hosts: { x: { connection: 'local' } } });\n`);
  t.same([...(await loadInventoryFile(good)).hosts.keys()], ['x']);
  const bad = join(dir, 'bad.ts');
  await writeFile(bad, 'export default { hosts: {} };\n');
  await t.rejects(loadInventoryFile(bad), { name: 'TackleError', message: /must default-export defineInventory/ });
  await t.rejects(loadInventoryFile(join(dir, 'none.ts')), { name: 'TackleError', message: /cannot load inventory/ });
});
