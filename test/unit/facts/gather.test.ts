import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { gatherFacts, splitBatch } from '../../../lib/facts/gather.ts';
import { defineFact, type FactGroup } from '../../../lib/facts/fact.ts';

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
  t.same(conn.stats(), { channels: 1, roundTrips: 1, commands: 4 }, 'one process, one round trip for four facts');
});

t.test('a parser that throws becomes a fact error naming the fact and host', async (t) => {
  const conn = new LocalConnection('web1');
  const bad = defineFact('bad.fact', sh`echo x`, () => {
    throw new Error('unexpected output');
  });
  await t.rejects(gatherFacts(conn, [bad]), { phase: 'fact', host: 'web1', message: /bad\.fact: unexpected output/ });
});

t.test('facts of one group run as one command at the first one\'s place; a split that fails fails each of them', async (t) => {
  const echo: FactGroup = {
    id: 'echo',
    command: (items) => sh`printf '%s\n' ${[...items]}`,
    split: (out, items) => {
      const lines = out.stdout.split('\n');
      if (lines.includes('boom')) throw new Error('no split');
      return items.map((_, i) => ({ stdout: lines[i] as string, stderr: '', exitCode: 0 }));
    },
  };
  const member = (item: string) => defineFact(`echo:${item}`, sh`echo ${item}`, (o) => {
      // As real parsers do: a failed command is an error, with its stderr.
      if (o.exitCode !== 0) throw new Error(o.stderr);
      return `grouped ${o.stdout}`;
    }, { group: { of: echo, item } });
  const alone = defineFact('alone', sh`echo alone`, (o) => o.stdout.trim());
  const conn = new LocalConnection('web1');
  t.same(await gatherFacts(conn, [member('a'), alone, member('b')]), ['grouped a', 'alone', 'grouped b']);
  t.same(conn.stats(), { channels: 1, roundTrips: 1, commands: 2 }, 'two commands: the group and the other fact');
  t.same(await gatherFacts(conn, [member('c')]), ['grouped c\n'], 'a group of one runs its own command');
  await t.rejects(gatherFacts(conn, [member('x'), member('boom')]), { phase: 'fact', host: 'web1', message: /echo:x.*no split/s });
});
