import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { combine, defineOperation, type Change, type Operation } from '../../../lib/ops/operation.ts';
import { defineFact } from '../../../lib/facts/fact.ts';

// Facts of made-up areas: a count and a word, each a command plus a parser.
const count = (name: string) => defineFact(`count:${name}`, sh`wc -l ${name}`, ({ stdout }) => Number(stdout));
const word = (name: string) => defineFact(`word:${name}`, sh`cat ${name}`, ({ stdout }) => stdout.trim());

/** An operation of one fact: "set NAME to N" unless it is N. */
function setCount(name: string, want: number): Operation {
  return defineOperation({
    name: `set ${name}`,
    facts: { n: count(name) },
    plan: ({ n }) => (n === want ? undefined : { summary: `${name} ${n} → ${want}`, actions: [{ command: sh`set-count ${name} ${want}` }], diff: `${name}\n` }),
  });
}

t.test('parts: their facts are gathered with the outer ones, by cache key, and each part plans with its own', async (t) => {
  const a = setCount('a', 1);
  const b = setCount('b', 2);
  const op = defineOperation({
    name: 'both',
    facts: { label: word('x'), again: count('a') },
    parts: [a, b],
    plan: ({ label, again }, part) => {
      // Typed from the facts: a string and a number.
      const text: string = label;
      const n: number = again;
      // @ts-expect-error a count is not a string
      const wrong: string = again;
      void wrong;
      return combine([part(a), part(b), { summary: `${text} ${n}`, actions: [] }]);
    },
  });
  t.same(Object.keys(op.facts), ['label', 'again', 'count:b'], "a part's fact the operation asks for itself is gathered once, under its name");
  const change = op.plan({ label: 'x', again: 5, 'count:b': 2 });
  t.same(change?.actions.map((c) => c.command.toString()), ['set-count a 1'], 'a from its value 5, b converged at 2');
  t.equal(change?.summary, 'a 5 → 1; x 5');
  t.equal(op.plan({ label: 'x', again: 1, 'count:b': 2 })?.summary, 'x 1', 'only the outer change');
});

t.test('part: an operation built while planning, from facts the outer one gathers', async (t) => {
  const op = defineOperation({
    name: 'follow',
    facts: { target: word('t'), current: count('c') },
    plan: ({ target }, part) => part(setCount('c', target.length)),
  });
  t.equal(op.plan({ target: 'abc', current: 3 }), undefined);
  t.equal(op.plan({ target: 'abcd', current: 3 })?.summary, 'c 3 → 4');
});

t.test('part: a part whose facts are not gathered is a TypeError naming it', async (t) => {
  const op = defineOperation({ name: 'outer', facts: {}, plan: (_, part) => part(setCount('z', 1)) });
  t.throws(() => op.plan({}), new TypeError('outer: part set z needs fact count:z; name the part in parts, or ask for the fact'));
  t.throws(
    () => defineOperation({ name: 'clash', facts: { 'count:q': word('q') }, parts: [setCount('q', 1)], plan: () => undefined }),
    new TypeError("clash: its fact named count:q clashes with a part's fact of that key"),
  );
});

t.test('combine: one change from several, or none', async (t) => {
  const check = { describe: 'c', run: async () => {} };
  const one: Change = { summary: 'one', actions: [{ command: sh`a` }], diff: 'd1\n' };
  const two: Change = { summary: 'two', actions: [{ command: sh`b`, stdin: 'x' }], checks: [check] };
  t.equal(combine([]), undefined);
  t.equal(combine([undefined, undefined]), undefined);
  t.same(combine([one, undefined, two]), { summary: 'one; two', actions: [{ command: sh`a` }, { command: sh`b`, stdin: 'x' }], checks: [check], diff: 'd1\n' });
  t.equal(combine([one, two], ', ')?.summary, 'one, two');
  t.same(combine([{ summary: 's', actions: [] }]), { summary: 's', actions: [] }, 'no empty checks or diff');
});
