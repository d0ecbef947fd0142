import t from 'tap';
import {
  parseAuthorizedKey,
  parseAuthorizedKeys,
  parsePasswordDigest,
  parseUser,
  passwordDigestFact,
  userFact,
} from '../../../lib/facts/users.ts';

// Outputs captured from the fact commands on Debian 12 (tklcap_u made with useradd -m -G tklcap_g,users).
const captured = {
  user: { stdout: 'tklcap_u:x:1001:1002::/home/tklcap_u:/bin/bash\ntklcap_u\ntklcap_u users tklcap_g\n', stderr: '', exitCode: 0 },
  nobody: { stdout: 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nnogroup\nnogroup\n', stderr: '', exitCode: 0 },
  noUser: { stdout: '', stderr: '', exitCode: 2 },
  digest: { stdout: 'de222616406bb407ec9c91c2c8f665a1fecc4960216b90b414c96c03f398297a  -\n', stderr: '', exitCode: 0 },
  keysNoUser: { stdout: 'no-user\n', stderr: '', exitCode: 0 },
  keysNoDir: { stdout: 'home /home/tklcap_u\ndir missing\n', stderr: '', exitCode: 0 },
  keysFile: {
    stdout:
      'home /home/tklcap_u\ndir directory|tklcap_u|700\nfile regular file|tklcap_u|644\ncontent\n' +
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b\n# note\n',
    stderr: '',
    exitCode: 0,
  },
  keysDirLink: { stdout: 'home /home/tklcap_u\ndir symbolic link|root|777\n', stderr: '', exitCode: 0 },
  keysFileLink: { stdout: 'home /home/tklcap_u\ndir directory|root|755\nfile symbolic link|root|777\n', stderr: '', exitCode: 0 },
};

t.test('user: an account, its primary group apart from its supplementary groups', async (t) => {
  t.same(parseUser('tklcap_u', captured.user), {
    kind: 'user',
    uid: 1001,
    gid: 1002,
    group: 'tklcap_u',
    groups: ['users', 'tklcap_g'],
    home: '/home/tklcap_u',
    shell: '/bin/bash',
  });
  t.same(parseUser('nobody', captured.nobody), { kind: 'user', uid: 65534, gid: 65534, group: 'nogroup', groups: [], home: '/nonexistent', shell: '/usr/sbin/nologin' });
  t.same(parseUser('tklcap_x', captured.noUser), { kind: 'missing' });
});

t.test('user: a group id without a name still parses (id exits 1)', async (t) => {
  const out = { stdout: 'svc:x:1005:4242::/srv:/bin/sh\n4242\n4242 users\n', stderr: 'id: cannot find name for group ID 4242\n', exitCode: 1 };
  t.match(parseUser('svc', out), { kind: 'user', gid: 4242, group: '4242', groups: ['users'] });
});

t.test('user: refuses output it does not understand', async (t) => {
  t.throws(() => parseUser('root', { stdout: '', stderr: '', exitCode: 1 }), /exited with code 1/);
  t.throws(() => parseUser('root', { stdout: 'garbage\n', stderr: '', exitCode: 0 }), /not a passwd entry/);
  // getent passwd 0 answers with root: never take it for an account named "0".
  t.throws(() => parseUser('x', { stdout: 'root:x:0:0:root:/root:/bin/bash\nroot\nroot\n', stderr: '', exitCode: 0 }), /entry of root/);
});

t.test('user: the cache key names the account', async (t) => {
  t.equal(userFact('deploy').key, 'users.user deploy');
  t.equal(passwordDigestFact('deploy').key, 'users.passwordDigest deploy');
  t.equal(userFact('deploy').command.toString(), 'getent passwd deploy || exit; id -gn deploy; id -Gn deploy');
});

t.test('password digest', async (t) => {
  t.same(parsePasswordDigest(captured.digest), { kind: 'hash', sha256: 'de222616406bb407ec9c91c2c8f665a1fecc4960216b90b414c96c03f398297a' });
  t.same(parsePasswordDigest(captured.noUser), { kind: 'missing' });
  t.throws(() => parsePasswordDigest({ stdout: 'root:$6$x:1:2\n', stderr: '', exitCode: 0 }));
});

t.test('authorized_keys: every state of home, ~/.ssh and the file', async (t) => {
  t.same(parseAuthorizedKeys(captured.keysNoUser), { kind: 'no-user' });
  t.same(parseAuthorizedKeys(captured.keysNoDir), { kind: 'user', home: '/home/tklcap_u', dir: { kind: 'missing' } });
  t.same(parseAuthorizedKeys(captured.keysFile), {
    kind: 'user',
    home: '/home/tklcap_u',
    dir: {
      kind: 'directory',
      owner: 'tklcap_u',
      mode: '700',
      file: {
        kind: 'file',
        owner: 'tklcap_u',
        mode: '644',
        content: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b\n# note\n',
      },
    },
  });
  t.same(parseAuthorizedKeys(captured.keysDirLink), { kind: 'user', home: '/home/tklcap_u', dir: { kind: 'other', type: 'symbolic link' } });
  t.same(parseAuthorizedKeys(captured.keysFileLink), {
    kind: 'user',
    home: '/home/tklcap_u',
    dir: { kind: 'directory', owner: 'root', mode: '755', file: { kind: 'other', type: 'symbolic link' } },
  });
  const empty = { stdout: 'home /h\ndir directory|u|700\nfile regular empty file|u|600\ncontent\n', stderr: '', exitCode: 0 };
  t.match(parseAuthorizedKeys(empty), { dir: { file: { kind: 'file', content: '' } } });
  t.throws(() => parseAuthorizedKeys({ stdout: 'home /h\n', stderr: '', exitCode: 0 }), /expected "dir /);
});

t.test('authorized key lines', async (t) => {
  const body = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
  t.same(parseAuthorizedKey(`ssh-ed25519 ${body} a@b c`), { options: '', type: 'ssh-ed25519', body, comment: 'a@b c' });
  t.same(parseAuthorizedKey(`  ssh-ed25519 ${body}\r`), { options: '', type: 'ssh-ed25519', body, comment: '' });
  t.same(parseAuthorizedKey(`command="echo \\"a b\\"",no-pty ssh-ed25519 ${body} x`), {
    options: 'command="echo \\"a b\\"",no-pty',
    type: 'ssh-ed25519',
    body,
    comment: 'x',
  });
  t.same(parseAuthorizedKey(`sk-ssh-ed25519@openssh.com ${body}`), { options: '', type: 'sk-ssh-ed25519@openssh.com', body, comment: '' });
  for (const line of ['', '# ssh-ed25519 ' + body, 'ssh-ed25519', `ssh-ed25519 not*base64`, 'no-pty', `from="x ssh-ed25519 ${body}`]) {
    t.equal(parseAuthorizedKey(line), undefined, JSON.stringify(line));
  }
});
