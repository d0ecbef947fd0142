import t from 'tap';
import { parseSshSession, parseSshdConfig, parseSshdT, sshSession, sshdConfig } from '../../../lib/facts/sshd.ts';
import { DEBIAN_SSHD_CONFIG, FRESH_SSHD_T, LAB_DROPIN, configOutput } from './sshd.captured.ts';

t.test('sshSession: captured SSH_CONNECTION, as root and through sudo', async (t) => {
  // Both captured on lab hosts; the second through `sudo -n sh -c`, which resets the environment.
  t.same(parseSshSession({ stdout: 'ssh 10.200.6.1 58538 10.200.6.11 22\n', stderr: '', exitCode: 0 }), {
    kind: 'ssh',
    clientAddress: '10.200.6.1',
    clientPort: 58538,
    serverAddress: '10.200.6.11',
    serverPort: 22,
  });
  t.match(parseSshSession({ stdout: 'ssh 10.200.6.1 58604 10.200.6.11 22\n', stderr: '', exitCode: 0 }), { serverPort: 22 });
  t.same(parseSshSession({ stdout: 'none\n', stderr: '', exitCode: 0 }), { kind: 'none' });
  t.same(parseSshSession({ stdout: 'ssh garbage\n', stderr: '', exitCode: 0 }), { kind: 'none' });
  t.equal(sshSession.key, 'sshd.session');
  t.match(sshSession.command.toString(), /SSH_CONNECTION/);
});

t.test('sshdConfig: a fresh Debian 12 host', async (t) => {
  const c = parseSshdConfig(configOutput({ rc: 0, text: FRESH_SSHD_T }, { '/etc/ssh/sshd_config': DEBIAN_SSHD_CONFIG, '/etc/ssh/sshd_config.d/tackle-lab.conf': LAB_DROPIN }));
  if (c.kind !== 'sshd' || c.effective.kind !== 'valid') throw new Error('expected a valid config');
  const v = c.effective.values;
  t.same(v.port, ['22']);
  t.same(v.permitrootlogin, ['without-password'], 'prohibit-password is printed by its old name');
  t.same(v.passwordauthentication, ['yes']);
  t.same(v.acceptenv, ['LANG', 'LC_*'], 'a keyword on several lines keeps every value');
  t.same(v.listenaddress, ['[::]:22', '0.0.0.0:22']);
  t.same(v.hostkey, ['/etc/ssh/ssh_host_ed25519_key']);
  t.equal(v.allowusers, undefined, 'unset list keywords are not printed');
  t.same(c.files.map((f) => f.path), ['/etc/ssh/sshd_config', '/etc/ssh/sshd_config.d/tackle-lab.conf']);
  t.equal(c.files[0]?.content, DEBIAN_SSHD_CONFIG);
  t.equal(sshdConfig.key, 'sshd.config');
});

t.test('sshdConfig: an invalid configuration and a host without sshd', async (t) => {
  // Captured: sshd -t/-T with a bad keyword in a drop-in.
  const error = '/etc/ssh/sshd_config.d/00-x.conf: line 9: Bad configuration option: Bogus\n/etc/ssh/sshd_config.d/00-x.conf: terminating, 1 bad configuration options';
  const c = parseSshdConfig(configOutput({ rc: 255, text: error }, { '/etc/ssh/sshd_config': DEBIAN_SSHD_CONFIG }));
  t.match(c, { kind: 'sshd', effective: { kind: 'invalid', error: /Bad configuration option: Bogus/ } });
  t.same(parseSshdConfig({ stdout: 'missing\n', stderr: '', exitCode: 0 }), { kind: 'missing' });
  t.throws(() => parseSshdConfig({ stdout: 'what\n', stderr: '', exitCode: 0 }), /unexpected output/);
  t.throws(() => parseSshdConfig({ stdout: '', stderr: 'sh: 1: base64: not found', exitCode: 127 }), /base64: not found/);
});

t.test('parseSshdT: accumulating keywords after two drop-ins (captured)', async (t) => {
  // 00-a.conf: AllowUsers root, Port 2222, AcceptEnv FOO; 01-b.conf: AllowUsers deploy, Port 2223, AcceptEnv BAR.
  const text = 'port 2222\nport 2223\npasswordauthentication no\nallowusers root\nallowusers deploy\nacceptenv FOO\nacceptenv BAR\nacceptenv LANG\nacceptenv LC_*\n';
  t.same(parseSshdT(text), {
    port: ['2222', '2223'],
    passwordauthentication: ['no'],
    allowusers: ['root', 'deploy'],
    acceptenv: ['FOO', 'BAR', 'LANG', 'LC_*'],
  });
});

t.test('sshd config files that changed size while read are an error, not a guess', async (t) => {
  const good = configOutput({ rc: 0, text: 'port 22' }, { '/etc/ssh/sshd_config': 'Port 22\n' });
  t.match(parseSshdConfig(good), { kind: 'sshd', files: [{ path: '/etc/ssh/sshd_config', content: 'Port 22\n' }] });
  const grown = { ...good, stdout: good.stdout.replace(/^effective 0 8/, 'effective 0 5') };
  t.throws(() => parseSshdConfig(grown), /gave 8 bytes for sizes adding up to 5: one changed while it was read/);
});
