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

// The declarative form: steps are operations (or a condition that left one out), from typed vars.
export const declarative = defineTask({
  name: 'steps',
  vars: { motd: v.string(), extra: v.boolean().default(false) },
  steps: (host, handler) => [
    files.file({ path: '/etc/motd', content: host.vars.motd, notify: handler('again') }),
    host.vars.extra && files.file({ path: '/etc/extra', content: 'x' }),
    // @ts-expect-error a step is an operation, not the promise of running one
    host.run(files.file({ path: '/etc/x', content: 'x' })),
    // @ts-expect-error a handler the task does not have
    files.file({ path: '/etc/y', content: 'y', notify: handler('nope') }),
  ],
  handlers: { again: () => files.file({ path: '/etc/motd.bak', content: 'x' }) },
});

t.test('the declarative form type-checks', async (t) => {
  t.equal(declarative.name, 'steps');
});
