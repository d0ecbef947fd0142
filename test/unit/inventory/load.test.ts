import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import t from 'tap';
import { loadInventoryFile } from '../../../lib/inventory/load.ts';

const LIB = JSON.stringify(resolve('lib/index.ts'));
const failure = (p: Promise<unknown>): Promise<Error | undefined> => p.then(() => undefined, (e: Error) => e);

t.test('a missing inventory names the path as typed and as resolved, nothing internal', async (t) => {
  const dir = t.testdir({});
  const err = await failure(loadInventoryFile('missing.ts', { cwd: dir }));
  t.match(err, { name: 'TackleError', phase: 'inventory' });
  t.equal(err?.message, `cannot load inventory missing.ts (${join(dir, 'missing.ts')}): the file does not exist`);
  t.notMatch(err?.message, /lib\/inventory|ERR_MODULE_NOT_FOUND|Cannot find module/);
  const abs = join(dir, 'none.ts');
  t.equal((await failure(loadInventoryFile(abs)))?.message, `cannot load inventory ${abs}: the file does not exist`, 'an absolute path is named once');
  await mkdir(join(dir, 'inv'));
  await t.rejects(loadInventoryFile('inv', { cwd: dir }), { message: /inv \(.*\): it is not a file$/ });
});

t.test('a module that is not an inventory gets one line saying what it exports instead', async (t) => {
  const dir = t.testdir({
    'none.ts': `export const hosts = {};\n`,
    'plain.ts': `export default { hosts: {} };\n`,
    'fn.ts': `export default () => ({ hosts: {} });\n`,
    'str.ts': `export default 'web1';\n`,
    'undef.ts': `export default undefined;\n`,
  });
  const cases: [string, string][] = [
    ['none.ts', 'it has no default export'],
    ['plain.ts', 'its default export is a plain object, not passed through defineInventory()'],
    ['fn.ts', 'its default export is a function, not an inventory'],
    ['str.ts', 'its default export is a string, not an inventory'],
    ['undef.ts', 'its default export is undefined'],
  ];
  for (const [file, what] of cases) {
    const message = (await failure(loadInventoryFile(file, { cwd: dir })))?.message;
    t.equal(message, `cannot load inventory ${file} (${join(dir, file)}): ${what}; it must default-export defineInventory({ hosts: { … } })`, file);
    t.notMatch(message, '\n', `${file}: one line`);
  }
});

t.test('a good inventory loads; an error inside it is passed on with its own message', async (t) => {
  const dir = t.testdir({});
  await writeFile(join(dir, 'inventory.ts'), `import { defineInventory } from ${LIB};\nexport default defineInventory({ hosts: { x: { connection: 'local' } } });\n`);
  t.same([...(await loadInventoryFile('inventory.ts', { cwd: dir })).hosts.keys()], ['x']);
  await writeFile(join(dir, 'broken.ts'), `import { defineInventory } from ${LIB};\nexport default defineInventory({ hosts: { x: { address: '' } } });\n`);
  await t.rejects(loadInventoryFile('broken.ts', { cwd: dir }), { name: 'TackleError', message: /address/ }, 'inventory validation errors come through as they are');
  await writeFile(join(dir, 'throws.ts'), `throw new Error('no .env here');\n`);
  await t.rejects(loadInventoryFile('throws.ts', { cwd: dir }), { message: /^cannot load inventory throws\.ts .*: no \.env here$/ });
});
