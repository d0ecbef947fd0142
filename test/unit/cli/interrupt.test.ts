import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';

const ROOT = resolve(import.meta.dirname, '../../..');

t.test('Ctrl-C: the step under way finishes, no new step starts, recap and report still come', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tackle-int-'));
  const inv = join(dir, 'inventory.mts');
  writeFileSync(inv, `import { defineInventory } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};\nexport default defineInventory({ hosts: { here: { connection: 'local', vars: { dir: ${JSON.stringify(dir)} } } } });\n`);
  const report = join(dir, 'report.json');
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/unit/cli/fixtures/slow.ts'), '--inventory', inv, '--json', report], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // Interrupt once the slow step is running on the host.
  const deadline = Date.now() + 20_000;
  while (!existsSync(join(dir, 'started')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('close', r));
  t.equal(code, 130, 'exit code 130 after Ctrl-C');
  t.match(out, /Interrupted: finishing the steps under way/);
  t.match(out, /RECAP slow \(interrupted\)/);
  t.notOk(existsSync(join(dir, 'second')), 'no new step started');
  const json = JSON.parse(readFileSync(report, 'utf8')) as { interrupted: boolean; hosts: Array<{ steps: Array<{ name: string; status: string }> }> };
  t.equal(json.interrupted, true);
  t.same(json.hosts[0]?.steps.map((s) => [s.name, s.status]), [['shell slow step', 'changed']], 'the step under way finished');
});
