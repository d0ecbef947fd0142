import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory, InventoryHost, HostSpec } from '../inventory/inventory.ts';
import { TackleError } from '../errors.ts';
import type { Connection } from './connection.ts';
import { openContainer } from './container.ts';
import { LocalConnection } from './local.ts';
import { parseJumpSpec, resolveSshConfig, type ResolvedSshConfig } from './ssh-config.ts';
import { connectSsh, type SshEndpoint, type SshOptions } from './ssh.ts';
import { SudoConnection } from './sudo.ts';

/** What opening a connection needs from the controller; passed in, never read from globals. */
export interface ConnectContext extends SshOptions {
  /** Local home directory (for ~/.ssh). */
  home: string;
  /** Local user name, OpenSSH's default remote user. */
  localUser: string;
  /** ssh-agent socket (SSH_AUTH_SOCK), if any. */
  sshAuthSock?: string;
  /** An ssh_config file instead of ~/.ssh/config (tests). */
  sshConfigFile?: string;
  /** Resolves aliases as OpenSSH would; defaults to `ssh -G`. */
  resolveAlias?: (alias: string) => Promise<ResolvedSshConfig>;
}

/**
 * Opens the connection an inventory host asks for: local or SSH (with jump
 * hosts), or a container entered from its parent host's connection (itself
 * opened this way), wrapped in sudo when the host says `become`.
 *
 * @example
 * const conn = await openConnection(inventory.hosts.get('web1')!, inventory, ctx);
 */
export async function openConnection(host: InventoryHost, inventory: Inventory, ctx: ConnectContext): Promise<Connection> {
  const conn = await openDirect(host, inventory, ctx);
  const become = host.spec.become;
  if (!become) return conn;
  const opts = become === true ? {} : become;
  return new SudoConnection(conn, opts);
}

async function openDirect(host: InventoryHost, inventory: Inventory, ctx: ConnectContext): Promise<Connection> {
  const parent = host.spec.parent;
  if (parent) {
    const parentHost = inventory.hosts.get(parent.host);
    if (!parentHost) throw new TackleError({ phase: 'connect', host: host.name, reason: `parent ${parent.host} is not in the inventory` });
    const parentConn = await openConnection(parentHost, inventory, ctx).catch((cause: unknown) => {
      // Named after the container, so the report lists it as unreachable and says why.
      const why = cause instanceof TackleError ? cause.reason : (cause as Error).message;
      throw new TackleError({ phase: 'connect', host: host.name, reason: `parent ${parent.host}: ${why}`, cause });
    });
    return openContainer(parentConn, host.name, parent);
  }
  if (host.spec.connection === 'local') return new LocalConnection(host.name);
  return connectSsh(await sshEndpoint(host.name, host.spec, inventory, ctx), ctx);
}

/** Resolves an inventory host to an SSH endpoint: inventory values first, then ~/.ssh/config. */
export async function sshEndpoint(name: string, spec: HostSpec, inventory: Inventory, ctx: ConnectContext): Promise<SshEndpoint> {
  const address = spec.address ?? name;
  const cfg = await resolve(address, ctx);
  const endpoint: SshEndpoint = {
    name,
    address: cfg?.hostname ?? address,
    port: spec.port ?? cfg?.port ?? 22,
    user: spec.user ?? cfg?.user ?? ctx.localUser,
    // OpenSSH tries every default identity that exists; a key named in the inventory must exist.
    privateKeyPaths: spec.privateKeyPath ? [spec.privateKeyPath] : await existing(cfg?.identityFiles ?? []),
    knownHostsPaths: spec.knownHostsPath ? [spec.knownHostsPath] : [join(ctx.home, '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'],
    ...(ctx.sshAuthSock && !(cfg?.identitiesOnly && spec.privateKeyPath) ? { agent: ctx.sshAuthSock } : {}),
  };
  const jump = await jumpEndpoint(name, spec, cfg, inventory, ctx);
  return jump ? { ...endpoint, jump } : endpoint;
}

async function jumpEndpoint(name: string, spec: HostSpec, cfg: ResolvedSshConfig | undefined, inventory: Inventory, ctx: ConnectContext): Promise<SshEndpoint | undefined> {
  const viaInventory = spec.jump !== undefined ? inventory.hosts.get(spec.jump) : undefined;
  if (viaInventory) return sshEndpoint(viaInventory.name, viaInventory.spec, inventory, ctx);
  const chain = spec.jump ?? cfg?.proxyJump;
  if (!chain) return undefined;
  // In a chain a,b the first hop is reached directly and each next one through the previous.
  let previous: SshEndpoint | undefined;
  for (const [i, hop] of parseJumpSpec(chain).entries()) {
    const hopSpec: HostSpec = { address: hop.host, ...(hop.port ? { port: hop.port } : {}), ...(hop.user ? { user: hop.user } : {}) };
    const resolved = await sshEndpoint(`${name} jump ${i + 1} (${hop.host})`, hopSpec, inventory, ctx);
    previous = previous ? { ...resolved, jump: previous } : resolved;
  }
  return previous;
}

async function resolve(address: string, ctx: ConnectContext): Promise<ResolvedSshConfig | undefined> {
  const run = ctx.resolveAlias ?? ((alias: string) => resolveSshConfig(alias, { home: ctx.home, localUser: ctx.localUser, ...(ctx.sshConfigFile ? { configFile: ctx.sshConfigFile } : {}) }));
  try {
    return await run(address);
  } catch (cause) {
    // Without an OpenSSH client there is no ~/.ssh/config to honour: use the inventory as written.
    if (/not installed/.test((cause as Error).message)) return undefined;
    throw new TackleError({ phase: 'connect', reason: (cause as Error).message, cause });
  }
}

async function existing(paths: readonly string[]): Promise<string[]> {
  const found = await Promise.all(paths.map((p) => access(p).then(() => p, () => undefined)));
  return found.filter((p): p is string => p !== undefined);
}

/**
 * What opening connections needs, from the process environment the script was given.
 *
 * @example connectContext(process.env, { acceptNewHostKeys: false })
 */
export function connectContext(env: Readonly<Record<string, string | undefined>>, opts: { acceptNewHostKeys: boolean }): ConnectContext {
  return {
    home: env.HOME ?? '/root',
    localUser: env.USER ?? env.LOGNAME ?? 'root',
    acceptNewHostKeys: opts.acceptNewHostKeys,
    ...(env.SSH_AUTH_SOCK ? { sshAuthSock: env.SSH_AUTH_SOCK } : {}),
  };
}
