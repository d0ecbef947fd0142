import type { Secret } from '../command/command.ts';
import { containerSpecProblem, describeContainer, type ContainerVia } from './container.ts';
import { TackleError } from '../errors.ts';

export type Vars = Readonly<Record<string, unknown>>;

/** How to become another user (root by default) with sudo once connected. */
export interface BecomeSpec {
  user?: string;
  /** Sent over stdin to `sudo -S`; without it tackle uses `sudo -n`. */
  password?: Secret;
}

/** One host as written in `inventory.ts`. */
export interface HostSpec<V extends Vars = Vars> {
  /** IP, DNS name or a `Host` alias of ~/.ssh/config. Not used with `connection: 'local'`. */
  address?: string;
  /** `local` runs commands on this machine without SSH. */
  connection?: 'ssh' | 'local';
  port?: number;
  user?: string;
  privateKeyPath?: string;
  knownHostsPath?: string;
  groups?: readonly string[];
  vars?: Partial<V> & Vars;
  /** Jump host: the name of another inventory host, or `user@host:port`. */
  jump?: string;
  /** Run commands through sudo: `true` for root with `sudo -n`. */
  become?: boolean | BecomeSpec;
  /**
   * A container on another inventory host, entered from there (`pct exec`, `docker exec -i`, or a
   * wrapper command such as `chroot DIR`); the parent may itself be behind a jump host.
   */
  parent?: ParentSpec;
}

/** Where a container host lives: its parent's inventory name, how to enter it, and its id. */
export interface ParentSpec {
  host: string;
  via: ContainerVia;
  /** The Proxmox VMID or the docker container name; not used with `wrap`. */
  id?: string;
}

export interface GroupSpec<V extends Vars = Vars> {
  vars?: Partial<V> & Vars;
}

export interface InventorySpec<V extends Vars = Vars> {
  /** Vars for every host, overridden by group vars, overridden by host vars. */
  vars?: Partial<V> & Vars;
  hosts: Readonly<Record<string, HostSpec<V>>>;
  groups?: Readonly<Record<string, GroupSpec<V>>>;
  /**
   * Top-level vars that only some tasks declare (`backup`, an app's deploy vars): a task that does
   * not declare one of them says nothing of it, while every other var a task does not declare gets
   * a warning.
   */
  sharedVars?: readonly string[];
}

/** A host after validation, with its vars merged (all → groups in order → host). */
export interface InventoryHost {
  readonly name: string;
  readonly spec: HostSpec;
  readonly groups: readonly string[];
  readonly vars: Vars;
}

/** A validated inventory; build it with `defineInventory`. */
export interface Inventory {
  readonly kind: 'tackle.inventory';
  readonly hosts: ReadonlyMap<string, InventoryHost>;
  readonly groups: ReadonlyMap<string, readonly string[]>;
  /** {@link InventorySpec.sharedVars}. */
  readonly sharedVars: ReadonlySet<string>;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Validates an inventory and merges vars. Every problem is reported at once,
 * each naming the host or group and the field.
 *
 * @example
 * export default defineInventory({
 *   groups: { web: { vars: { sites: ['app.example.com'] } } },
 *   hosts: { web1: { address: '203.0.113.10', user: 'deploy', groups: ['web'], become: true } },
 * });
 */
export function defineInventory<V extends Vars = Vars>(spec: InventorySpec<V>): Inventory {
  const problems: string[] = [];
  const groupSpecs = spec.groups ?? {};
  const hostSpecs = spec.hosts;
  if (typeof hostSpecs !== 'object' || hostSpecs === null) throw inventoryError(['`hosts` must be an object keyed by host name']);

  for (const name of Object.keys(groupSpecs)) {
    if (!NAME.test(name)) problems.push(`group ${JSON.stringify(name)}: name may use only letters, digits, '_', '.', '-'`);
    if (Object.hasOwn(hostSpecs, name)) problems.push(`group ${name}: a host has the same name, so --limit ${name} would be ambiguous`);
  }
  const shared: unknown = spec.sharedVars ?? [];
  const names = Array.isArray(shared) && shared.every((n) => typeof n === 'string' && n !== '') ? (shared as string[]) : [];
  if (names !== shared) problems.push(`sharedVars must be an array of var names, got ${JSON.stringify(shared)}`);
  const endpoints = new Map<string, string>();
  const hosts = new Map<string, InventoryHost>();
  const members = new Map<string, string[]>(Object.keys(groupSpecs).map((g) => [g, []]));

  for (const [name, h] of Object.entries(hostSpecs)) {
    const at = `host ${name}`;
    if (!NAME.test(name)) problems.push(`host ${JSON.stringify(name)}: name may use only letters, digits, '_', '.', '-'`);
    if (typeof h !== 'object' || h === null) {
      problems.push(`${at}: must be an object`);
      continue;
    }
    const local = h.connection === 'local';
    if (h.connection !== undefined && h.connection !== 'ssh' && !local) problems.push(`${at}: connection must be 'ssh' or 'local'`);
    if (h.parent !== undefined) problems.push(...parentProblems(at, name, h, hostSpecs));
    else if (!local && (typeof h.address !== 'string' || h.address.trim() === '')) problems.push(`${at}: address is empty`);
    if (h.address !== undefined && /\s/.test(h.address)) problems.push(`${at}: address ${JSON.stringify(h.address)} contains white space`);
    if (h.port !== undefined && !(Number.isInteger(h.port) && h.port >= 1 && h.port <= 65535)) problems.push(`${at}: port ${String(h.port)} is not a port number (1-65535)`);
    if (h.user !== undefined && (typeof h.user !== 'string' || h.user === '')) problems.push(`${at}: user is empty`);
    const groups = h.groups ?? [];
    const seen = new Set<string>();
    for (const g of groups) {
      if (!Object.hasOwn(groupSpecs, g)) problems.push(`${at}: unknown group ${JSON.stringify(g)} (defined groups: ${Object.keys(groupSpecs).join(', ') || 'none'})`);
      else if (seen.has(g)) problems.push(`${at}: group ${g} is listed twice`);
      else members.get(g)?.push(name);
      seen.add(g);
    }
    if (h.jump !== undefined) {
      if (h.jump === name) problems.push(`${at}: jump names the host itself`);
      else if (!Object.hasOwn(hostSpecs, h.jump) && !/^(ssh:\/\/)?([^@\s]+@)?[^\s@]+$/.test(h.jump)) problems.push(`${at}: jump ${JSON.stringify(h.jump)} is neither an inventory host nor user@host:port`);
    }
    if (!local) {
      const key = h.parent ? `${describeContainer(h.parent)} on ${h.parent.host}` : `${h.user ?? ''}@${h.address}:${h.port ?? 22} via ${h.jump ?? '-'}`;
      const other = endpoints.get(key);
      if (other) problems.push(`${at}: same address, port, user and jump as host ${other} (a duplicate?)`);
      endpoints.set(key, name);
    }
    const vars = Object.assign({}, spec.vars, ...groups.map((g) => groupSpecs[g]?.vars), h.vars) as Vars;
    hosts.set(name, { name, spec: h as HostSpec, groups: [...groups], vars });
  }
  problems.push(...jumpCycles(hostSpecs), ...parentCycles(hostSpecs));
  if (problems.length > 0) throw inventoryError(problems);
  return { kind: 'tackle.inventory', hosts, groups: members, sharedVars: new Set(names) };
}

function jumpCycles(hosts: Readonly<Record<string, HostSpec>>): string[] {
  const problems: string[] = [];
  for (const start of Object.keys(hosts)) {
    const path = [start];
    let next = hosts[start]?.jump;
    while (next !== undefined && Object.hasOwn(hosts, next)) {
      if (path.includes(next)) {
        problems.push(`host ${start}: jump hosts form a loop (${[...path, next].join(' → ')})`);
        break;
      }
      path.push(next);
      next = hosts[next]?.jump;
    }
  }
  return problems;
}

function parentProblems(at: string, name: string, h: HostSpec, hosts: Readonly<Record<string, HostSpec>>): string[] {
  const parent = h.parent as ParentSpec;
  if (typeof parent !== 'object' || parent === null || typeof parent.host !== 'string') return [`${at}: parent must be { host, via, id? } naming an inventory host`];
  const problems: string[] = [];
  if (parent.host === name) problems.push(`${at}: parent names the host itself`);
  else if (!Object.hasOwn(hosts, parent.host)) problems.push(`${at}: parent ${JSON.stringify(parent.host)} is not an inventory host`);
  const spec = containerSpecProblem(parent);
  if (spec) problems.push(`${at}: parent: ${spec}`);
  // The parent's connection reaches the container: these settings belong on the parent.
  for (const field of ['address', 'port', 'user', 'jump', 'privateKeyPath', 'knownHostsPath'] as const) {
    if (h[field] !== undefined) problems.push(`${at}: has both ${field} and parent; a container is reached through its parent (set ${field} on ${parent.host})`);
  }
  if (h.connection === 'local') problems.push(`${at}: has both connection 'local' and parent`);
  return problems;
}

/** Loops through parents and jump hosts together: opening any host on one would never end. */
function parentCycles(hosts: Readonly<Record<string, HostSpec>>): string[] {
  const problems: string[] = [];
  const next = (h: HostSpec | undefined): string[] => [h?.parent?.host, h?.jump].filter((n): n is string => n !== undefined && Object.hasOwn(hosts, n));
  for (const [name, h] of Object.entries(hosts)) {
    if (h.jump !== undefined && Object.hasOwn(hosts, h.jump) && hosts[h.jump]?.parent !== undefined) {
      problems.push(`host ${name}: jump ${h.jump} is a container (it has a parent); a jump host must be reached over SSH`);
    }
    if (h.parent === undefined) continue;
    // Depth-first from the host; a path that comes back to it is the loop to report.
    const stack: string[][] = [[name]];
    const seen = new Set<string>();
    while (stack.length > 0) {
      const path = stack.pop() as string[];
      const last = path[path.length - 1] as string;
      const found = next(hosts[last]).find((n) => n === name);
      if (found) {
        problems.push(`host ${name}: parents and jump hosts form a loop (${[...path, found].join(' → ')})`);
        break;
      }
      for (const n of next(hosts[last])) {
        if (!seen.has(n)) {
          seen.add(n);
          stack.push([...path, n]);
        }
      }
    }
  }
  return problems;
}

function inventoryError(problems: string[]): TackleError {
  return new TackleError({ phase: 'inventory', reason: `invalid inventory:\n  - ${problems.join('\n  - ')}` });
}

/** Narrows an imported module's default export to an inventory. */
export function isInventory(value: unknown): value is Inventory {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'tackle.inventory';
}
