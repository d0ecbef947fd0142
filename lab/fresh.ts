// A lab host as it comes from the provider. The lab image is tuned for scripted use: debconf never
// asks, apt's timers are off and dpkg keeps old config files without asking. A real VPS has none of
// that, and on its first boot it refreshes its package lists and runs an unattended upgrade while
// the first provisioning run wants the same dpkg lock. `makeFresh` undoes the tuning in one host's
// overlay before it boots, so the image stays shared and nothing is built twice.
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** The unit that plays the provider's first boot; a test reads its state and journal. */
export const FIRST_BOOT_UNIT = 'tackle-first-boot.service';

const FILES: Record<string, string> = {
  // What unattended-upgrades' debconf answer writes on Debian cloud images: daily lists and upgrade.
  'etc/apt/apt.conf.d/20auto-upgrades': 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
  // Read after the image's 90tackle-lab: dpkg asks again about changed config files, as it does by default.
  'etc/apt/apt.conf.d/95tackle-fresh': '// tackle lab, fresh variant: Debian\'s default dpkg options.\n#clear Dpkg::Options;\n',
  // cloud-init installs packages on the first boot (with a noninteractive debconf, as it does), then
  // apt's daily jobs run; all of it holds the apt and dpkg locks while the first ssh login arrives.
  [`etc/systemd/system/${FIRST_BOOT_UNIT}`]: [
    '[Unit]',
    'Description=First boot as on a provider image: package refresh, unattended-upgrades, apt daily jobs',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    'Environment=DEBIAN_FRONTEND=noninteractive',
    // '-': a failed step (another apt took the lock) must not stop the daily jobs that follow.
    // '-': a step that loses the lock to a login's apt must not stop apt's daily jobs after it.
    'ExecStart=-/usr/bin/apt-get -q update',
    'ExecStart=-/usr/bin/apt-get -q -y install unattended-upgrades',
    'ExecStart=/bin/systemctl start apt-daily.service apt-daily-upgrade.service',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n'),
};

const LINKS: Record<string, string> = {
  'etc/systemd/system/timers.target.wants/apt-daily.timer': '/lib/systemd/system/apt-daily.timer',
  'etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer': '/lib/systemd/system/apt-daily-upgrade.timer',
  [`etc/systemd/system/multi-user.target.wants/${FIRST_BOOT_UNIT}`]: `/etc/systemd/system/${FIRST_BOOT_UNIT}`,
};

/**
 * Turns the mounted, not yet booted root of a lab host into a fresh provider host: apt's timers
 * enabled and its daily jobs started at boot, debconf's default (asking) frontend, no dpkg options.
 * Writes go to the host's overlay upper layer; the shared image is untouched.
 *
 * @example await makeFresh('/tmp/tackle-lab-3-x/lab1/root');
 */
export async function makeFresh(root: string): Promise<void> {
  for (const [path, content] of Object.entries(FILES)) await writeFile(join(root, path), content);
  for (const [path, target] of Object.entries(LINKS)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await symlink(target, join(root, path));
  }
  // The image answered debconf's own question with Noninteractive; Debian's default is Dialog.
  const config = join(root, 'var/cache/debconf/config.dat');
  const text = await readFile(config, 'utf8');
  const reset = text.replace(/(Name: debconf\/frontend\n(?:.+\n)*?Value: )Noninteractive\n/, '$1Dialog\n');
  if (reset === text) throw new Error(`${config}: no debconf/frontend answer to reset`);
  await writeFile(config, reset);
}
