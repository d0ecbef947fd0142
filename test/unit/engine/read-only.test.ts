// A read-only task (a report): its steps are only planned, a step that would change fails the
// host with nothing changed, and it has no handlers.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { runTask } from '../../../lib/engine/runner.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { files } from '../../../lib/ops/files.ts';
import { tempDir } from '../../support/temp-dir.ts';

t.test('a step of a read-only task that would change fails the host and changes nothing', async (t) => {
  const dir = tempDir('readonly');
  writeFileSync(join(dir, 'same'), 'same\n');
  const audit = defineTask({
    name: 'audit',
    readOnly: true,
    async run(host) {
      await host.run(files.file({ path: join(dir, 'same'), content: 'same\n' }));
      await host.run(files.file({ path: join(dir, 'new'), content: 'new\n' }));
      return 'not reached';
    },
  });
  const hosts = [...defineInventory({ hosts: { here: { connection: 'local' } } }).hosts.values()];
  const result = await runTask(audit, hosts, { connect: async (h) => new LocalConnection(h.name), hostPaths: () => ({ lock: join(dir, 'lock'), state: join(dir, 'state') }) });
  const [here] = result.hosts;
  t.equal(here?.status, 'failed');
  t.same(here?.steps.map((s) => [s.name, s.status]), [[`files.file ${join(dir, 'same')}`, 'ok'], [`files.file ${join(dir, 'new')}`, 'changed'], ['task', 'failed']]);
  t.match(here?.error?.reason, `task audit is read-only, and step "files.file ${join(dir, 'new')}" would change the host; nothing was changed`);
  t.notOk(existsSync(join(dir, 'new')), 'the file was not written');
  t.notOk(existsSync(join(dir, 'lock')), 'no lock was taken');
  t.equal(here?.data, undefined, 'a failed body leaves no data');
});

t.test('a read-only task has no handlers', async (t) => {
  t.throws(
    () => defineTask({ name: 'audit', readOnly: true, run: async () => {}, handlers: { reload: async () => {} } }),
    { name: 'TypeError', message: 'task audit is read-only: it changes nothing, so it has no handlers' },
  );
  t.equal(defineTask({ name: 'site', run: async () => {} }).readOnly, false, 'tasks change by default');
});
