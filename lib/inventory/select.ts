import picomatch from 'picomatch';
import { TackleError } from '../errors.ts';
import type { Inventory, InventoryHost } from './inventory.ts';

/**
 * Hosts chosen by `--limit`: comma-separated host names, group names or globs
 * over either; a leading `!` excludes. Without a limit, every host.
 *
 * @example selectHosts(inv, 'web,db1,!web3') ; selectHosts(inv, 'lab*')
 */
export function selectHosts(inventory: Inventory, limit?: string): InventoryHost[] {
  const all = [...inventory.hosts.values()];
  if (limit === undefined || limit.trim() === '') return all;
  const patterns = limit.split(',').map((p) => p.trim()).filter(Boolean);
  const include = patterns.filter((p) => !p.startsWith('!'));
  const exclude = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  const chosen = new Set<string>(include.length === 0 ? all.map((h) => h.name) : []);
  for (const pattern of include) {
    const names = matching(inventory, pattern);
    if (names.length === 0) throw new TackleError({ phase: 'inventory', reason: `--limit ${JSON.stringify(pattern)} matches no host or group` });
    names.forEach((n) => chosen.add(n));
  }
  for (const pattern of exclude) matching(inventory, pattern).forEach((n) => chosen.delete(n));
  return all.filter((h) => chosen.has(h.name));
}

function matching(inventory: Inventory, pattern: string): string[] {
  const isMatch = picomatch(pattern, { dot: true });
  const names = new Set<string>();
  for (const host of inventory.hosts.keys()) if (isMatch(host)) names.add(host);
  for (const [group, hosts] of inventory.groups) if (isMatch(group)) hosts.forEach((h) => names.add(h));
  return [...names];
}
