// What a container host is in the inventory: how its parent enters it, and whether that spec is
// usable. The inventory validates it and the connection layer (above) enters it, so it lives here.

/**
 * How a parent host enters one of its containers: Proxmox `pct exec`, `docker exec`, or any
 * command that runs its trailing arguments inside (e.g. `['chroot', '/srv/nested']`,
 * `['machinectl', 'shell', 'ct1']`, `['lxc-attach', '-n', 'ct1', '--']`).
 */
export type ContainerVia = 'pct' | 'docker' | { readonly wrap: readonly string[] };

/** A container on a parent host: how to enter it, and its id (the VMID, the docker name). */
export interface ContainerSpec {
  via: ContainerVia;
  /** Required for `pct` (a numeric VMID) and `docker` (a name or id); not used with `wrap`. */
  id?: string;
}

/**
 * Why a container spec is unusable, or undefined when it is fine. Shared by the inventory's
 * validation and the connection, so both say the same thing.
 *
 * @example containerSpecProblem({ via: 'pct', id: 'web' }) // 'pct needs a numeric VMID as id, got "web"'
 */
export function containerSpecProblem(spec: ContainerSpec): string | undefined {
  const { via, id } = spec;
  if (via === 'pct') return id !== undefined && /^\d+$/.test(id) ? undefined : `pct needs a numeric VMID as id, got ${JSON.stringify(id)}`;
  if (via === 'docker') {
    // Docker names: [a-zA-Z0-9][a-zA-Z0-9_.-]*; ids are hex. A leading '-' would read as an option.
    return id !== undefined && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id) ? undefined : `docker needs a container name or id as id, got ${JSON.stringify(id)}`;
  }
  if (typeof via !== 'object' || via === null || !Array.isArray(via.wrap)) return `via must be 'pct', 'docker' or { wrap: [command, ...args] }, got ${JSON.stringify(via)}`;
  if (via.wrap.length === 0 || via.wrap.some((w) => typeof w !== 'string' || w === '')) return 'wrap must be a non-empty list of non-empty words';
  if (id !== undefined) return 'id is not used with wrap: put everything in the wrap words';
  return undefined;
}

/** How a container spec reads in messages. @example describeContainer({ via: 'pct', id: '101' }) // 'pct 101' */
export function describeContainer(spec: ContainerSpec): string {
  return typeof spec.via === 'string' ? `${spec.via} ${spec.id ?? ''}` : spec.via.wrap.join(' ');
}
