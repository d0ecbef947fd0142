import { pathToFileURL } from 'node:url';
import { TackleError } from '../errors.ts';
import { isInventory, type Inventory } from './inventory.ts';

/**
 * Imports an inventory module and checks its default export.
 *
 * @example const inv = await loadInventoryFile('/srv/ops/inventory.ts');
 */
export async function loadInventoryFile(file: string): Promise<Inventory> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    // The inventory may load its own copy of lib/ (another path): match errors by name.
    if ((err as Error).name === 'TackleError') throw err;
    throw new TackleError({ phase: 'inventory', reason: `cannot load inventory ${file}: ${(err as Error).message}`, cause: err });
  }
  if (!isInventory(mod.default)) throw new TackleError({ phase: 'inventory', reason: `${file} must default-export defineInventory({ hosts, groups })` });
  return mod.default;
}
