// The layering check finds imports that run upward, sideways or around the public API.
import t from 'tap';
import { importsOf, violations } from '../../../scripts/check-layers.ts';

t.test('imports are read as repository paths, static, re-exported and dynamic', async (t) => {
  const src = `import { a } from './a.ts';\nexport { b } from '../facts/b.ts';\nimport type { C } from "../../lib/index.ts";\nconst m = await import('../cli/ui.ts');\nimport 'node:fs';\n`;
  t.same(
    importsOf('lib/ops/x.ts', src).map((i) => i.to),
    ['lib/ops/a.ts', 'lib/facts/b.ts', 'lib/index.ts', 'lib/cli/ui.ts'],
  );
});

t.test('down is fine; up, sideways and out of lib are not', async (t) => {
  t.same(violations([{ from: 'lib/ops/files.ts', to: 'lib/facts/files.ts' }, { from: 'lib/engine/runner.ts', to: 'lib/ops/operation.ts' }, { from: 'lib/ops/a.ts', to: 'lib/ops/b.ts' }]), []);
  const found = violations([
    { from: 'lib/ops/files.ts', to: 'lib/engine/runner.ts' },
    { from: 'lib/backup/webhook.ts', to: 'lib/health/evaluate.ts' },
    { from: 'lib/connection/open.ts', to: 'test/lab/lab.ts' },
    { from: 'lib/newarea/x.ts', to: 'lib/errors.ts' },
  ]);
  t.equal(found.length, 4);
  t.match(found[0], /lib\/ops may not import lib\/engine, which is above it/);
  t.match(found[1], /beside it/);
  t.match(found[2], /imports nothing outside lib/);
  t.match(found[3], /not in LIB_LAYERS/);
});

t.test('tasks, scripts and the lab go through the public API; tests may reach in', async (t) => {
  t.same(violations([{ from: 'tasks/provision.ts', to: 'lib/index.ts' }, { from: 'scripts/bench.ts', to: 'lab/lab.ts' }, { from: 'test/unit/x.test.ts', to: 'lib/ops/files.ts' }]), []);
  const found = violations([
    { from: 'scripts/deploy.ts', to: 'lib/ops/deploy.ts' },
    { from: 'lab/lab.ts', to: 'test/e2e/support/cli.ts' },
    { from: 'tasks/x.ts', to: 'scripts/y.ts' },
  ]);
  t.equal(found.length, 3);
  t.match(found[0], /scripts may import only lib\/index.ts, lab, tasks/);
});
