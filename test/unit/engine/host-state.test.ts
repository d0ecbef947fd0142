// The run lock and the pending handler records, on this machine through LocalConnection with a
// real flock(1): each test gives its host its own lock directory and state directory.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { takeHostLock } from '../../../lib/engine/host-lock.ts';
import { defineOperation } from '../../../lib/ops/operation.ts';
import { parseHostState, readStateScript, recordName } from '../../../lib/engine/pending-handlers.ts';
import { runTask, type RunOptions } from '../../../lib/engine/runner.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { v } from '../../../lib/inventory/vars.ts';
import { formatChanges, formatRecap } from '../../../lib/cli/ui.ts';
import { tempDir } from '../../support/temp-dir.ts';

function setup() {
  const dir = tempDir('hoststate');
  const inv = defineInventory({ hosts: { here: { connection: 'local', vars: { dir } } } });
  const options: RunOptions = {
    connect: async (h) => new LocalConnection(h.name),
    hostPaths: () => ({ lock: join(dir, 'lock'), state: join(dir, 'state') }),
    controller: { name: 'ctl', pid: 42 },
  };
  return { dir, hosts: [...inv.hosts.values()], options, records: join(dir, 'state', 'pending', 'site') };
}

const plain = (s: string) => s.replace(/\u001b\[\d+m/g, '');
const paint = (_c: number, s: string) => s;

t.test('record names cannot leave the directory; state output parses only when complete', async (t) => {
  t.equal(recordName('reload nginx'), 'reload%20nginx');
  t.equal(recordName('../x'), '%2E%2E%2Fx');
  t.equal(recordName('é'), '%C3%A9');
  const record = { handler: 'reload nginx', step: 'nginx.site app', at: '2026-11-30T10:00:00.000Z', by: 'ctl (pid 42)' };
  const out = `tackle-state /var/lib/tackle/pending/site\ntackle-pending ${JSON.stringify(record)}\ntackle-end\n`;
  t.same(parseHostState(out), { dir: '/var/lib/tackle/pending/site', pending: [record] });
  t.equal(parseHostState(out.replace('tackle-end\n', '')), undefined, 'not complete before the end line');
  t.throws(() => parseHostState('tackle-state /d\ntackle-pending {"handler":1}\ntackle-end\n'), TypeError);
  const read = await new LocalConnection('here').exec(readStateScript('site', '/nonexistent-tackle'));
  t.same(parseHostState(read.stdout), { dir: '/nonexistent-tackle/pending/site', pending: [] }, 'no directory: nothing pending');
});

// A site file that notifies a handler, then (when told) a step that fails.
const site = defineTask({
  name: 'site',
  vars: { dir: v.string(), body: v.string(), fail: v.boolean().default(false) },
  async run(host, handler) {
    const conf = join(host.vars.dir, 'site.conf');
    await host.run(
      defineOperation({
        name: `write ${conf}`,
        facts: { now: defineFact(`content:${conf}`, sh`cat ${conf} 2>/dev/null || true`, (o) => o.stdout) },
        options: { notify: handler('reload') },
        plan: ({ now }) =>
          now === host.vars.body
            ? undefined
            : {
                summary: `write ${host.vars.body}`,
                // Proves the order: the notification is on the host before the change is applied.
                actions: [{ command: sh`test -f ${join(host.vars.dir, 'state/pending/site/reload')} && printf %s ${host.vars.body} > ${conf}` }],
              },
      }),
    );
    if (host.vars.fail) await host.run(defineOperation({ name: 'a later step that fails', facts: {}, plan: () => ({ summary: 'fail', actions: [{ command: sh`exit 1` }] }) }));
  },
  handlers: {
    reload: (host) =>
      host.run(defineOperation({ name: 'reload', facts: {}, plan: () => ({ summary: 'reload', actions: [{ command: sh`cp ${join(host.vars.dir, 'site.conf')} ${join(host.vars.dir, 'served')}` }] }) })),
  },
});

t.test('a notification survives a failed step: the next run runs the handler, says so, and clears it', async (t) => {
  const { dir, hosts, options, records } = setup();
  const withVars = (vars: Record<string, unknown>) => hosts.map((h) => ({ ...h, vars: { ...h.vars, ...vars } }));
  const served = () => (existsSync(join(dir, 'served')) ? readFileSync(join(dir, 'served'), 'utf8') : '');

  const first = await runTask(site, withVars({ body: 'v1' }), options);
  t.equal(first.hosts[0]?.status, 'changed');
  t.equal(served(), 'v1');
  t.same(readdirSync(records), [], 'cleared after the handler succeeded');
  t.same(first.hosts[0]?.handlers, { earlier: [], ran: ['reload'], outstanding: [] });

  const broken = await runTask(site, withVars({ body: 'v2', fail: true }), options);
  t.equal(broken.hosts[0]?.status, 'failed');
  t.equal(served(), 'v1', 'the handler did not run after the failed step');
  t.same(readdirSync(records), ['reload'], 'the notification is recorded on the host');
  t.match(JSON.parse(readFileSync(join(records, 'reload'), 'utf8')), { handler: 'reload', step: `write ${join(dir, 'site.conf')}`, by: 'ctl (pid 42)' });
  t.same(broken.hosts[0]?.handlers?.outstanding, ['reload']);
  t.match(formatRecap(broken, paint), /here: handler "reload" stays pending on the host; the next run of site that gets through its steps runs it/);

  const dry = await runTask(site, withVars({ body: 'v2' }), { ...options, dryRun: true });
  t.same(dry.hosts[0]?.steps.map((s) => [s.name, s.status]), [[`write ${join(dir, 'site.conf')}`, 'ok'], ['reload › reload', 'changed']], 'the plan runs the pending handler');
  t.match(dry.hosts[0]?.handlers?.earlier, [{ handler: 'reload', by: 'ctl (pid 42)' }]);
  t.same(readdirSync(records), ['reload'], 'a dry-run clears nothing');
  t.match(plain(formatChanges(dry, { diff: false, verbose: false }, paint)), /here: 1 step\(s\) would change\n {2}! handler "reload" is pending from an earlier run \(notified by write \S+ at \S+ from ctl \(pid 42\)\)/);
  t.match(formatRecap(dry, paint), /here: handler "reload" is pending from an earlier run \(notified by [^\n]*\): this run would run it/);

  const second = await runTask(site, withVars({ body: 'v2' }), options);
  t.equal(second.hosts[0]?.status, 'changed');
  t.equal(served(), 'v2', 'the pending handler ran');
  t.same(readdirSync(records), []);
  t.match(formatRecap(second, paint), /here: handler "reload" was pending from an earlier run \(notified by [^\n]*\): ran/);

  const third = await runTask(site, withVars({ body: 'v2' }), options);
  t.same(third.hosts[0]?.steps.map((s) => s.status), ['ok'], 'nothing pending any more');
  t.equal(third.hosts[0]?.handlers, undefined);
});

t.test('a second run waits for the lock, or fails as busy naming the holder; Ctrl-C ends the wait', async (t) => {
  const { hosts, options } = setup();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const order: string[] = [];
  const hold = defineTask({
    name: 'hold',
    vars: { who: v.string() },
    async run(host) {
      order.push(`start ${host.vars.who}`);
      if (host.vars.who === 'first') {
        entered();
        await released;
      }
      order.push(`end ${host.vars.who}`);
    },
  });
  const as = (who: string) => hosts.map((h) => ({ ...h, vars: { who } }));
  const first = runTask(hold, as('first'), options);
  await inside;

  const busy = await runTask(hold, as('busy'), { ...options, lockTimeoutSeconds: 0.3 });
  t.equal(busy.hosts[0]?.status, 'failed');
  t.match(busy.hosts[0]?.error, { phase: 'task', host: 'here', reason: /^busy: task hold from ctl \(pid 42\) since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ holds the lock \S+; gave up after 0\.3 s/ });

  const abort = new AbortController();
  const interrupted = runTask(hold, as('interrupted'), { ...options, signal: abort.signal });
  setTimeout(() => abort.abort(), 200);
  t.equal((await interrupted).hosts[0]?.status, 'skipped', 'Ctrl-C while waiting: the host is skipped');

  const waiting = runTask(hold, as('waiting'), { ...options, lockTimeoutSeconds: 30 });
  await new Promise((r) => setTimeout(r, 300));
  release();
  t.equal((await first).hosts[0]?.status, 'ok');
  t.equal((await waiting).hosts[0]?.status, 'ok');
  t.same(order, ['start first', 'end first', 'start waiting', 'end waiting'], 'the waiting run started after the first ended');
});

t.test('a released lock can be taken again at once', async (t) => {
  const { dir } = setup();
  const conn = new LocalConnection('here');
  const opts = { timeoutSeconds: 5, holder: 'task x from ctl (pid 1)', dir: join(dir, 'lock') };
  const first = await takeHostLock(conn, opts, readStateScript('x', join(dir, 'state')));
  await first.release();
  const second = await takeHostLock(conn, opts, readStateScript('x', join(dir, 'state')));
  t.same(second.state.pending, []);
  await second.release();
});
