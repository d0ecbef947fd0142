import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { gatherFacts } from '../../../lib/facts/gather.ts';
import { exitStatusFact, inContext, parseExitStatus, parsePathPresence, pathPresenceFact } from '../../../lib/facts/shell.ts';

t.test('parsers', async (t) => {
  t.same(parsePathPresence({ stdout: '', stderr: '', exitCode: 0 }), { kind: 'exists' });
  t.same(parsePathPresence({ stdout: '', stderr: '', exitCode: 1 }), { kind: 'missing' });
  t.throws(() => parsePathPresence({ stdout: '', stderr: 'test: too many arguments', exitCode: 2 }));
  t.same(parseExitStatus({ stdout: '', stderr: '', exitCode: 0 }), { kind: 'success' });
  t.same(parseExitStatus({ stdout: '', stderr: '', exitCode: 127 }), { kind: 'failure', exitCode: 127 });
  t.same(parseExitStatus({ stdout: '', stderr: '', exitCode: null }), { kind: 'failure', exitCode: null });
});

t.test('inContext', async (t) => {
  t.equal(inContext(sh`a; b`, {}).toString(), '(a; b\n)');
  t.equal(inContext(sh`make`, { cwd: '/srv/my app' }).toString(), "(cd '/srv/my app' || exit\nmake\n)");
  t.equal(inContext(sh`x`, { env: { A: '1', K: secret('v') } }).toString(), '(export A=1 K=***\nx\n)');
});

t.test('real: guards gathered in one batch on this machine', async (t) => {
  const dir = t.testdir({ here: '' });
  const facts = [
    pathPresenceFact(`${dir}/here`),
    pathPresenceFact(`${dir}/gone`),
    exitStatusFact(sh`exit 7`),
    exitStatusFact(sh`echo noise; echo noise >&2; test -e here`, { cwd: dir }),
    exitStatusFact(sh`read line`), // stdin is closed for facts: a read cannot hang the batch
  ];
  t.same(await gatherFacts(new LocalConnection('local'), facts), [
    { kind: 'exists' },
    { kind: 'missing' },
    { kind: 'failure', exitCode: 7 },
    { kind: 'success' },
    { kind: 'failure', exitCode: 1 },
  ]);
});
