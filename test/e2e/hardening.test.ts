// Host hardening end to end on a fresh lab host, through the CLI as a person would run it:
// a deploy user with a key and a sudoers drop-in, sshd without passwords or root, fail2ban's
// sshd jail on a journald-only host, unattended upgrades, and a ufw firewall. Every assertion
// reads the host itself (lab.ssh, a password login with ssh2, curl from this machine).
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { OPS_PASSWORD, withLab } from '../../lab/lab.ts';
import { poll, run } from '../../lab/exec.ts';
import { changedSteps, labInventory, runTaskCli, plannedSteps } from './support/cli.ts';
import { passwordLogin as tryPasswordLogin } from './support/ssh.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const lab = await withLab(t, 1);
const host = lab.host('lab1');
const pubKey = (await readFile(`${lab.privateKeyPath}.pub`, 'utf8')).trim();
const dir = await mkdtemp(join(tmpdir(), 'tackle-harden-'));
const DROPIN = '/etc/ssh/sshd_config.d/00-tackle.conf';
const ROOT_PASSWORD = 'root-password-1';

// The task under test, as a file a person would write (the ops are not exported from lib/index.ts yet).
const lib = (path: string) => JSON.stringify(join(ROOT, path));
const taskFile = join(dir, 'harden.mts');
await writeFile(
  taskFile,
  `import { apt, defineTask, isMain, runCli, users, v } from ${lib('lib/index.ts')};
import { sshd } from ${lib('lib/ops/sshd.ts')};
import { sudoer } from ${lib('lib/ops/sudoers.ts')};
import { fail2ban } from ${lib('lib/ops/fail2ban.ts')};
import { ufw } from ${lib('lib/ops/ufw.ts')};
import { unattended } from ${lib('lib/ops/unattended.ts')};
const task = defineTask({
  name: 'harden',
  vars: { keys: v.array(v.string()), controller: v.string() },
  async run(host) {
    const { keys, controller } = host.vars;
    await host.run(apt.packages({ names: ['ufw', 'fail2ban', 'python3-systemd', 'unattended-upgrades'] }));
    const deploy = { name: 'deploy', shell: '/bin/bash', home: '/home/deploy' };
    await host.run(users.user(deploy));
    await host.run(users.authorizedKeys({ user: deploy, keys }));
    await host.run(sudoer({ name: 'deploy', rules: ['deploy ALL=(ALL) NOPASSWD:ALL'] }));
    await host.run(sshd.config({ settings: { permitRootLogin: false, passwordAuthentication: false, kbdInteractiveAuthentication: false, maxAuthTries: 3, x11Forwarding: false, allowUsers: ['admin', 'deploy'] } }));
    // The controller is never banned: the tests below fail logins on purpose.
    await host.run(fail2ban.jail({ name: 'sshd', maxretry: 5, bantime: '1h', ignoreip: ['127.0.0.1/8', '::1', controller], notify: 'reload fail2ban' }));
    await host.run(unattended.upgrades({ automaticReboot: true, rebootTime: '03:30' }));
    await host.run(ufw.defaults({ incoming: 'deny', outgoing: 'allow', routed: 'deny' }));
    await host.run(ufw.rules({ purge: true, rules: [
      // The controller first, so that ufw's rate limit never slows the tests down.
      { action: 'allow', port: 22, proto: 'tcp', from: controller, comment: 'controller' },
      { action: 'limit', port: 22, proto: 'tcp', comment: 'ssh' },
      { action: 'allow', port: 80, proto: 'tcp', comment: 'web' },
    ] }));
    await host.run(ufw.enabled({ enabled: true }));
  },
  handlers: { 'reload fail2ban': async (host) => { await host.run(fail2ban.reload({ jails: ['sshd'] })); } },
});
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
);

// Bootstrap as admin (NOPASSWD sudo in the lab): root logins are what the task switches off.
const vars = { keys: [pubKey], controller: lab.bridgeAddress };
const inventory = await labInventory(lab, { lab1: { user: 'admin', become: true, vars } });
const asAdmin = (command: string) => lab.ssh('lab1', `sudo -n sh -c '${command.replace(/'/g, `'\\''`)}'`, { user: 'admin' });

const passwordLogin = (user: string, password: string) => tryPasswordLogin(host.address, user, password);

t.test('before: passwords work on a fresh lab host (so the checks below can tell)', async (t) => {
  await lab.ssh('lab1', `echo 'root:${ROOT_PASSWORD}' | chpasswd`);
  t.equal(await passwordLogin('ops', OPS_PASSWORD), 'ok', 'ops logs in with its password');
});

t.test('dry-run predicts the real run; the real run hardens the host; a second run changes nothing', async (t) => {
  const dry = await runTaskCli(taskFile, ['--inventory', inventory, '--dry-run']);
  t.equal(dry.code, 0, 'dry-run', { stdout: dry.stdout.slice(-3000), stderr: dry.stderr });
  t.equal((await lab.ssh('lab1', `test -e ${DROPIN} || command -v ufw || id deploy; echo $?`)).stdout, '1\n', 'the dry run changed nothing');

  const real = await runTaskCli(taskFile, ['--inventory', inventory]);
  t.equal(real.code, 0, 'real run', { stdout: real.stdout.slice(-4000), stderr: real.stderr });
  t.same(plannedSteps(real.report), plannedSteps(dry.report), 'the dry run listed exactly the steps the real run changed');
  t.same(changedSteps(real.report).lab1, [
    'apt.packages ufw, fail2ban, python3-systemd, unattended-upgrades',
    'users.user deploy',
    'users.authorizedKeys deploy',
    'users.sudoer deploy',
    `sshd.config ${DROPIN}`,
    'fail2ban.jail sshd',
    'unattended.upgrades',
    'ufw.rules (exactly)',
    'ufw.enabled',
    'reload fail2ban › fail2ban.reload',
  ]);

  const again = await runTaskCli(taskFile, ['--inventory', inventory]);
  t.equal(again.code, 0);
  t.same(changedSteps(again.report), { lab1: [] }, 'second run: nothing changed');
});

t.test('SSH: no passwords, no root; the deploy user logs in with its key and sudo -n works', async (t) => {
  for (const [user, password] of [
    ['ops', OPS_PASSWORD],
    ['root', ROOT_PASSWORD],
  ] as const) {
    t.match(await passwordLogin(user, password), /All configured authentication methods failed/, `${user}: password login refused`);
  }
  t.equal((await lab.ssh('lab1', 'true')).code, 255, 'root: key login refused (PermitRootLogin no)');
  const deploy = await lab.ssh('lab1', 'id -un && sudo -n true && echo sudo-ok', { user: 'deploy' });
  t.equal(deploy.stdout, 'deploy\nsudo-ok\n', 'deploy: key login, and sudo -n through the drop-in');
  const effective = await asAdmin('sshd -T | grep -E "^(passwordauthentication|permitrootlogin|kbdinteractiveauthentication|maxauthtries|allowusers) "');
  t.equal(effective.stdout, 'maxauthtries 3\npermitrootlogin no\npasswordauthentication no\nkbdinteractiveauthentication no\nallowusers admin\nallowusers deploy\n');
  t.equal((await asAdmin('stat -c "%a %U" /etc/sudoers.d/deploy && ls -A /etc/ssh/sshd_config.d')).stdout, '440 root\n00-tackle.conf\ntackle-lab.conf\n', 'no backup or temp file left');
  t.equal((await asAdmin('systemctl list-units --all --no-legend "tackle-sshd-rollback*" | wc -l')).stdout.trim(), '0', 'the rollback timer was cancelled');
});

t.test('fail2ban: running, the sshd jail answers (journal backend)', async (t) => {
  t.equal((await asAdmin('systemctl is-active fail2ban')).stdout, 'active\n');
  const status = await asAdmin('fail2ban-client status sshd');
  t.match(status.stdout, /Status for the jail: sshd[\s\S]*Journal matches:\s+_SYSTEMD_UNIT=ssh\.service \+ _SYSTEMD_UNIT=sshd\.service \+ _COMM=sshd \+ _COMM=sshd-session\n/);
  t.match((await asAdmin('fail2ban-client get sshd ignoreip')).stdout, new RegExp(lab.bridgeAddress.replace(/\./g, '\\.')));
});

t.test('unattended-upgrades: security origins only', async (t) => {
  const dump = await asAdmin('apt-config dump | grep -E "^(APT::Periodic::(Update-Package-Lists|Unattended-Upgrade)|Unattended-Upgrade::(Origins-Pattern|Allowed-Origins|Automatic-Reboot))"');
  t.equal(
    dump.stdout,
    [
      'APT::Periodic::Update-Package-Lists "1";',
      'APT::Periodic::Unattended-Upgrade "1";',
      'Unattended-Upgrade::Origins-Pattern "";',
      'Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
      'Unattended-Upgrade::Origins-Pattern:: "origin=Ubuntu,archive=${distro_codename}-security";',
      'Unattended-Upgrade::Automatic-Reboot "true";',
      'Unattended-Upgrade::Automatic-Reboot-Time "03:30";',
      '',
    ].join('\n'),
  );
});

t.test('ufw: exactly the rules, default deny; a port that is not allowed does not answer, 22 does', async (t) => {
  const status = await asAdmin('ufw status verbose');
  t.match(status.stdout, /^Status: active\n/);
  t.match(status.stdout, /Default: deny \(incoming\), allow \(outgoing\)/);
  const rules = status.stdout.split('\n').filter((l) => /^\d|^22|^80/.test(l)).map((l) => l.replace(/\s+/g, ' ').trim());
  t.same(rules, [
    `22/tcp ALLOW IN ${lab.bridgeAddress} # controller`,
    '22/tcp LIMIT IN Anywhere # ssh',
    '80/tcp ALLOW IN Anywhere # web',
    '22/tcp (v6) LIMIT IN Anywhere (v6) # ssh',
    '80/tcp (v6) ALLOW IN Anywhere (v6) # web',
  ]);
  await asAdmin('systemd-run --unit=tackle-probe-9000 --working-directory=/tmp python3 -m http.server 9000');
  t.teardown(() => asAdmin('systemctl stop tackle-probe-9000').then(() => {}));
  await poll(async () => ((await asAdmin('curl -s -o /dev/null -w %{http_code} http://127.0.0.1:9000/')).stdout === '200' ? true : undefined), {
    timeoutMs: 15_000,
    onTimeout: () => new Error('the probe server on port 9000 never answered on the host itself'),
  });
  const blocked = await run('curl', ['-s', '-o', '/dev/null', '--connect-timeout', '3', `http://${host.address}:9000/`]);
  t.equal(blocked.code, 28, 'port 9000 answers on the host but times out from the controller (dropped)');
  t.equal((await lab.ssh('lab1', 'echo up', { user: 'deploy' })).stdout, 'up\n', 'port 22 still answers');
});

/** Runs a one-step task with these sshd settings, connected as deploy with sudo (the real setup now). */
async function sshdTask(name: string, settings: string): Promise<Awaited<ReturnType<typeof runTaskCli>>> {
  const file = join(dir, `${name}.mts`);
  await writeFile(
    file,
    `import { defineTask, isMain, runCli } from ${lib('lib/index.ts')};
import { sshd } from ${lib('lib/ops/sshd.ts')};
const task = defineTask({ name: ${JSON.stringify(name)}, async run(host) { await host.run(sshd.config({ settings: ${settings} })); } });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  const asDeploy = await labInventory(lab, { lab1: { user: 'deploy', become: true } });
  return runTaskCli(file, ['--inventory', asDeploy]);
}

const HARDENED = `{ permitRootLogin: false, passwordAuthentication: false, kbdInteractiveAuthentication: false, maxAuthTries: 3, x11Forwarding: false`;

t.test('an sshd setting that fails sshd -t is rejected: old file in place, SSH keeps working', async (t) => {
  const before = (await asAdmin(`sha256sum ${DROPIN}`)).stdout;
  const bad = await sshdTask('bad-cipher', `${HARDENED}, allowUsers: ['admin', 'deploy'], ciphers: ['no-such-cipher'] }`);
  t.equal(bad.code, 2);
  const step = bad.report?.hosts[0]?.steps[0];
  t.match(step, { name: `sshd.config ${DROPIN}`, status: 'failed', error: { phase: 'command', host: 'lab1' } });
  t.match(step?.error?.stderrTail, /sshd -t rejected the new \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf; the previous version is back in place:\n.*Bad SSH2 cipher spec 'no-such-cipher'/);
  t.equal((await asAdmin(`sha256sum ${DROPIN}`)).stdout, before, 'the old drop-in is untouched');
  t.equal((await lab.ssh('lab1', 'echo still-in', { user: 'deploy' })).stdout, 'still-in\n');
});

t.test('a setting that locks the deploy user out is rolled back by the fresh-login check', async (t) => {
  const before = (await asAdmin(`sha256sum ${DROPIN}`)).stdout;
  const locked = await sshdTask('lockout', `${HARDENED}, allowUsers: ['nobody'] }`);
  t.equal(locked.code, 2, 'the step failed', { stdout: locked.stdout.slice(-2000) });
  const step = locked.report?.hosts[0]?.steps[0];
  t.equal(step?.status, 'failed');
  t.match(step?.error?.reason, /^a fresh SSH login failed after writing \/etc\/ssh\/sshd_config\.d\/00-tackle\.conf: authentication as deploy failed.*; the previous config is restored and ssh reloaded; a fresh login works again$/);
  t.equal((await asAdmin(`sha256sum ${DROPIN}`)).stdout, before, 'the previous drop-in is back');
  t.match((await asAdmin('sshd -T | grep ^allowusers')).stdout, /^allowusers admin\nallowusers deploy\n$/, 'and in effect');
  t.equal((await lab.ssh('lab1', 'echo still-in', { user: 'deploy' })).stdout, 'still-in\n', 'deploy logs in');
  t.equal((await asAdmin('ls -A /etc/ssh/sshd_config.d; systemctl list-units --all --no-legend "tackle-sshd-rollback*" | wc -l')).stdout, '00-tackle.conf\ntackle-lab.conf\n0\n');
});
