import t from 'tap';
import type { PathInfo } from '../../../lib/facts/files.ts';
import { AUTO_UPGRADES_FILE, UNATTENDED_FILE, unattended } from '../../../lib/ops/unattended.ts';
import { fileInfo } from '../../support/plan.ts';

const missing: PathInfo = { kind: 'missing' };
// What the unattended-upgrades package itself writes (Debian 12) before the operation runs.
const PACKAGE_AUTO = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n';

t.test('security only by default; reboot policy; both files checked with apt-config', async (t) => {
  const op = unattended.upgrades({ automaticReboot: true, rebootTime: '03:30' });
  t.equal(op.name, 'unattended.upgrades');
  const change = op.plan({ auto: fileInfo(PACKAGE_AUTO), overrides: missing });
  t.equal(change?.actions.length, 2);
  t.equal(change?.actions[0]?.stdin, '// Managed by tackle (unattended.upgrades).\nAPT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n');
  t.equal(
    change?.actions[1]?.stdin,
    [
      '// Managed by tackle (unattended.upgrades); read after 50unattended-upgrades, so these values win.',
      '#clear Unattended-Upgrade::Origins-Pattern;',
      '#clear Unattended-Upgrade::Allowed-Origins;',
      'Unattended-Upgrade::Origins-Pattern {',
      '  "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
      '  "origin=Ubuntu,archive=${distro_codename}-security";',
      '};',
      'Unattended-Upgrade::Automatic-Reboot "true";',
      'Unattended-Upgrade::Automatic-Reboot-Time "03:30";',
      'Unattended-Upgrade::Remove-Unused-Dependencies "false";',
      '',
    ].join('\n'),
  );
  for (const a of change?.actions ?? []) t.match(a.command.toString(), /\( apt-config -c "\$\{tackle_tmp\}" dump >\/dev\/null\n\)/, 'validated before the rename');
  t.match(change?.summary, new RegExp(`update ${AUTO_UPGRADES_FILE}.*; create ${UNATTENDED_FILE}`));
  const converged = { auto: fileInfo(String(change?.actions[0]?.stdin)), overrides: fileInfo(String(change?.actions[1]?.stdin)) };
  t.equal(op.plan(converged), undefined);
});

t.test('disabled, distribution origins, mail', async (t) => {
  const change = unattended.upgrades({ enabled: false, securityOnly: false, mailTo: 'ops@example.com', removeUnusedDependencies: true }).plan({ auto: missing, overrides: missing });
  t.match(change?.actions[0]?.stdin, /Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";/);
  const overrides = String(change?.actions[1]?.stdin);
  t.notMatch(overrides, /Origins/, "the distribution's own origins stay");
  t.match(overrides, /Remove-Unused-Dependencies "true";\nUnattended-Upgrade::Mail "ops@example\.com";\nUnattended-Upgrade::MailReport "on-change";\n$/);
});

t.test('argument errors', async (t) => {
  t.throws(() => unattended.upgrades({ rebootTime: '2am' }), /HH:MM/);
  t.throws(() => unattended.upgrades({ rebootTime: '24:00' }), /HH:MM/);
  t.throws(() => unattended.upgrades({ mailTo: 'a"; evil "' }), /mailTo/);
  t.throws(() => unattended.upgrades({ automaticReboot: 'yes' as never }), /true or false/);
  t.throws(() => unattended.upgrades({ mailReport: 'daily' as never }), /mailReport/);
});
