import t from 'tap';
import { defineInventory, type HostSpec } from '../../../lib/inventory/inventory.ts';

const inv = (hosts: Record<string, HostSpec>) => () => defineInventory({ hosts });

t.test('containers on parents: valid shapes', async (t) => {
  const i = defineInventory({
    hosts: {
      bastion: { address: '198.51.100.1' },
      pve: { address: '10.0.0.2', jump: 'bastion' },
      ct101: { parent: { host: 'pve', via: 'pct', id: '101' }, vars: { role: 'web' } },
      ct102: { parent: { host: 'pve', via: 'pct', id: '102' }, become: true },
      docker1: { address: '10.0.0.3' },
      web: { parent: { host: 'docker1', via: 'docker', id: 'web' } },
      nested: { parent: { host: 'docker1', via: { wrap: ['chroot', '/srv/nested'] } } },
      inner: { parent: { host: 'ct101', via: 'docker', id: 'app' } },
    },
  });
  t.same(i.hosts.get('ct101')?.spec.parent, { host: 'pve', via: 'pct', id: '101' });
  t.same(i.hosts.get('ct101')?.vars, { role: 'web' });
});

t.test('every parent problem is named', async (t) => {
  t.throws(inv({ ct: { parent: { host: 'nope', via: 'pct', id: '1' } } }), { phase: 'inventory', message: /host ct: parent "nope" is not an inventory host/ });
  t.throws(inv({ ct: { parent: { host: 'ct', via: 'pct', id: '1' } } }), { message: /host ct: parent names the host itself/ });
  t.throws(inv({ p: { address: 'x' }, ct: { parent: { host: 'p', via: 'pct', id: 'web' } } }), { message: /host ct: parent: pct needs a numeric VMID/ });
  t.throws(inv({ p: { address: 'x' }, ct: { parent: { host: 'p', via: 'docker' } } }), { message: /docker needs a container name/ });
  t.throws(inv({ p: { address: 'x' }, ct: { address: '10.0.0.9', parent: { host: 'p', via: 'docker', id: 'w' } } }), {
    message: /host ct: has both address and parent; a container is reached through its parent \(set address on p\)/,
  });
  t.throws(inv({ p: { address: 'x' }, ct: { jump: 'p', user: 'u', parent: { host: 'p', via: 'docker', id: 'w' } } }), { message: /has both user and parent[\s\S]*has both jump and parent/ });
  t.throws(inv({ p: { address: 'x' }, ct: { connection: 'local', parent: { host: 'p', via: 'docker', id: 'w' } } }), { message: /connection 'local' and parent/ });
  t.throws(inv({ a: { parent: { host: 'b', via: 'docker', id: 'a' } }, b: { parent: { host: 'a', via: 'docker', id: 'b' } } }), { message: /host a: parents and jump hosts form a loop \(a → b → a\)/ });
  t.throws(inv({ pve: { address: 'x', jump: 'ct' }, ct: { parent: { host: 'pve', via: 'pct', id: '1' } } }), {
    message: /host pve: jump ct is a container[\s\S]*host ct: parents and jump hosts form a loop \(ct → pve → ct\)/,
  });
  t.throws(inv({ p: { address: 'x' }, a: { parent: { host: 'p', via: 'docker', id: 'w' } }, b: { parent: { host: 'p', via: 'docker', id: 'w' } } }), { message: /host b: same .* as host a/ });
});
