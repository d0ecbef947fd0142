import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { gatherFacts, splitBatch } from '../../../lib/engine/gather.ts';
import { defineFact } from '../../../lib/facts/fact.ts';

t.test('splitBatch separates outputs, stderr and exit codes', async (t) => {
  const m = '__M__';
  const out = `a\nb\n\n${m} 0\n\n${m} 3\nno newline\n${m} 1\n`;
  const err = `\n${m}\noops\n\n${m}\n\n${m}\n`;
  t.same(splitBatch(out, err, m, 3), [
    { stdout: 'a\nb\n', stderr: '', exitCode: 0 },
    { stdout: '', stderr: 'oops\n', exitCode: 3 },
    { stdout: 'no newline', stderr: '', exitCode: 1 },
  ]);
  t.equal(splitBatch(out, err, m, 4), undefined, 'an incomplete batch is detected');
});

t.test('many facts in one exec, each isolated', async (t) => {
  const conn = new LocalConnection('local');
  const facts = [
    defineFact('a', sh`echo one`, (o) => o.stdout.trim()),
    defineFact('b', sh`echo err >&2; exit 4`, (o) => `${o.exitCode}:${o.stderr.trim()}`),
    defineFact('c', sh`read x; echo "read:$x"`, (o) => o.stdout.trim()),
    defineFact('d', sh`printf 'no newline'`, (o) => o.stdout),
  ];
  const values = await gatherFacts(conn, facts);
  t.same(values, ['one', '4:err', 'read:', 'no newline'], 'exit in one fact does not stop the next; stdin is closed');
  t.same(conn.stats(), { channels: 1, commands: 4, roundTrips: 1 }, 'one process, one round trip, for four facts');
});

t.test('a parser that throws becomes a fact error naming the fact and host', async (t) => {
  const conn = new LocalConnection('web1');
  const bad = defineFact('bad.fact', sh`echo x`, () => {
    throw new Error('unexpected output');
  });
  await t.rejects(gatherFacts(conn, [bad]), { phase: 'fact', host: 'web1', message: /bad\.fact: unexpected output/ });
});
