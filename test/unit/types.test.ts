// Type-level tests of the DSL: each @ts-expect-error line must be a compile error (tsc checks
// this file in `npm test`); the runtime assertions only keep tap satisfied.
import t from 'tap';
import { defineInventory, defineTask, files, secret, sh, v, type VarsOf } from '../../lib/index.ts';

const task = defineTask({
  name: 'typed',
  vars: { port: v.port(), sites: v.array(v.object({ name: v.string() })).default([]), token: v.secret().optional() },
  async run(host) {
    const port: number = host.vars.port;
    const first: string | undefined = host.vars.sites[0]?.name;
    // @ts-expect-error a var the task did not declare
    void host.vars.nope;
    // @ts-expect-error a var used as the wrong type
    const wrong: string = host.vars.port;
    void [port, first, wrong];
    // @ts-expect-error an operation needs its required fields
    await host.run(files.file({ content: 'x' }));
  },
});

// Compiled, never called: these would (rightly) fail validation at run time.
export function inventoryTypes(): void {
  defineInventory<VarsOf<typeof task>>({ hosts: { a: { address: '10.0.0.1', vars: { port: 22, token: secret('x') } } } });
  // @ts-expect-error a mistyped var in an inventory typed by the task
  defineInventory<VarsOf<typeof task>>({ hosts: { a: { address: '10.0.0.1', vars: { port: 'eighty' } } } });
  // @ts-expect-error a host field that does not exist
  defineInventory({ hosts: { a: { adress: '10.0.0.1' } } });
}

t.throws(() => {
  // @ts-expect-error interpolating a Promise is a compile error, and a TypeError at run time
  sh`echo ${Promise.resolve('x')}`;
}, TypeError);
t.equal(task.name, 'typed');
