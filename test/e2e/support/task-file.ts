// Writes a throwaway task script into a temp dir, runnable like tasks/*.ts through the CLI.
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

/**
 * Writes `<dir>/<name>.mts` that imports `names` from lib/index.ts, defines the task from `spec`
 * (the source text of defineTask's argument) and runs it as a CLI; returns the file's path.
 *
 * @example await writeTaskFile('race', ['files'], `{ name: 'race', async run(host) { … } }`)
 */
export async function writeTaskFile(name: string, names: readonly string[], spec: string): Promise<string> {
  const file = join(tempDir('task'), `${name}.mts`);
  const imports = [...new Set(['defineTask', 'runIfMain', ...names])].join(', ');
  await writeFile(
    file,
    `import { ${imports} } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
const task = defineTask(${spec});
await runIfMain(import.meta, task);
`,
  );
  return file;
}
