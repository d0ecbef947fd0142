import t from 'tap';
import { Command } from '../../../lib/command/command.ts';
import { checkVars } from '../../../lib/engine/runner.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { deployTask, serviceOptions } from '../../../scripts/deploy.ts';
import { rollbackTask } from '../../../scripts/rollback.ts';

const host = (vars: Record<string, unknown>) => [...defineInventory({ hosts: { web1: { address: '10.0.0.1', vars } } }).hosts.values()];

t.test('vars become the restart, probes and wait of deploy.release', async (t) => {
  const vars = checkVars(deployTask, host({ app: 'shop', repo: 'https://g/s.git', service: 'shop.service', healthUrl: 'http://127.0.0.1:8000/health', healthBody: 'ok', healthPort: 5432, healthTimeout: 30, preDeploy: './manage migrate' })).get('web1');
  if (!vars) throw new Error('no vars');
  const o = serviceOptions(vars);
  t.same(o.restart, { systemd: 'shop.service' });
  t.same(o.wait, { deadlineMs: 30_000 });
  t.same(o.health.map((p) => p.kind), ['unit', 'http', 'tcp']);
  t.match(o.health[1], { url: 'http://127.0.0.1:8000/health', status: 200, body: 'ok', from: 'host' });
  t.ok(vars.preDeploy instanceof Command, 'shell text from the inventory becomes a command');
  t.equal(vars.preDeploy?.toString(), './manage migrate');
  t.equal(vars.appRoot, '/srv');
  t.same(serviceOptions({ ...vars, service: undefined, compose: true }).restart, { compose: {} });
  t.throws(() => serviceOptions({ ...vars, compose: true }), { name: 'TackleError', message: /compose and service are both set/ });
});

t.test('bad vars are refused before any host is contacted', async (t) => {
  t.throws(() => checkVars(deployTask, host({ repo: 'x' })), { name: 'TackleError', message: /host web1: var app is missing/ });
  t.throws(() => checkVars(deployTask, host({ app: 'a', preDeploy: 42 })), { name: 'TackleError', message: /var preDeploy must be a command/ });
  t.throws(() => checkVars(rollbackTask, host({ app: 'a', healthFrom: 'moon' })), { name: 'TackleError', message: /var healthFrom must be one of "host", "controller"/ });
  t.same(Object.keys(deployTask.flags), ['ref', 'image-tag']);
  t.same(Object.keys(rollbackTask.flags), ['to']);
});
