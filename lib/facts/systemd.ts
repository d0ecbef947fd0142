import { sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** A unit as systemd (PID 1) sees it now. */
export type SystemdUnit =
  /** systemctl could not answer: no systemd as PID 1 (a plain container), no D-Bus, an invalid name. */
  | { kind: 'unavailable'; reason: string }
  | {
      kind: 'unit';
      /** The unit's real name: `ssh.service` when asked about its alias `sshd`. */
      id: string;
      names: string[];
      /** `loaded`, `not-found`, `masked`, `bad-setting`, `error`, `stub`, `merged`. */
      loadState: string;
      /** `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`, `maintenance`, `refreshing`. */
      activeState: string;
      /** Type-specific detail: `running`, `exited`, `dead`, `auto-restart`… */
      subState: string;
      /** Empty when the unit has no file (not found). */
      fragmentPath: string;
      /**
       * `enabled`, `enabled-runtime`, `linked`, `linked-runtime`, `alias`, `masked`, `masked-runtime`,
       * `static`, `indirect`, `disabled`, `generated`, `transient`, `bad`, or empty when not found.
       */
      unitFileState: string;
      canReload: boolean;
      /** A unit file or drop-in changed on disk since systemd loaded it. */
      needDaemonReload: boolean;
    };

/** Where systemd looks for unit files, in its order. */
export const UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

const PROPERTIES = ['Id', 'Names', 'LoadState', 'ActiveState', 'SubState', 'FragmentPath', 'UnitFileState', 'CanReload', 'NeedDaemonReload'];

/**
 * One unit's state from a single `systemctl show`. A unit that does not exist
 * (yet) is a unit with `loadState: 'not-found'`: systemctl answers for it too.
 *
 * @example
 * const u = await host.fact(systemdUnit('nginx'));
 * if (u.kind === 'unit' && u.activeState === 'active') console.log('running');
 */
export function systemdUnit(name: string): Fact<SystemdUnit> {
  // Its files (an alias is a link among them); its running state changes only through commands, which the ops that run them predict.
  const file = name.includes('.') ? name : `${name}.service`;
  const reads = UNIT_DIRS.flatMap((dir) => [`${dir}/${file}`, `${dir}/${file}.d/`]);
  return defineFact(`systemd.unit ${name}`, sh`systemctl show --property=${PROPERTIES.join(',')} ${name}`, parseSystemctlShow, { reads });
}

/**
 * Pure parser of `systemctl show` output (`Key=value` lines, in any order).
 *
 * @example
 * parseSystemctlShow({ stdout: 'Id=nginx.service\nLoadState=not-found\nActiveState=inactive\n…', stderr: '', exitCode: 0 })
 * // { kind: 'unit', id: 'nginx.service', loadState: 'not-found', activeState: 'inactive', … }
 */
export function parseSystemctlShow({ stdout, stderr, exitCode }: FactOutput): SystemdUnit {
  const props = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props.set(line.slice(0, eq), line.slice(eq + 1));
  }
  if (exitCode !== 0 || !props.has('LoadState')) {
    return { kind: 'unavailable', reason: stderr.trim() || `systemctl show exited with code ${exitCode}` };
  }
  const get = (key: string): string => props.get(key) ?? '';
  return {
    kind: 'unit',
    id: get('Id'),
    names: get('Names').split(' ').filter((n) => n !== ''),
    loadState: get('LoadState'),
    activeState: get('ActiveState'),
    subState: get('SubState'),
    fragmentPath: get('FragmentPath'),
    unitFileState: get('UnitFileState'),
    canReload: get('CanReload') === 'yes',
    needDaemonReload: get('NeedDaemonReload') === 'yes',
  };
}
