import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** What decides how fail2ban can read logs on a host. */
export interface Fail2banHost {
  /** `fail2ban-client` is installed. */
  installed: boolean;
  /** /var/log/auth.log exists: something (rsyslog) writes sshd's log to a file. */
  authLog: boolean;
  /** systemd-journald runs (its socket directory exists). */
  journal: boolean;
}

const SCRIPT = `PATH=$PATH:/usr/sbin:/sbin
yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "installed $(yn command -v fail2ban-client)"
echo "authlog $(yn test -f /var/log/auth.log)"
echo "journal $(yn test -d /run/systemd/journal)"`;

/**
 * Whether fail2ban is installed and where sshd's log can be read: a Debian 12 host logs only to
 * the journal (no rsyslog, no /var/log/auth.log), so the sshd jail needs `backend = systemd`.
 *
 * @example
 * const f = await host.fact(fail2banHost);
 * if (!f.authLog) console.log('journald only: use backend = systemd');
 */
export const fail2banHost: Fact<Fail2banHost> = defineFact('fail2ban.host', sh`${raw(SCRIPT)}`, parseFail2banHost, {
  reads: ['/usr/bin/fail2ban-client', '/var/log/auth.log', '/run/systemd/journal'],
});

/**
 * Pure parser of the {@link fail2banHost} script (`key yes|no` lines).
 *
 * @example parseFail2banHost({ stdout: 'installed no\nauthlog no\njournal yes\n', stderr: '', exitCode: 0 }) // { installed: false, authLog: false, journal: true }
 */
export function parseFail2banHost({ stdout, stderr, exitCode }: FactOutput): Fail2banHost {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value) values.set(key, value);
  }
  const flag = (key: string): boolean => {
    const v = values.get(key);
    if (v !== 'yes' && v !== 'no') throw new Error(`no "${key}" in the output (exit ${exitCode}): ${JSON.stringify((stdout + stderr).slice(0, 200))}`);
    return v === 'yes';
  };
  return { installed: flag('installed'), authLog: flag('authlog'), journal: flag('journal') };
}
