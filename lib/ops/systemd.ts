import { sh, type Command } from '../command/command.ts';
import { afterEach, defineOperation, UNKNOWN, type Action, type Change, type CommonOptions, type Operation, type Unknown } from './operation.ts';
import { systemdUnit, type SystemdUnit } from '../facts/systemd.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';

/**
 * Desired state of a systemd unit. `name` is the unit (`nginx`, `nginx.service`,
 * `getty@tty1`, `fstrim.timer`), so the step name cannot be overridden here.
 */
export interface ServiceOptions extends Omit<CommonOptions, 'name'> {
  name: string;
  /** Start at boot. Units that cannot be enabled by themselves (`static`, `indirect`, `generated`…) are left as they are. */
  enabled?: boolean;
  /** `restarted` and `reloaded` always act: use them in handlers. `reloaded` restarts a unit that cannot reload, and starts a stopped one. */
  state?: 'started' | 'stopped' | 'restarted' | 'reloaded';
  /** Run `systemctl daemon-reload` first when systemd says the unit's files changed on disk. Default `true`. */
  daemonReload?: boolean;
}

/** A unit's desired state, as `planService` takes it. */
export interface Desired {
  name: string;
  enabled: boolean | undefined;
  state: ServiceOptions['state'];
  daemonReload: boolean;
}

// Unit names: ASCII letters, digits, ":-_.\@"; never a leading "-", which systemctl would read as an option.
const UNIT_NAME = /^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,254}$/;
const STATES: readonly string[] = ['started', 'stopped', 'restarted', 'reloaded'];

// Activating covers "activating (auto-restart)": starting it again would only queue the same job.
const RUNNING: ReadonlySet<string> = new Set(['active', 'activating', 'reloading', 'refreshing']);
// Everything else needs no `enable`: enabled(-runtime) already is; static, indirect, alias, generated and
// transient units cannot be enabled by name (systemctl says so and exits 0, so acting would never converge).
// Masked and bad are kept so that the apply fails with systemd's own explanation.
const ENABLE_NEEDED: ReadonlySet<string> = new Set(['disabled', 'linked', 'linked-runtime', 'masked', 'masked-runtime', 'bad', '']);

/**
 * Ensures a systemd unit is enabled or disabled and started, stopped, restarted
 * or reloaded, from one `systemctl show`. A unit that does not exist yet (its
 * package is installed by an earlier step) is planned like a stopped, disabled
 * one; the apply fails if it still does not exist. `enabled: false` leaves
 * runtime enablement (`enabled-runtime`, e.g. Debian's postgresql@ clusters) alone.
 *
 * @example
 * await host.run(systemd.service({ name: 'nginx', state: 'started', enabled: true }));
 * // in a handler:
 * await host.run(systemd.service({ name: 'nginx', state: 'reloaded' }));
 */
function service(options: ServiceOptions): Operation {
  const desired = checkService(options);
  const wants = [desired.state, desired.enabled === undefined ? undefined : desired.enabled ? 'enabled' : 'disabled'].filter(Boolean);
  return defineOperation({
    name: `systemd.service ${desired.name}${wants.length ? ` ${wants.join(', ')}` : ''}`,
    facts: { unit: systemdUnit(desired.name) },
    // Not `options` itself: its `name` is the unit, not a step name.
    options: { notify: options.notify },
    plan: ({ unit }) => planService(desired, unit),
  });
}

function checkService(o: ServiceOptions): Desired {
  const { name } = o;
  if (typeof name !== 'string' || !UNIT_NAME.test(name)) {
    throw refuse('systemd.service', `${JSON.stringify(name)} is not a unit name such as "nginx" or "getty@tty1.service"`);
  }
  if (/@(\.[a-z]+)?$/.test(name)) throw refuse('systemd.service', `${name} is a template; name an instance such as ${name.replace('@', '@main')}`);
  if (o.state !== undefined && !STATES.includes(o.state)) {
    throw refuse(`systemd.service ${name}`, `state must be one of ${STATES.join(', ')} (got ${JSON.stringify(o.state)})`);
  }
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw refuse(`systemd.service ${name}`, 'enabled must be true or false');
  return { name, enabled: o.enabled, state: o.state, daemonReload: o.daemonReload !== false };
}

/**
 * The change that brings one unit to the desired state (exported for ops that own a service, such
 * as `apt.packages({ services })`).
 *
 * @example planService({ name: 'nginx', enabled: true, state: 'started', daemonReload: true }, unit)
 */
export function planService(d: Desired, unit: SystemdUnit): Change | undefined {
  if (unit.kind === 'unavailable') return planBlind(d, unit.reason);
  // The real name: `systemctl enable` refuses an alias ("sshd" for ssh.service on Debian).
  const target = unit.id || d.name;
  const actions: Action[] = [];
  const said: string[] = [];
  const add = (command: Command, what: string): void => {
    actions.push({ command });
    said.push(what);
  };
  // A masked unit reports a changed drop-in forever (systemd#33672) and loads no file anyway.
  if (d.daemonReload && unit.needDaemonReload && unit.loadState !== 'masked') add(sh`systemctl daemon-reload`, 'daemon-reload (unit files changed on disk)');
  if (d.enabled === true && ENABLE_NEEDED.has(unit.unitFileState)) add(sh`systemctl enable ${target}`, `enable ${target}`);
  if (d.enabled === false && unit.unitFileState === 'enabled') add(sh`systemctl disable ${target}`, `disable ${target}`);
  const running = RUNNING.has(unit.activeState);
  if (d.state === 'started' && !running) add(sh`systemctl start ${target}`, `start ${target}`);
  // `systemctl stop` on a deactivating unit waits for the stop to finish.
  if (d.state === 'stopped' && (running || unit.activeState === 'deactivating')) add(sh`systemctl stop ${target}`, `stop ${target}`);
  if (d.state === 'restarted') add(sh`systemctl restart ${target}`, `restart ${target}`);
  if (d.state === 'reloaded') add(sh`systemctl reload-or-restart ${target}`, describeReload(target, unit, running));
  return actions.length === 0 ? undefined : { summary: said.join(', '), actions, effects: { facts: { [systemdUnit(d.name).key]: unitAfter(d, unit) } } };
}

/** The unit as systemd shows it after the change; unknown for a unit not loaded (its load may fail). */
function unitAfter(d: Desired, unit: SystemdUnit & { kind: 'unit' }): SystemdUnit | Unknown {
  if (unit.loadState !== 'loaded') return UNKNOWN;
  const enabled = d.enabled === true && ENABLE_NEEDED.has(unit.unitFileState) ? 'enabled' : d.enabled === false && unit.unitFileState === 'enabled' ? 'disabled' : unit.unitFileState;
  const active = d.state === 'stopped' ? { activeState: 'inactive', subState: 'dead' } : d.state === undefined ? {} : RUNNING.has(unit.activeState) && d.state === 'started' ? {} : { activeState: 'active', subState: 'running' };
  return { ...unit, unitFileState: enabled, ...active, needDaemonReload: d.daemonReload ? false : unit.needDaemonReload };
}

// Without a running systemd (a container, a chroot, this controller) the state is unknowable: plan
// every command the desired state implies, say why, and let the apply fail with systemctl's reason.
function planBlind(d: Desired, reason: string): Change | undefined {
  const commands = [
    d.enabled === true ? sh`systemctl enable ${d.name}` : undefined,
    d.enabled === false ? sh`systemctl disable ${d.name}` : undefined,
    d.state === 'started' ? sh`systemctl start ${d.name}` : undefined,
    d.state === 'stopped' ? sh`systemctl stop ${d.name}` : undefined,
    d.state === 'restarted' ? sh`systemctl restart ${d.name}` : undefined,
    d.state === 'reloaded' ? sh`systemctl reload-or-restart ${d.name}` : undefined,
  ].filter((c): c is Command => c !== undefined);
  if (commands.length === 0) return undefined;
  const first = reason.split('\n')[0] ?? reason;
  return { summary: `${commands.map((c) => c.toString().replace(/^systemctl /, '')).join(', ')} (state unknown: ${first})`, actions: commands.map((command) => ({ command })) };
}

// reload-or-restart reloads when the unit can, restarts otherwise, and starts it when stopped.
function describeReload(target: string, unit: SystemdUnit & { kind: 'unit' }, running: boolean): string {
  if (unit.loadState !== 'loaded') return `reload or restart ${target}`;
  if (!running) return `start ${target} (it was not running)`;
  return unit.canReload ? `reload ${target}` : `restart ${target} (it cannot reload)`;
}

/**
 * Runs `systemctl daemon-reload`, always: meant for a handler notified by the
 * step that wrote a unit file (`systemd.service` also reloads by itself when
 * systemd reports the unit changed).
 *
 * @example
 * handlers: { 'reload systemd': async (host) => { await host.run(systemd.daemonReload()); } }
 */
function daemonReload(options: CommonOptions = {}): Operation {
  return defineOperation({
    name: 'systemd.daemonReload',
    facts: {},
    options,
    plan: () => ({ summary: 'reload systemd unit files', actions: [{ command: sh`systemctl daemon-reload` }] }),
  });
}

/**
 * systemd operations.
 *
 * @example
 * await host.run(systemd.service({ name: 'nginx', state: 'started', enabled: true }));
 */
/** A unit file tackle writes to /etc/systemd/system. */
export interface UnitFileOptions extends Omit<CommonOptions, 'name'> {
  /** The unit: `demo` (a service) or `demo.timer`. */
  name: string;
  content: string;
  /** A check of the new file before it replaces the old one, as files.file's (`grep -q ^ExecStart= %s`). */
  validate?: string;
}

/**
 * Ensures a unit file in /etc/systemd/system (written as files.file writes, 0644), and says
 * what systemd will then show of the unit, so the systemd.service step after it is planned
 * exactly: a new unit is loaded from disk at once (disabled or static, not running); a changed
 * one needs a daemon-reload. Follow it with systemd.service (daemonReload: true, the default).
 *
 * @example
 * systemd.unitFile({ name: 'demo', content: unit, notify: handler('restart demo') }),
 * systemd.service({ name: 'demo', enabled: true, state: 'started' }),
 */
function unitFile(options: UnitFileOptions): Operation {
  const id = checkService({ name: options.name }).name.includes('.') ? options.name : `${options.name}.service`;
  const path = `/etc/systemd/system/${id}`;
  const write = files.file({ path, content: options.content, mode: '0644', ...(options.validate === undefined ? {} : { validate: options.validate }) });
  const unit = systemdUnit(options.name);
  return defineOperation({
    name: `systemd.unitFile ${id}`,
    facts: { unit },
    parts: [write],
    options: { notify: options.notify },
    plan: (values, part) => {
      const change = part(write);
      if (!change) return undefined;
      const after = unitAfterWrite(id, path, options.content, values.unit);
      return { ...change, effects: afterEach(change.effects, { facts: { [unit.key]: after } }) };
    },
  });
}

function unitAfterWrite(id: string, path: string, content: string, unit: SystemdUnit): SystemdUnit | Unknown {
  if (unit.kind !== 'unit' || unit.loadState === 'masked') return UNKNOWN;
  if (unit.loadState === 'loaded') return { ...unit, needDaemonReload: true };
  // Measured on Debian 12: `systemctl show` loads a unit not found before from its new file.
  const installable = /^\[Install\]/m.test(content);
  return {
    kind: 'unit',
    id,
    names: [id],
    loadState: 'loaded',
    activeState: 'inactive',
    subState: 'dead',
    fragmentPath: path,
    unitFileState: installable ? 'disabled' : 'static',
    canReload: /^ExecReload=/m.test(content),
    needDaemonReload: false,
  };
}

export const systemd = { service, daemonReload, unitFile };
