import t from 'tap';
import { flagUsage, splitFlags, withJsonReport } from '../../../lib/backup/flags.ts';

const SPEC = { backup: { type: 'string', describe: 'this dump' }, replace: { type: 'boolean', describe: 'drop first' } } as const;

t.test('splitFlags takes the script flags out and keeps the rest in order', async (t) => {
  t.same(splitFlags(['--limit', 'db1', '--backup', 'a.dump', '--dry-run', '--replace'], SPEC), { values: { backup: 'a.dump', replace: true }, rest: ['--limit', 'db1', '--dry-run'] });
  t.same(splitFlags(['--backup=a.dump'], SPEC), { values: { backup: 'a.dump' }, rest: [] });
  t.same(splitFlags(['--limit', '--backup'], SPEC), { values: {}, rest: ['--limit', '--backup'] }, "another flag's value stays with it");
  t.throws(() => splitFlags(['--backup'], SPEC), /--backup needs a value/);
  t.throws(() => splitFlags(['--replace=yes'], SPEC), /--replace takes no value/);
  t.equal(flagUsage(SPEC), '  --backup VALUE  this dump\n  --replace       drop first\n');
});

t.test('withJsonReport keeps a --json given, or adds one', async (t) => {
  t.same(withJsonReport(['--json', 'r.json'], '/tmp/x'), { argv: ['--json', 'r.json'], file: 'r.json' });
  t.same(withJsonReport(['--json=r.json'], '/tmp/x'), { argv: ['--json=r.json'], file: 'r.json' });
  t.same(withJsonReport(['--dry-run'], '/tmp/x'), { argv: ['--dry-run', '--json', '/tmp/x'], file: '/tmp/x' });
});
