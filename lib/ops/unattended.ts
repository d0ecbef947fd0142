import { combine, defineOperation, type CommonOptions, type Operation } from './operation.ts';
import { pathInfo } from '../facts/files.ts';
import { files } from './files.ts';
import { refuse } from './refuse.ts';

export interface UnattendedOptions extends CommonOptions {
  /** Refresh the lists and run unattended-upgrade daily. Default `true`. */
  enabled?: boolean;
  /**
   * Default `true`: only the security archive (Debian's `bookworm-security`, Ubuntu's
   * `noble-security`). `false` keeps the distribution's own choice (Debian: stable updates too).
   */
  securityOnly?: boolean;
  /** Reboot when an upgrade asks for it (/var/run/reboot-required). Default `false`. */
  automaticReboot?: boolean;
  /** When to reboot, `HH:MM` or `now`. Default `02:00`. */
  rebootTime?: string;
  /** Mail a report here (needs a working mailer on the host). */
  mailTo?: string;
  /** When to mail: default `on-change`. */
  mailReport?: 'always' | 'only-on-error' | 'on-change';
  /** Remove dependencies no longer needed after an upgrade. Default `false`. */
  removeUnusedDependencies?: boolean;
}

/** APT's daily switches, read by apt-daily(-upgrade).service. */
export const AUTO_UPGRADES_FILE = '/etc/apt/apt.conf.d/20auto-upgrades';
/** Our overrides; read after the package's 50unattended-upgrades, so they win. */
export const UNATTENDED_FILE = '/etc/apt/apt.conf.d/52tackle-unattended-upgrades';

// `apt-config -c FILE dump` parses FILE on top of the whole configuration and exits non-zero
// on a syntax error, in well under a second (`unattended-upgrade --dry-run` reads the package
// cache and takes many seconds). The temporary file lives in apt.conf.d under a dotted name,
// which apt skips.
const VALIDATE = 'apt-config -c %s dump >/dev/null';

function render(o: UnattendedOptions): { auto: string; overrides: string } {
  const where = 'unattended.upgrades';
  for (const key of ['enabled', 'securityOnly', 'automaticReboot', 'removeUnusedDependencies'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw refuse(where, `${key} must be true or false`);
  }
  const rebootTime = o.rebootTime ?? '02:00';
  if (!/^(?:now|(?:[01]\d|2[0-3]):[0-5]\d)$/.test(rebootTime)) throw refuse(where, `rebootTime must be HH:MM (24 h) or 'now', got ${JSON.stringify(rebootTime)}`);
  if (o.mailTo !== undefined && !/^[^\s"';{}]+$/.test(o.mailTo)) throw refuse(where, `mailTo must be one address or local user, got ${JSON.stringify(o.mailTo)}`);
  if (o.mailReport !== undefined && !['always', 'only-on-error', 'on-change'].includes(o.mailReport)) throw refuse(where, 'mailReport must be always, only-on-error or on-change');
  const on = o.enabled === false ? '0' : '1';
  const auto = ['// Managed by tackle (unattended.upgrades).', `APT::Periodic::Update-Package-Lists "${on}";`, `APT::Periodic::Unattended-Upgrade "${on}";`, ''].join('\n');
  const bool = (v: boolean | undefined) => (v ? '"true"' : '"false"');
  const lines = ['// Managed by tackle (unattended.upgrades); read after 50unattended-upgrades, so these values win.'];
  if (o.securityOnly !== false) {
    // apt adds list entries up across files: clear the package's lists before giving ours.
    lines.push(
      '#clear Unattended-Upgrade::Origins-Pattern;',
      '#clear Unattended-Upgrade::Allowed-Origins;',
      'Unattended-Upgrade::Origins-Pattern {',
      '  "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
      '  "origin=Ubuntu,archive=${distro_codename}-security";',
      '};',
    );
  }
  lines.push(`Unattended-Upgrade::Automatic-Reboot ${bool(o.automaticReboot)};`, `Unattended-Upgrade::Automatic-Reboot-Time "${rebootTime}";`);
  lines.push(`Unattended-Upgrade::Remove-Unused-Dependencies ${bool(o.removeUnusedDependencies)};`);
  if (o.mailTo !== undefined) lines.push(`Unattended-Upgrade::Mail "${o.mailTo}";`, `Unattended-Upgrade::MailReport "${o.mailReport ?? 'on-change'}";`);
  return { auto, overrides: [...lines, ''].join('\n') };
}

/**
 * Configures unattended-upgrades: `20auto-upgrades` (APT's daily list refresh and upgrade run)
 * and `52tackle-unattended-upgrades` (security-only origins, reboot policy, mail), each checked
 * with `apt-config` before it replaces the old one. The package `unattended-upgrades` is not
 * installed here (use apt.packages), and the apt-daily timers must be enabled (they are on a
 * normal install).
 *
 * @example
 * await host.run(unattended.upgrades({ securityOnly: true, automaticReboot: true, rebootTime: '03:30', mailTo: 'ops@example.com' }));
 */
function upgrades(options: UnattendedOptions = {}): Operation {
  const { auto, overrides } = render(options);
  const write = (path: string, content: string) => files.file({ path, content, mode: '0644', owner: 'root', group: 'root', validate: VALIDATE });
  const autoFile = write(AUTO_UPGRADES_FILE, auto);
  const overridesFile = write(UNATTENDED_FILE, overrides);
  return defineOperation({
    name: 'unattended.upgrades',
    // The two files its files.file parts write.
    facts: { auto: pathInfo(AUTO_UPGRADES_FILE), overrides: pathInfo(UNATTENDED_FILE) },
    options,
    plan: (_, part) => {
      const change = combine([part(autoFile), part(overridesFile)]);
      return change && { ...change, effects: { writes: [AUTO_UPGRADES_FILE, UNATTENDED_FILE] } };
    },
  });
}

/**
 * Unattended upgrades.
 *
 * @example
 * await host.run(unattended.upgrades({ automaticReboot: true }));
 */
export const unattended = { upgrades };
