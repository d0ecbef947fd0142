import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { defineOperation, type HandlerRef } from '../../../lib/ops/operation.ts';
import { runTask as runTaskOn, varWarnings, type RunOptions } from '../../../lib/engine/runner.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { TackleError } from '../../../lib/errors.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { v } from '../../../lib/inventory/vars.ts';
import type { Task } from '../../../lib/engine/task.ts';
import type { InventoryHost, Vars } from '../../../lib/inventory/inventory.ts';
import { tempDir } from '../../support/temp-dir.ts';

// These fake hosts all live on this machine: each gets its own lock and handler records.
const stateRoot = tempDir('runner-state');
const hostPaths = (h: InventoryHost) => ({ lock: join(stateRoot, h.name, 'lock'), state: join(stateRoot, h.name, 'state') });
const runTask = <V extends Vars>(task: Task<V>, hosts: readonly InventoryHost[], options: RunOptions) => runTaskOn(task, hosts, { hostPaths, ...options });

// A tiny real operation: ensure a marker file exists, appending a line to a log when it acts.
const touch = (path: string, notify?: HandlerRef) => {
  const exists = defineFact(`exists:${path}`, sh`test -e ${path}`, (o) => o.exitCode === 0, { reads: [path] });
  return defineOperation({
    name: `touch ${path}`,
    facts: { exists },
    options: notify ? { notify } : {},
    // Its effects let a dry-run plan the steps after it against the file it creates.
    plan: (f) => (f.exists ? undefined : { summary: `create ${path}`, actions: [{ command: sh`touch ${path}` }], effects: { facts: { [exists.key]: true }, writes: [path] } }),
  });
};

const failing = defineOperation({ name: 'always fails', facts: {}, plan: () => ({ summary: 'fail', actions: [{ command: sh`echo boom >&2; exit 3` }] }) });

function setup() {
  const dir = tempDir('runner');
  const inv = defineInventory({
    hosts: { a: { connection: 'local', vars: { dir: join(dir, 'a') } }, b: { connection: 'local', vars: { dir: join(dir, 'b') } }, c: { connection: 'local', vars: { dir: join(dir, 'c') } } },
  });
  return { dir, inv, hosts: [...inv.hosts.values()] };
}

const task = defineTask({
  name: 'demo',
  vars: { dir: v.string() },
  async run(host, handler) {
    await host.run(defineOperation({ name: 'mkdir', facts: {}, plan: () => undefined }));
    await new LocalConnection('x').exec(sh`mkdir -p ${host.vars.dir}`);
    await host.run(touch(`${host.vars.dir}/one`, handler('log')));
    await host.run(touch(`${host.vars.dir}/two`, handler('log')));
    if (host.name === 'b') await host.run(failing);
    await host.run(touch(`${host.vars.dir}/three`));
  },
  handlers: {
    log: async (host) => {
      await new LocalConnection('x').exec(sh`echo ran >> ${`${host.vars.dir}/handler.log`}`);
    },
  },
});

t.test('runs hosts in parallel; a failing host does not stop the others; handlers run once', async (t) => {
  const { dir, hosts } = setup();
  const events: string[] = [];
  const result = await runTask(task, hosts, { connect: async (h) => new LocalConnection(h.name), onEvent: (e) => events.push(`${e.type}:${e.host}`) });
  const byName = Object.fromEntries(result.hosts.map((h) => [h.name, h]));
  t.equal(byName.a?.status, 'changed');
  t.equal(byName.c?.status, 'changed');
  t.equal(byName.b?.status, 'failed');
  t.same(byName.b?.steps.map((s) => s.status), ['ok', 'changed', 'changed', 'failed'], 'b stopped at the failing step');
  t.match(byName.b?.error, { phase: 'command', host: 'b', step: 'always fails', exitCode: 3, stderrTail: 'boom' });
  t.ok(existsSync(join(dir, 'a/three')));
  t.notOk(existsSync(join(dir, 'b/three')), 'no step after a failure');
  t.equal(readFileSync(join(dir, 'a/handler.log'), 'utf8'), 'ran\n', 'notified twice, ran once');
  t.notOk(existsSync(join(dir, 'b/handler.log')), 'handlers do not run after a failure');
  t.ok(events.includes('host:end:c'));

  const again = await runTask(task, hosts.filter((h) => h.name !== 'b'), { connect: async (h) => new LocalConnection(h.name) });
  t.same(again.hosts.map((h) => h.status), ['ok', 'ok'], 'second run changes nothing');
  t.equal(readFileSync(join(dir, 'a/handler.log'), 'utf8'), 'ran\n', 'handler not notified when nothing changed');
});

t.test('dry-run plans the same steps and changes nothing', async (t) => {
  const { dir, hosts } = setup();
  const only = hosts.filter((h) => h.name === 'a');
  const dry = await runTask(task, only, { dryRun: true, connect: async (h) => new LocalConnection(h.name) });
  t.notOk(existsSync(join(dir, 'a/one')));
  const real = await runTask(task, only, { connect: async (h) => new LocalConnection(h.name) });
  const changed = (r: typeof dry) => r.hosts[0]?.steps.filter((s) => s.status === 'changed').map((s) => s.name);
  t.same(changed(dry), changed(real));
  t.same(changed(real), ['touch ' + join(dir, 'a/one'), 'touch ' + join(dir, 'a/two'), 'touch ' + join(dir, 'a/three')]);
});

t.test('unreachable hosts are reported as such', async (t) => {
  const { hosts } = setup();
  const result = await runTask(task, hosts, {
    connect: async (h) => {
      if (h.name === 'a') throw new TackleError({ phase: 'connect', reason: 'no route to 10.0.0.1:22' });
      return new LocalConnection(h.name);
    },
  });
  t.equal(result.hosts[0]?.status, 'unreachable');
  t.match(result.hosts[0]?.error, { host: 'a', reason: /no route/ });
  t.equal(result.hosts[2]?.status, 'changed');
});

t.test('an aborted run starts no new steps and skips hosts not started', async (t) => {
  const { hosts } = setup();
  const abort = new AbortController();
  const result = await runTask(task, hosts, {
    concurrency: 1,
    signal: abort.signal,
    connect: async (h) => new LocalConnection(h.name),
    onEvent: (e) => {
      if (e.type === 'step:end' && e.host === 'a' && e.step.name.endsWith('one')) abort.abort();
    },
  });
  t.ok(result.interrupted);
  t.same(result.hosts.map((h) => h.status), ['changed', 'skipped', 'skipped']);
  t.equal(result.hosts[0]?.steps.length, 2, 'stopped after the step under way');
});

t.test('vars that do not fit the task are one error before any connection', async (t) => {
  const inv = defineInventory({ hosts: { x: { connection: 'local', vars: { dir: 3 } }, y: { connection: 'local' } } });
  let connected = 0;
  await t.rejects(
    runTask(task, [...inv.hosts.values()], { connect: async (h) => (connected++, new LocalConnection(h.name)) }),
    { phase: 'inventory', message: /host x: var dir must be a string, got number 3[\s\S]*host y: var dir is missing/ },
  );
  t.equal(connected, 0);
});

t.test('checks run on the controller after the actions, with a fresh connection on demand', async (t) => {
  const { hosts } = setup();
  let opened = 0;
  const seen: string[] = [];
  const checked = defineTask({
    name: 'checked',
    async run(host) {
      await host.run(
        defineOperation({
          name: 'with check',
          facts: {},
          plan: () => ({
            summary: 'act then check',
            actions: [{ command: sh`echo acted` }],
            checks: [
              {
                describe: 'a fresh login works',
                run: async (ctx) => {
                  const fresh = await ctx.openFresh();
                  seen.push(`${ctx.host}:${(await fresh.exec(sh`echo fresh`)).stdout.trim()}`);
                  await fresh.close();
                  if (ctx.host === 'b') throw new TackleError({ phase: 'operation', reason: 'login check failed' });
                },
              },
            ],
          }),
        }),
      );
    },
  });
  const result = await runTask(checked, hosts.slice(0, 2), { connect: async (h) => (opened++, new LocalConnection(h.name)) });
  t.same(seen.sort(), ['a:fresh', 'b:fresh']);
  t.equal(opened, 4, 'one connection per host for the run, one fresh per check');
  t.same(result.hosts.map((h) => h.status), ['changed', 'failed']);
  t.match(result.hosts[1]?.error, { host: 'b', step: 'with check', reason: 'login check failed' });
  t.same(result.hosts[0]?.steps[0]?.commands, ['echo acted', '(controller) a fresh login works']);
  const dry = await runTask(checked, hosts.slice(0, 1), { dryRun: true, connect: async (h) => new LocalConnection(h.name) });
  t.equal(dry.hosts[0]?.status, 'changed');
  t.equal(seen.length, 2, 'checks do not run in a dry-run');
});

t.test('rolling batches: serial count or percentage; max-fail stops further batches', async (t) => {
  const { batches } = await import('../../../lib/engine/runner.ts');
  t.same(batches([1, 2, 3, 4, 5]), [[1, 2, 3, 4, 5]]);
  t.same(batches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
  t.same(batches([1, 2, 3, 4, 5], '40%'), [[1, 2], [3, 4], [5]]);
  t.same(batches([1, 2, 3], '10%'), [[1], [2], [3]], 'at least one host per batch');

  const inv = defineInventory({ hosts: { h1: { connection: 'local' }, h2: { connection: 'local' }, h3: { connection: 'local' } } });
  const order: string[] = [];
  const flaky = defineTask({
    name: 'flaky',
    async run(host) {
      order.push(host.name);
      if (host.name === 'h1') await host.run(failing);
    },
  });
  const stop = await runTask(flaky, [...inv.hosts.values()], { serial: 1, maxFailPercent: 0, connect: async (h) => new LocalConnection(h.name) });
  t.same(stop.hosts.map((h) => h.status), ['failed', 'skipped', 'skipped']);
  t.same(order, ['h1'], 'no further batch started');
  order.length = 0;
  const goOn = await runTask(flaky, [...inv.hosts.values()], { serial: 1, maxFailPercent: 50, connect: async (h) => new LocalConnection(h.name) });
  t.same(goOn.hosts.map((h) => h.status), ['failed', 'skipped', 'skipped'], '100% failed after the first batch > 50%');
  const tolerant = await runTask(flaky, [...inv.hosts.values()], { serial: 2, maxFailPercent: 50, connect: async (h) => new LocalConnection(h.name) });
  t.same(tolerant.hosts.map((h) => h.status), ['failed', 'ok', 'ok'], '1 of 2 failed is not more than 50%');
});

t.test('checkVars lists every bad var of every host before anything connects', async (t) => {
  const strict = defineTask({ name: 'strict', vars: { port: v.port(), email: v.email(), upstreams: v.array(v.hostPort()) }, run: async () => {} });
  const inv = defineInventory({
    hosts: {
      a: { connection: 'local', vars: { port: 0, email: 'x', upstreams: ['ok:1'] } },
      b: { connection: 'local', vars: { port: 22, email: 'ops@example.com', upstreams: ['127.0.0.1:99999', 'not a host'] } },
      c: { connection: 'local', vars: { port: 22, email: 'ops@example.com', upstreams: [] } },
    },
  });
  let connected = 0;
  const run = runTask(strict, [...inv.hosts.values()], { connect: async (h) => (connected++, new LocalConnection(h.name)) });
  const err = (await run.then(
    () => undefined,
    (e: unknown) => e,
  )) as TackleError;
  t.ok(err instanceof TackleError);
  t.equal(err.phase, 'inventory');
  t.match(err.message, /host a: var port must be a port number \(1-65535\), got number 0\n {2}- host a: var email must be an e-mail address/);
  t.match(err.message, /host b: var upstreams\[0\] must be host:port.*"127\.0\.0\.1:99999"\n {2}- host b: var upstreams\[1\] must be host:port.*"not a host"/);
  t.notMatch(err.message, /host c/);
  t.equal(connected, 0, 'no host was connected to');
});

t.test('varWarnings: one warning naming every var the task does not declare, with the vars as data', async (t) => {
  const provisionish = defineTask({ name: 'provision', vars: { swapMb: v.integer().default(0), timezone: v.string().default('UTC') }, run: async () => {} });
  const inv = defineInventory({
    vars: { backup: { databases: ['app'] } },
    groups: { web: { vars: { timeZone: 'Europe/Berlin' } } },
    hosts: { web1: { connection: 'local', groups: ['web'], vars: { swapMB: 512 } }, web2: { connection: 'local', groups: ['web'] } },
  });
  const hosts = [...inv.hosts.values()].map((h) => ({ ...h, vars: { ...h.vars, colour: 'red' } }));
  t.same(varWarnings(provisionish, hosts), [
    {
      message: "task provision ignores vars it does not declare: timeZone (every host: did you mean timezone?); swapMB (web1: did you mean swapMb?); backup, colour (every host). Vars of other tasks can be named in the inventory's sharedVars",
      vars: [
        { path: 'backup', hosts: ['web1', 'web2'] },
        { path: 'timeZone', hosts: ['web1', 'web2'], suggestion: 'timezone' },
        { path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' },
        { path: 'colour', hosts: ['web1', 'web2'] },
      ],
    },
  ]);
  t.same(varWarnings(provisionish, hosts, new Set(['backup', 'colour'])).map((w) => w.vars.map((x) => x.path)), [['timeZone', 'swapMB']], 'shared vars are left out');
  t.same(varWarnings(provisionish, [{ ...hosts[0]!, vars: { swapMb: 1 } }]), [], 'no stray var, no warning');
});
