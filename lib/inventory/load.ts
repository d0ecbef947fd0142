import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TackleError } from '../errors.ts';
import { isInventory, type Inventory } from './inventory.ts';

const EXPECTED = 'it must default-export defineInventory({ hosts: { … } })';

/**
 * Imports an inventory module and checks its default export. A relative `file` is resolved
 * from `cwd`; errors name the path as given and, when it differs, as resolved.
 *
 * @example const inv = await loadInventoryFile('inventory.ts', { cwd: '/srv/ops' });
 */
export async function loadInventoryFile(file: string, opts: { cwd?: string } = {}): Promise<Inventory> {
  const path = opts.cwd === undefined ? resolve(file) : resolve(opts.cwd, file);
  const named = path === file ? file : `${file} (${path})`;
  const fail = (reason: string, cause?: unknown): never => {
    throw new TackleError({ phase: 'inventory', reason: `cannot load inventory ${named}: ${reason}`, cause });
  };
  // Checked before importing: a missing file would otherwise surface as a module-resolution
  // error that names this loader's own path.
  const found = await stat(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : fail(err.message, err)));
  if (!found) return fail('the file does not exist');
  if (!found.isFile()) return fail('it is not a file');

  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    // The inventory may load its own copy of lib/ (another path): match errors by name.
    if ((err as Error).name === 'TackleError') throw err;
    return fail((err as Error).message, err);
  }
  if (isInventory(mod.default)) return mod.default;
  return fail(`${describeDefault(mod)}; ${EXPECTED}`);
}

/** What a module default-exports instead of an inventory, in words. */
function describeDefault(mod: { default?: unknown }): string {
  if (!('default' in mod)) return 'it has no default export';
  const value = mod.default;
  if (value === null || value === undefined) return `its default export is ${value}`;
  if (typeof value === 'function') return 'its default export is a function, not an inventory';
  if (typeof value === 'object' && 'hosts' in value) return 'its default export is a plain object, not passed through defineInventory()';
  return `its default export is ${Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not an inventory`;
}
