import t from 'tap';
import { defineInventory, type InventorySpec } from '../../../lib/inventory/inventory.ts';
import { selectHosts } from '../../../lib/inventory/select.ts';
import { checkShape, v, type InferShape } from '../../../lib/inventory/vars.ts';

const spec: InventorySpec = {
  vars: { tz: 'UTC', level: 'all' },
  groups: { web: { vars: { level: 'web', port: 80 } }, db: { vars: { level: 'db' } } },
  hosts: {
    web1: { address: '10.0.0.1', groups: ['web'], vars: { port: 8080 } },
    web2: { address: '10.0.0.2', groups: ['web', 'db'] },
    db1: { address: '10.0.0.3', groups: ['db'], vars: { level: 'host' } },
    local: { connection: 'local' },
  },
};

t.test('vars merge all → groups in order → host', async (t) => {
  const inv = defineInventory(spec);
  t.same(inv.hosts.get('web1')?.vars, { tz: 'UTC', level: 'web', port: 8080 });
  t.same(inv.hosts.get('web2')?.vars, { tz: 'UTC', level: 'db', port: 80 });
  t.same(inv.hosts.get('db1')?.vars, { tz: 'UTC', level: 'host' });
  t.same([...(inv.groups.get('db') ?? [])], ['web2', 'db1']);
});

t.test('every problem is reported at once, naming host and field', async (t) => {
  t.throws(
    () =>
      defineInventory({
        groups: { web: {}, db1: {} },
        hosts: {
          a: { address: '', port: 70000 },
          b: { address: '10.0.0.9', groups: ['nope', 'web', 'web'] },
          db1: { address: '10.0.0.8' },
          c: { address: '10.0.0.9' },
          'bad name': { address: 'x' },
          j1: { address: 'x1', jump: 'j2' },
          j2: { address: 'x2', jump: 'j1' },
        },
      }),
    {
      phase: 'inventory',
      message: /host a: address is empty[\s\S]*host a: port 70000 is not a port[\s\S]*host b: unknown group "nope"[\s\S]*host b: group web is listed twice/,
    },
  );
  t.throws(() => defineInventory({ hosts: { web: { address: 'x' } }, groups: { web: {} } }), { message: /group web: a host has the same name/ });
  t.throws(() => defineInventory({ hosts: { c: { address: '10.0.0.9' }, d: { address: '10.0.0.9' } } }), { message: /host d: same address.*as host c/ });
  t.throws(() => defineInventory({ hosts: { j1: { address: 'x1', jump: 'j2' }, j2: { address: 'x2', jump: 'j1' } } }), { message: /jump hosts form a loop/ });
  t.throws(() => defineInventory({ hosts: { 'bad name': { address: 'x' } } }), { message: /"bad name": name may use only/ });
});

t.test('--limit by name, group, glob, exclusion', async (t) => {
  const inv = defineInventory(spec);
  const names = (limit?: string) => selectHosts(inv, limit).map((h) => h.name);
  t.same(names(), ['web1', 'web2', 'db1', 'local']);
  t.same(names('db'), ['web2', 'db1']);
  t.same(names('web1,db1'), ['web1', 'db1']);
  t.same(names('web*'), ['web1', 'web2']);
  t.same(names('web,!web2'), ['web1']);
  t.same(names('!db'), ['web1', 'local']);
  t.throws(() => names('nosuch'), { phase: 'inventory', message: /--limit "nosuch" matches no host or group/ });
});

t.test('typed vars: defaults, optional, nested errors with paths', async (t) => {
  const shape = { user: v.string(), port: v.port().default(22), sites: v.array(v.object({ name: v.string(), tls: v.boolean().optional() })).default([]) };
  const ok: InferShape<typeof shape> = checkShape(shape, { user: 'deploy', sites: [{ name: 'a' }] });
  t.same(ok, { user: 'deploy', port: 22, sites: [{ name: 'a', tls: undefined }] });
  t.throws(() => checkShape(shape, { user: 'x', sites: [{ name: 'a' }, { name: 3 }] }), { path: 'sites[1].name', message: 'sites[1].name must be a string, got number 3' });
  t.throws(() => checkShape(shape, { port: 22 }), { message: 'user is missing (expected a string)' });
  t.throws(() => checkShape(shape, { user: 'x', port: 0 }), { message: /port must be a port number/ });
  // @ts-expect-error a mistyped var is a compile error
  const bad: InferShape<typeof shape> = { user: 1, port: 22, sites: [] };
  t.ok(bad);
});

t.test('sharedVars: names of vars that other tasks read, checked with the rest', async (t) => {
  const inv = defineInventory({ sharedVars: ['backup', 'app'], hosts: { local: { connection: 'local', vars: { backup: {} } } } });
  t.same([...inv.sharedVars], ['backup', 'app']);
  t.same([...defineInventory({ hosts: {} }).sharedVars], [], 'none by default');
  // @ts-expect-error a list, not one name
  t.throws(() => defineInventory({ sharedVars: 'backup', hosts: {} }), { message: /sharedVars must be an array of var names, got "backup"/ });
  t.throws(
    // @ts-expect-error names only
    () => defineInventory({ sharedVars: ['backup', 3, ''], hosts: { a: { address: '' } } }),
    { phase: 'inventory', message: /sharedVars must be an array of var names, got \["backup",3,""\][\s\S]*host a: address is empty/ },
  );
});
