import { createHash } from 'node:crypto';
import t from 'tap';
import { Command, secret, sh as shell } from '../../../lib/command/command.ts';
import { TEMP, digestOf as contentDigest, receiveWhole, replaceScript } from '../../../lib/connection/replace.ts';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import type { AuthorizedKeysInfo, UserInfo } from '../../../lib/facts/users.ts';
import { users } from '../../../lib/ops/users.ts';
import { TackleError } from '../../../lib/errors.ts';

const commands = (change: Change | undefined): string[] | undefined => change?.actions.map((a) => a.command.toString());
const plan = (op: Operation, facts: Record<string, unknown>): Change | undefined => op.plan(facts);

const deploy: UserInfo = { kind: 'user', uid: 1001, gid: 1001, group: 'deploy', groups: ['sudo'], home: '/home/deploy', shell: '/bin/bash' };
const HASH = '$6$tkltestsalt$SECRETHASHVALUEdoNotPrint';
const digestOf = (hash: string): string => createHash('sha256').update(hash).digest('hex');

t.test('users.user plans from facts', async (t) => {
  const cases: { name: string; op: Operation; facts: Record<string, unknown>; expect: string[] | undefined; summary?: string }[] = [
    {
      name: 'creates a missing account with only the flags given',
      op: users.user({ name: 'deploy' }),
      facts: { user: { kind: 'missing' } },
      expect: ['useradd -m deploy'],
      summary: 'create user deploy',
    },
    {
      name: 'creates with every option',
      op: users.user({ name: 'svc', uid: 990, group: 'svc', groups: ['adm', 'www-data'], shell: '/usr/sbin/nologin', home: '/srv/svc', system: true, createHome: false }),
      facts: { user: { kind: 'missing' } },
      expect: ['useradd -u 990 -g svc -G adm,www-data -s /usr/sbin/nologin -d /srv/svc -r -M svc'],
    },
    { name: 'no change when as desired', op: users.user({ name: 'deploy', groups: ['sudo'], shell: '/bin/bash', uid: 1001, group: 'deploy', home: '/home/deploy' }), facts: { user: deploy }, expect: undefined },
    { name: 'primary group by number', op: users.user({ name: 'deploy', group: '1001' }), facts: { user: deploy }, expect: undefined },
    { name: 'primary group listed in groups is not a change', op: users.user({ name: 'deploy', groups: ['deploy', 'sudo'], append: false }), facts: { user: deploy }, expect: undefined },
    {
      name: 'append adds only the missing groups',
      op: users.user({ name: 'deploy', groups: ['sudo', 'docker'] }),
      facts: { user: deploy },
      expect: ['usermod -a -G docker deploy'],
      summary: 'update user deploy: add to docker',
    },
    {
      name: 'append: false sets exactly these groups',
      op: users.user({ name: 'deploy', groups: ['docker'], append: false }),
      facts: { user: deploy },
      expect: ['usermod -G docker deploy'],
      summary: 'update user deploy: groups sudo → docker',
    },
    { name: 'append: false with no groups empties the list', op: users.user({ name: 'deploy', groups: [], append: false }), facts: { user: deploy }, expect: ["usermod -G '' deploy"] },
    {
      name: 'changes shell, uid, group and home in one usermod',
      op: users.user({ name: 'deploy', shell: '/bin/zsh', uid: 2000, group: 'staff', home: '/srv/deploy' }),
      facts: { user: deploy },
      expect: ['usermod -u 2000 -g staff -s /bin/zsh -d /srv/deploy deploy'],
      summary: 'update user deploy: uid 1001 → 2000, group deploy → staff, shell /bin/bash → /bin/zsh, home /home/deploy → /srv/deploy',
    },
    { name: 'absent: nothing to remove', op: users.user({ name: 'deploy', present: false }), facts: { user: { kind: 'missing' } }, expect: undefined },
    { name: 'absent: userdel', op: users.user({ name: 'deploy', present: false }), facts: { user: deploy }, expect: ['userdel deploy'] },
    {
      name: 'absent with removeHome',
      op: users.user({ name: 'deploy', present: false, removeHome: true }),
      facts: { user: deploy },
      expect: ['userdel -r deploy'],
      summary: 'remove user deploy and its home',
    },
  ];
  for (const c of cases) {
    const change = plan(c.op, c.facts);
    t.same(commands(change), c.expect, c.name);
    if (c.summary) t.equal(change?.summary, c.summary, `${c.name}: summary`);
  }
});

t.test('users.user password: set through chpasswd stdin, compared by digest, never printed', async (t) => {
  const op = users.user({ name: 'deploy', password: secret(HASH) });
  t.equal(op.name, 'users.user deploy');
  t.same(Object.keys(op.facts), ['user', 'password']);
  t.equal(plan(op, { user: deploy, password: { kind: 'hash', sha256: digestOf(HASH) } }), undefined, 'same digest: no change');

  const change = plan(op, { user: deploy, password: { kind: 'hash', sha256: digestOf('$6$other$x') } });
  t.same(commands(change), ['chpasswd -e']);
  t.equal(change?.summary, 'update user deploy: set password');
  const stdin = change?.actions[0]?.stdin;
  t.equal(String(stdin), '***', 'stdin is a secret');
  t.equal((stdin as { reveal(): string }).reveal(), `deploy:${HASH}\n`);
  t.notMatch(JSON.stringify(change), 'SECRETHASHVALUE');

  const created = plan(op, { user: { kind: 'missing' }, password: { kind: 'missing' } });
  t.same(commands(created), ['useradd -m deploy', 'chpasswd -e']);
  t.notMatch(JSON.stringify(created), 'SECRETHASHVALUE');
  t.same(Object.keys(users.user({ name: 'deploy' }).facts), ['user'], 'no shadow read without a password');
});

t.test('users.user rejects misuse at once, without echoing a password', async (t) => {
  t.throws(() => users.user({ name: 'bad name' }), TackleError);
  t.throws(() => users.user({ name: '0day' }), TackleError);
  t.throws(() => users.user({ name: 'deploy', groups: ['a;b'] }), TackleError);
  t.throws(() => users.user({ name: 'deploy', uid: -1 }), TackleError);
  t.throws(() => users.user({ name: 'deploy', password: 'plain' as never }), /must be a secret/);
  try {
    users.user({ name: 'deploy', password: secret('hunter2-plain') });
    t.fail('should throw');
  } catch (err) {
    t.match((err as Error).message, /crypt\(3\) hash/);
    t.notMatch((err as Error).message, 'hunter2');
  }
  t.throws(() => users.user({ name: 'deploy', password: secret('$6$a$b:c') }), TackleError);
  t.doesNotThrow(() => users.user({ name: 'deploy', password: secret('!') }), 'a locked password is a hash');
});

// authorizedKeys planning -------------------------------------------------------------------

const K1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl one@a';
const K2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBdoCDgXyOd4YlIyHyr9Fm2I0J1uPu8gfDQhmb6Vy7jb two@b';
const K3 = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPcV three@c';
const fileFacts = (content: string, mode = '600', owner = 'deploy'): AuthorizedKeysInfo => ({
  kind: 'user',
  home: '/home/deploy',
  dir: { kind: 'directory', owner: 'deploy', mode: '700', file: { kind: 'file', owner, mode, content } },
});
/** The atomic write as the user: a temporary file checked for exactly `content`, then renamed over the file. */
const WRITE = (content: string) =>
  shell`runuser -u deploy -- sh -c ${Command.join([shell`set -e`, replaceScript('/home/deploy/.ssh/authorized_keys', [receiveWhole(TEMP, contentDigest(content))])], '\n').asArgument()}`.toString();
const written = (change: Change | undefined): unknown => change?.actions.at(-1)?.stdin;

t.test('users.authorizedKeys plans from facts', async (t) => {
  const add = users.authorizedKeys({ user: 'deploy', keys: [K1, K2] });
  t.equal(add.name, 'users.authorizedKeys deploy');

  const fresh = plan(add, { keys: { kind: 'user', home: '/home/deploy', dir: { kind: 'missing' } } });
  t.same(commands(fresh), ['mkdir -m 700 /home/deploy/.ssh && chown -h deploy: /home/deploy/.ssh', WRITE(`${K1}\n${K2}\n`)]);
  t.equal(written(fresh), `${K1}\n${K2}\n`);
  t.equal(fresh?.summary, '/home/deploy/.ssh/authorized_keys: add 2 keys');
  t.match(fresh?.diff, `+${K2}`);

  t.equal(plan(add, { keys: fileFacts(`${K2}\n${K1}\n`) }), undefined, 'present in any order: no change');
  t.equal(plan(add, { keys: fileFacts(`${K1.replace('one@a', 'renamed')}\n${K2}`) }), undefined, 'another comment, no final newline: no change');

  const keepOthers = plan(add, { keys: fileFacts(`# mine\n${K3}\n${K1}\n`) });
  t.same(commands(keepOthers), [WRITE(`# mine\n${K3}\n${K1}\n${K2}\n`)]);
  t.equal(written(keepOthers), `# mine\n${K3}\n${K1}\n${K2}\n`, 'appends, keeps other lines');

  const restricted = `from="10.0.0.0/8",no-pty ${K1}`;
  const options = plan(users.authorizedKeys({ user: 'deploy', keys: [restricted] }), { keys: fileFacts(`${K3}\n${K1}\n${K1}\n`) });
  t.equal(written(options), `${K3}\n${restricted}\n`, 'options rewritten in place, duplicate dropped');
  t.equal(options?.summary, '/home/deploy/.ssh/authorized_keys: update options of 1 key, remove 1 key');

  const exclusive = users.authorizedKeys({ user: 'deploy', keys: [K1, K2], exclusive: true });
  t.equal(written(plan(exclusive, { keys: fileFacts(`# mine\n${K3}\n${K2}\n`) })), `${K2}\n${K1}\n`);
  t.equal(plan(exclusive, { keys: fileFacts(`${K2}\n${K1}\n`) }), undefined);

  const absent = users.authorizedKeys({ user: 'deploy', keys: [K1], state: 'absent' });
  t.equal(written(plan(absent, { keys: fileFacts(`${K3}\n${K1.replace('one@a', 'x')}\n`) })), `${K3}\n`);
  t.equal(plan(absent, { keys: fileFacts(`${K3}\n`) }), undefined);
  t.equal(plan(absent, { keys: { kind: 'user', home: '/home/deploy', dir: { kind: 'missing' } } }), undefined);
  t.equal(plan(absent, { keys: { kind: 'no-user' } }), undefined);
});

t.test('users.authorizedKeys fixes owner and modes', async (t) => {
  const op = users.authorizedKeys({ user: 'deploy', keys: [K1] });
  const mode = plan(op, { keys: fileFacts(`${K1}\n`, '644') });
  t.same(commands(mode), [WRITE(`${K1}\n`)], 'rewritten as the user: owner and mode 600 in one atomic step');
  t.equal(mode?.summary, '/home/deploy/.ssh/authorized_keys: fix owner and mode');
  t.equal(mode?.diff, undefined);
  t.same(commands(plan(op, { keys: fileFacts(`${K1}\n`, '600', 'root') })), [WRITE(`${K1}\n`)]);

  const dir = plan(op, {
    keys: { kind: 'user', home: '/home/deploy', dir: { kind: 'directory', owner: 'root', mode: '755', file: { kind: 'file', owner: 'deploy', mode: '600', content: `${K1}\n` } } },
  });
  t.same(commands(dir), ['chown -h deploy: /home/deploy/.ssh', "runuser -u deploy -- sh -c 'set -e\nchmod 700 /home/deploy/.ssh'"]);
  t.equal(dir?.actions[1]?.stdin, undefined);
});

t.test('users.authorizedKeys for an account only planned so far', async (t) => {
  const withHome = plan(users.authorizedKeys({ user: { name: 'deploy', home: '/srv/deploy' }, keys: [K1] }), { keys: { kind: 'no-user' } });
  t.same(commands(withHome)?.[0], 'id -u deploy >/dev/null && mkdir -m 700 /srv/deploy/.ssh && chown -h deploy: /srv/deploy/.ssh');
  t.equal(withHome?.summary, '/srv/deploy/.ssh/authorized_keys: add 1 key');
  const plain = plan(users.authorizedKeys({ user: 'deploy', keys: [K1] }), { keys: { kind: 'no-user' } });
  t.match(commands(plain)?.[1], '/home/deploy/.ssh/authorized_keys');
});

t.test('users.authorizedKeys refuses symlinks and bad keys', async (t) => {
  const op = users.authorizedKeys({ user: 'deploy', keys: [K1] });
  t.throws(() => plan(op, { keys: { kind: 'user', home: '/home/deploy', dir: { kind: 'other', type: 'symbolic link' } } }), { phase: 'operation', message: /\.ssh is a symbolic link/ });
  t.throws(
    () => plan(op, { keys: { kind: 'user', home: '/home/deploy', dir: { kind: 'directory', owner: 'deploy', mode: '700', file: { kind: 'other', type: 'symbolic link' } } } }),
    /authorized_keys is a symbolic link/,
  );
  t.throws(() => users.authorizedKeys({ user: 'deploy', keys: ['not a key'] }), /keys\[0\]/);
  t.throws(() => users.authorizedKeys({ user: 'deploy', keys: [`${K1}\n${K2}`] }), TackleError);
  t.throws(() => users.authorizedKeys({ user: 'deploy', keys: [K1], exclusive: true, state: 'absent' }), TackleError);
  t.throws(() => users.authorizedKeys({ user: 'x y', keys: [K1] }), TackleError);
});
