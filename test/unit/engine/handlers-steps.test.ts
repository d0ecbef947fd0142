// Handlers that cannot be misspelt, and one step at a time per host: type-level tests (each
// ts-expect-error directive below must be a compile error; `npm test` runs tsc over this file), then what the
// runner does with a JavaScript typo, a name built at run time and a missing `await`, read back
// from the files the fake hosts (directories on this machine) were left with.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { defineOperation, type HandlerRef } from '../../../lib/ops/operation.ts';
import { runTask } from '../../../lib/engine/runner.ts';
import { defineTask, type Task } from '../../../lib/engine/task.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory, type InventoryHost } from '../../../lib/inventory/inventory.ts';
import { v } from '../../../lib/inventory/vars.ts';
import { files } from '../../../lib/ops/files.ts';
import { tempDir } from '../../support/temp-dir.ts';

const ROOT = resolve(import.meta.dirname, '../../..');

/** Creates `path` (after `seconds`) unless it exists; notifies `notify`. */
const touch = (path: string, opts: { seconds?: number; notify?: HandlerRef | readonly HandlerRef[] } = {}) =>
  defineOperation({
    name: `touch ${path}`,
    facts: { exists: defineFact(`exists:${path}`, sh`test -e ${path}`, (o) => o.exitCode === 0) },
    options: opts.notify ? { notify: opts.notify } : {},
    plan: ({ exists }) => (exists ? undefined : { summary: `create ${path}`, actions: [{ command: sh`sleep ${opts.seconds ?? 0} && touch ${path}` }] }),
  });

function setup(names: readonly string[] = ['a', 'b']) {
  const dir = tempDir('handlers');
  const inv = defineInventory({ hosts: Object.fromEntries(names.map((n) => [n, { connection: 'local' as const, vars: { dir: join(dir, n) } }])) });
  const hosts = [...inv.hosts.values()];
  for (const h of hosts) new LocalConnection('x').exec(sh`mkdir -p ${join(dir, h.name)}`);
  const options = {
    connect: async (h: InventoryHost) => new LocalConnection(h.name),
    hostPaths: (h: InventoryHost) => ({ lock: join(dir, 'lock', h.name), state: join(dir, 'state', h.name) }),
  };
  const at = (host: string, file: string) => join(dir, host, file);
  return { dir, hosts, options, at };
}

const reloadLog = (host: { vars: { dir: string } }) => files.line({ path: join(host.vars.dir, 'reloads'), line: 'reloaded', create: true });

// --- Type level -------------------------------------------------------------------------------

export const typed = defineTask({
  name: 'typed',
  vars: { dir: v.string() },
  async run(host, handler) {
    await host.run(touch(join(host.vars.dir, 'x'), { notify: handler('reload app') }));
    await host.run(touch(join(host.vars.dir, 'y'), { notify: [handler('reload app'), handler('flush cache')] }));
    // @ts-expect-error a misspelt handler name is a type error
    await host.run(touch(join(host.vars.dir, 'z'), { notify: handler('reload ap') }));
    // @ts-expect-error notify takes the task's handlers, not a plain string
    await host.run(files.file({ path: '/x', content: '', notify: 'reload app' }));
  },
  // Written after `run`: the handler names are inferred from these keys all the same.
  handlers: {
    'reload app': async (host) => host.run(reloadLog(host)),
    'flush cache': async () => {},
  },
});

export function typeOnly(): void {
  typed.handler('flush cache');
  // @ts-expect-error the task's handler lookup knows its names too
  typed.handler('flush');
  defineTask({
    name: 'no handlers',
    async run(_host, handler) {
      // @ts-expect-error a task without handlers has no name to notify
      handler('anything');
    },
  });
}

// --- Names checked at run time (JavaScript, names built while running) ------------------------

t.test('a handler name the task lacks is a TypeError naming the handlers it has', async (t) => {
  t.equal(typed.handler('reload app').name, 'reload app');
  t.throws(() => (typed as Task).handler('reload ap'), new TypeError('task typed has no handler "reload ap" (its handlers: "reload app", "flush cache")'));
  t.throws(() => defineTask({ name: 'bad', run: async () => {}, handlers: { x: 'not a function' as never } }), /handler "x" must be a function/);
  t.throws(() => files.file({ path: '/x', content: '', notify: [undefined as never] }), /notify takes the task's handlers/, 'an undefined from a misspelt lookup is not a notification lost');
});

t.test('JavaScript: a misspelt handler() fails that host before the step touches it; a string name is checked before the step', async (t) => {
  const { hosts, options, at } = setup(['a', 'b', 'c']);
  const js = defineTask({
    name: 'js',
    vars: { dir: v.string() },
    // As a JavaScript task file (or a name built at run time) would: no type stops these names.
    async run(host, handler: (name: string) => HandlerRef) {
      const lookup = host.name === 'a' ? 'reload ap' : 'reload app';
      const notify = host.name === 'b' ? ({ kind: 'tackle.handler', name: `reload ${'APP'.toLowerCase()}s` } as const) : handler(lookup);
      await host.run(touch(join(host.vars.dir, 'conf'), { notify }));
    },
    handlers: { 'reload app': async (host) => host.run(reloadLog(host)) },
  });
  const result = await runTask(js as Task, hosts, options);
  t.same(result.hosts.map((h) => h.status), ['failed', 'failed', 'changed']);
  t.match(result.hosts[0]?.error, { host: 'a', reason: 'task js has no handler "reload ap" (its handlers: "reload app")' });
  t.match(result.hosts[1]?.error, { host: 'b', step: `touch ${at('b', 'conf')}`, reason: /^notify names "reload apps", not a handler of task js \(its handlers: "reload app"\); nothing was changed$/ });
  t.notOk(existsSync(at('a', 'conf')), 'a: nothing changed');
  t.notOk(existsSync(at('b', 'conf')), 'b: the step that notifies an unknown name changed nothing');
  t.equal(readFileSync(at('c', 'reloads'), 'utf8'), 'reloaded\n', 'c, with the right name, was changed and its handler ran');
});

t.test('CLI: a misspelt name looked up when the task module loads exits 1 before any host is contacted', async (t) => {
  const dir = tempDir('handlers-cli');
  const inv = join(dir, 'inventory.mts');
  writeFileSync(inv, `import { defineInventory } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};\nexport default defineInventory({ hosts: { here: { connection: 'local' } } });\n`);
  const task = join(dir, 'task.mjs');
  writeFileSync(
    task,
    `import { defineTask, files, runCli, sh, shell } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
const task = defineTask({ name: 'cli', async run(host) { await host.run(shell({ name: 'contact', command: sh\`touch ${join(dir, 'contacted')}\` })); await host.run(conf); },
  handlers: { 'reload app': async () => {} } });
const service = 'apps';
const conf = files.file({ path: ${JSON.stringify(join(dir, 'conf'))}, content: 'x', notify: task.handler(\`reload \${service}\`) });
process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
  );
  const r = spawnSync(process.execPath, ['--import', 'tsx', task, '--inventory', inv], { encoding: 'utf8', cwd: ROOT, timeout: 60_000 });
  t.equal(r.status, 1, 'exit 1');
  t.match(r.stderr, /TypeError: task cli has no handler "reload apps" \(its handlers: "reload app"\)/);
  t.notOk(existsSync(join(dir, 'contacted')), 'no host was contacted');
});

// --- One step at a time per host ----------------------------------------------------------------

t.test('a step started while another of the same host runs fails that host, naming both; other hosts are untouched', async (t) => {
  const { hosts, options, at } = setup(['a', 'b']);
  const events: string[] = [];
  const racy = defineTask({
    name: 'racy',
    vars: { dir: v.string() },
    async run(host) {
      const slow = touch(join(host.vars.dir, 'slow'), { seconds: 0.5 });
      const next = touch(join(host.vars.dir, 'next'));
      if (host.name === 'a') {
        void host.run(slow); // the missing await
        await host.run(next);
      } else {
        await host.run(slow);
        await host.run(next);
      }
    },
  });
  const result = await runTask(racy, hosts, { ...options, onEvent: (e) => events.push(`${e.type}:${e.host}`) });
  const [a, b] = result.hosts;
  t.equal(a?.status, 'failed');
  t.match(a?.error, { phase: 'task', host: 'a', step: `touch ${at('a', 'next')}`, reason: `step "touch ${at('a', 'next')}" started while step "touch ${at('a', 'slow')}" was still running on this host: await each host.run(…), a host runs one step at a time` });
  t.notOk(existsSync(at('a', 'next')), 'the second step did not run');
  t.ok(existsSync(at('a', 'slow')), 'the step under way finished before the host was let go');
  t.same(a?.steps.map((s) => s.status), ['failed', 'changed']);
  t.ok(events.indexOf('host:end:a') > events.lastIndexOf('step:end:a'), 'no step event after the host ended');
  t.equal(b?.status, 'changed');
  t.ok(existsSync(at('b', 'slow')) && existsSync(at('b', 'next')), 'b ran both steps');
});

t.test('a step still running when the task body returns fails the host; so does one that failed unawaited', async (t) => {
  const { hosts, options, at } = setup(['a', 'b']);
  const loose = defineTask({
    name: 'loose',
    vars: { dir: v.string() },
    async run(host, handler) {
      if (host.name === 'a') void host.run(touch(join(host.vars.dir, 'slow'), { seconds: 0.3, notify: handler('reload') }));
      else void host.run(defineOperation({ name: 'fails', facts: {}, plan: () => ({ summary: 'fail', actions: [{ command: sh`exit 4` }] }) }));
      // a returns while its step runs; b long after its step failed.
      await new Promise((r) => setTimeout(r, host.name === 'a' ? 50 : 1500));
    },
    handlers: { reload: async (host) => host.run(reloadLog(host)) },
  });
  const result = await runTask(loose, hosts, options);
  t.same(result.hosts.map((h) => h.status), ['failed', 'failed']);
  t.match(result.hosts[0]?.error, { reason: `step "touch ${at('a', 'slow')}" was still running when the task body returned: await each host.run(…)` });
  t.ok(existsSync(at('a', 'slow')), 'the step finished');
  t.notOk(existsSync(at('a', 'reloads')), 'no handler runs after a body that did not wait for its steps');
  t.match(result.hosts[1]?.error, { step: 'fails', exitCode: 4 });
});
