// The `tackle` launcher as a person meets it: which task files it refuses, in one line, and how
// it runs the rest (arguments through, exit code back). Temp projects live outside this checkout
// so that its own package.json is not the nearest one.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { tempDir } from '../../support/temp-dir.ts';

const BIN = resolve(import.meta.dirname, '../../../bin/tackle.js');
const root = tempDir('bin');

async function project(name: string, pkg: object | undefined, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'tasks'), { recursive: true });
  if (pkg) await writeFile(join(dir, 'package.json'), JSON.stringify(pkg));
  for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
  return dir;
}
/** `tackle ARGS…` typed in `dir`. */
const tackle = (dir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((done) =>
    execFile(process.execPath, [BIN, ...args], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? Number(err.code) : 0, stdout, stderr })),
  );
const TASK = 'await Promise.resolve();\nconsole.log(JSON.stringify(process.argv.slice(2)));\nprocess.exitCode = 3;\n';

t.test('a task that would load as CommonJS is refused in one line saying what to change', async (t) => {
  const cjs = await project('cjs', { name: 'cjs' }, { 'tasks/x.ts': TASK, 'tasks/y.cts': TASK });
  const r = await tackle(cjs, 'tasks/x.ts');
  t.same([r.code, r.stdout], [1, '']);
  t.equal(r.stderr, `error: tasks/x.ts would load as CommonJS, where the top-level await of a tackle task cannot run: ${join(cjs, 'package.json')} has no "type": "module"; run \`npm pkg set type=module\` in ${cjs}, or rename the file to .mts\n`);
  const cts = await tackle(cjs, 'tasks/y.cts');
  t.equal(cts.stderr, 'error: tasks/y.cts would load as CommonJS, where the top-level await of a tackle task cannot run: its extension .cts makes it CommonJS; rename it to .ts or .mts\n');
  const bare = await project('bare', undefined, { 'tasks/x.ts': TASK });
  t.match((await tackle(bare, 'tasks/x.ts')).stderr, /^error: tasks\/x\.ts would load as CommonJS, .*no package\.json above it says "type": "module"; create one with `npm init -y && npm pkg set type=module`, or rename the file to \.mts\n$/);
});

t.test('a missing task file and no task at all are usage errors', async (t) => {
  const esm = await project('missing', { type: 'module' }, {});
  t.same(await tackle(esm, 'tasks/nope.ts'), { code: 1, stdout: '', stderr: `error: task file tasks/nope.ts (${join(esm, 'tasks/nope.ts')}) does not exist\n` });
  t.match(await tackle(esm), { code: 1, stderr: /^usage: tackle TASK\.ts/ });
});

t.test('an ES module task runs with its arguments, and its exit code comes back', async (t) => {
  const esm = await project('esm', { type: 'module' }, { 'tasks/x.ts': TASK });
  t.same(await tackle(esm, 'tasks/x.ts', '--dry-run', '--var', 'a=b c'), { code: 3, stdout: '["--dry-run","--var","a=b c"]\n', stderr: '' });
  const mts = await project('mts', { name: 'cjs' }, { 'tasks/x.mts': TASK });
  t.equal((await tackle(mts, 'tasks/x.mts')).code, 3, '.mts runs whatever package.json says');
});
