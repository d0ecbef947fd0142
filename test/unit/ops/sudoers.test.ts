import t from 'tap';
import { sudoer } from '../../../lib/ops/sudoers.ts';
import { handlerRef } from '../../support/handler.ts';

t.test('users.sudoer: a validated 0440 drop-in, planned by files.file', async (t) => {
  const op = sudoer({ name: 'deploy', rules: ['deploy ALL=(ALL) NOPASSWD:ALL'], notify: handlerRef('x') });
  t.equal(op.name, 'users.sudoer deploy');
  t.same(op.notify, ['x']);
  const change = op.plan({ info: { kind: 'missing' } });
  t.equal(change?.actions[0]?.stdin, '# Managed by tackle (users.sudoer); checked with visudo before it is installed.\ndeploy ALL=(ALL) NOPASSWD:ALL\n');
  const command = change?.actions[0]?.command.toString() ?? '';
  t.match(command, /mktemp \/etc\/sudoers\.d\/\.tackle-[0-9a-f]{8}-XXXXXX/, 'the temp file has a dot: sudo ignores it');
  t.match(command, /chown -- root:root "\$tackle_tmp"\nchmod -- 0440 "\$tackle_tmp"/);
  t.match(command, /\( visudo -cf "\$\{tackle_tmp\}"\n\)/, 'validated before the rename');
  t.match(command, /mv -fT -- "\$tackle_tmp" \/etc\/sudoers\.d\/deploy/);
  t.match(change?.summary, /^create \/etc\/sudoers\.d\/deploy \(\d+ bytes, mode 0440, owner root, group root\)$/);
});

t.test('content as given (a final newline added), and absent', async (t) => {
  const change = sudoer({ name: 'ops', content: 'Defaults:ops !lecture\nops ALL=(ALL) ALL' }).plan({ info: { kind: 'missing' } });
  t.equal(change?.actions[0]?.stdin, 'Defaults:ops !lecture\nops ALL=(ALL) ALL\n');
  const gone = sudoer({ name: 'old', state: 'absent' });
  t.equal(gone.name, 'users.sudoer old');
  t.equal(gone.plan({ info: { kind: 'missing' } }), undefined);
  t.same(gone.plan({ info: { kind: 'file', mode: '0440', owner: 'root', group: 'root', uid: 0, gid: 0, size: 1, sha256: 'a'.repeat(64) } })?.actions.map((a) => a.command.toString()), ['rm -f -- /etc/sudoers.d/old']);
});

t.test('names sudo would silently skip are refused', async (t) => {
  t.throws(() => sudoer({ name: 'deploy.conf', rules: ['x'] }), /contain a dot or end in ~/);
  t.throws(() => sudoer({ name: 'deploy~', rules: ['x'] }), /letters, digits/);
  t.throws(() => sudoer({ name: '../sudoers', rules: ['x'] }), /letters, digits/);
  t.throws(() => sudoer({ name: 'deploy', rules: [] }), /non-empty list/);
  t.throws(() => sudoer({ name: 'deploy', rules: ['a\nb'] }), /one non-empty line/);
  t.throws(() => sudoer({ name: 'deploy', rules: ['a'], content: 'b' } as never), /not both/);
});
