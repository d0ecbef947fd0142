// What a task file loads before it can answer: `--help` (and the first connection) should not wait
// for dependencies that only some runs need. Each is loaded at its point of use (lib/lazy.ts,
// `await import()` in the SSH connection and the live view).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');
const HEAVY = ['ssh2', 'listr2', 'diff', 'cron-parser'];

/** Runs `node <args>` in the checkout with every module URL it resolves (ESM) or requires (CJS) logged; resolves with the log's lines. */
function loadedBy(args: readonly string[]): Promise<{ code: number | null; stdout: string; loaded: string[] }> {
  const log = join(tempDir('startup'), 'loaded');
  // Resolve hooks run in the loader thread and see every import; require() goes through Module._load.
  // (A dynamic import inside the hook would wait on the hook itself.)
  const hooks = `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); appendFileSync(${JSON.stringify(log)}, r.url + '\\n'); return r; }`;
  const setup = [
    `import { register, Module } from 'node:module'; import { appendFileSync } from 'node:fs';`,
    `register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));`,
    `const load = Module._load; Module._load = function (id, ...rest) { appendFileSync(${JSON.stringify(log)}, 'require:' + id + '\\n'); return load.call(this, id, ...rest); };`,
  ].join('\n');
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(setup)}`, '--import', 'tsx', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.on('error', fail);
    p.on('close', (code) => done({ code, stdout, loaded: readFileSync(log, 'utf8').split('\n').filter(Boolean) }));
  });
}

const heavyIn = (loaded: readonly string[]) => HEAVY.filter((dep) => loaded.some((l) => l.includes(`/node_modules/${dep}/`) || l === `require:${dep}`));

t.test('--help of tasks/provision.ts answers without loading ssh2, listr2, diff or cron-parser', async (t) => {
  const r = await loadedBy(['tasks/provision.ts', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /--dry-run/, 'the usage was printed');
  t.ok(r.loaded.some((l) => l.endsWith('/lib/index.ts')), 'the log sees the modules loaded');
  t.same(heavyIn(r.loaded), [], 'no heavy dependency loaded');
});

t.test('the lazy dependencies still load where they are used', async (t) => {
  const use = [
    `const { jsdiff, cronParser } = await import('./lib/lazy.ts');`,
    `jsdiff().createTwoFilesPatch('a', 'a', 'x\\n', 'y\\n'); cronParser().CronExpressionParser.parse('0 2 * * *');`,
    `await import('ssh2'); await import('listr2');`,
  ].join('\n');
  const r = await loadedBy(['--input-type=module', '-e', use]);
  t.equal(r.code, 0);
  t.same(heavyIn(r.loaded), HEAVY);
});
