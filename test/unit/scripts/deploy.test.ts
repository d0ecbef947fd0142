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

t.test('blueGreen vars: each color checked on its own port, the template instantiated', async (t) => {
  const bg = { ports: [3001, 3002], upstream: 'shop', healthPath: '/health' };
  const vars = checkVars(deployTask, host({ app: 'shop', repo: 'https://g/s.git', service: 'shop@.service', healthBody: 'ok', blueGreen: bg })).get('web1');
  if (!vars) throw new Error('no vars');
  const o = serviceOptions(vars);
  t.same(o.restart, { systemd: 'shop@.service' });
  t.same(o.health, [], 'no probe names one port for both colors');
  t.match(o.blueGreen, { ports: [3001, 3002], upstream: 'shop', stopPrevious: false, drainMs: 5000 });
  t.match(o.blueGreen?.health?.(3002), [{ kind: 'unit', unit: 'shop@3002.service' }, { kind: 'http', url: 'http://127.0.0.1:3002/health', body: 'ok' }]);
  t.match(serviceOptions({ ...vars, blueGreen: { ...vars.blueGreen!, healthPath: undefined } }).blueGreen?.health?.(3001), [{ kind: 'unit' }, { kind: 'tcp', port: 3001 }]);
  t.throws(() => serviceOptions({ ...vars, service: 'shop.service' }), { name: 'TackleError', message: /blueGreen needs service to be a template unit such as "shop@.service"/ });
  t.throws(() => serviceOptions({ ...vars, healthUrl: 'http://127.0.0.1:8000/health' }), { name: 'TackleError', message: /give blueGreen.healthPath instead of healthUrl/ });
  t.throws(() => checkVars(deployTask, host({ app: 'a', blueGreen: { ports: [3001, 3001], upstream: 'a' } })), { name: 'TackleError', message: /var blueGreen.ports must be two different ports/ });
  t.throws(() => checkVars(rollbackTask, host({ app: 'a', blueGreen: { ports: [3001, 3002], upstream: 'a b' } })), { name: 'TackleError', message: /var blueGreen.upstream must be an nginx upstream name/ });
});
