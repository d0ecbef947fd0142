// Whatever is thrown for one host ends that host only: the run resolves with every host's result.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { defineOperation } from '../../../lib/ops/operation.ts';
import { runTask } from '../../../lib/engine/runner.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { v } from '../../../lib/inventory/vars.ts';
import { tempDir } from '../../support/temp-dir.ts';

const write = (path: string) =>
  defineOperation({
    name: `write ${path}`,
    facts: { exists: defineFact(`exists:${path}`, sh`test -e ${path}`, (o) => o.exitCode === 0) },
    plan: ({ exists }) => (exists ? undefined : { summary: `write ${path}`, actions: [{ command: sh`echo done > ${path}` }] }),
  });

const task = defineTask({
  name: 'isolation',
  vars: { dir: v.string() },
  async run(host) {
    await host.run(write(`${host.vars.dir}-${host.name}`));
  },
});

function hosts() {
  const dir = tempDir('isolation');
  const inv = defineInventory({ vars: { dir: join(dir, 'out') }, hosts: { a: { connection: 'local' }, b: { connection: 'local' }, c: { connection: 'local' } } });
  return { dir, hosts: [...inv.hosts.values()] };
}

/** A connection whose close throws at once instead of returning a rejected promise. */
class ThrowingClose extends LocalConnection {
  override close(): Promise<void> {
    throw new Error('close blew up');
  }
}

t.test('a connection that throws on close: its host keeps its outcome, the others finish', async (t) => {
  const { dir, hosts: all } = hosts();
  // Each fake host its own lock: the session of `a`, never closed, holds its lock while this process lives.
  const result = await runTask(task, all, { connect: async (h) => (h.name === 'a' ? new ThrowingClose(h.name) : new LocalConnection(h.name)), hostPaths: (h) => ({ lock: join(dir, `lock-${h.name}`), state: join(dir, 'state') }) });
  t.same(
    result.hosts.map((h) => [h.name, h.status]),
    [['a', 'changed'], ['b', 'changed'], ['c', 'changed']],
  );
  for (const name of ['a', 'b', 'c']) t.equal(readFileSync(join(dir, `out-${name}`), 'utf8'), 'done\n');
});

t.test('a throw outside any step for one host fails that host only, with a plain reason', async (t) => {
  const { dir, hosts: all } = hosts();
  const result = await runTask(task, all, {
    connect: async (h) => new LocalConnection(h.name),
    onEvent: (e) => {
      if (e.type === 'host:start' && e.host === 'b') throw new Error('listener bug for b');
    },
  });
  t.same(
    result.hosts.map((h) => [h.name, h.status]),
    [['a', 'changed'], ['b', 'failed'], ['c', 'changed']],
  );
  t.match(result.hosts[1]?.error, { phase: 'task', host: 'b', reason: 'listener bug for b' });
  for (const name of ['a', 'c']) t.equal(readFileSync(join(dir, `out-${name}`), 'utf8'), 'done\n');
});
