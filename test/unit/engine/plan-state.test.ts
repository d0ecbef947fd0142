// A task planned as a whole: facts in one round trip, each step planned against the state the
// earlier ones leave, unknown where nothing predicts it, and only invalidated facts read again.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { sh } from '../../../lib/command/command.ts';
import type { Connection } from '../../../lib/connection/connection.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { UNKNOWN_SUMMARY } from '../../../lib/engine/host-run.ts';
import { afterEach, defineOperation, UNKNOWN, type Effects, type HandlerRef } from '../../../lib/ops/operation.ts';
import { afterChange, FactState, pathsMeet } from '../../../lib/engine/plan-state.ts';
import { runTask, type RunEvent } from '../../../lib/engine/runner.ts';
import { defineTask, type StepEntry } from '../../../lib/engine/task.ts';
import { defineFact } from '../../../lib/facts/fact.ts';
import { defineInventory } from '../../../lib/inventory/inventory.ts';
import { files } from '../../../lib/ops/files.ts';
import { shell } from '../../../lib/ops/shell.ts';
import { execSpy } from '../../support/exec-spy.ts';
import { tempDir } from '../../support/temp-dir.ts';

const exists = (path: string) => defineFact(`exists:${path}`, sh`test -e ${path}`, (o) => o.exitCode === 0, { reads: [path] });

/** Creates `path` when missing; with `predict`, says so to the steps after it. */
const touch = (path: string, predict = true, notify?: HandlerRef) =>
  defineOperation({
    name: `touch ${path}${predict ? '' : ' (no effects)'}`,
    facts: { there: exists(path) },
    options: notify ? { notify } : {},
    plan: ({ there }) =>
      there ? undefined : { summary: `create ${path}`, actions: [{ command: sh`touch ${path}` }], ...(predict ? { effects: { facts: { [exists(path).key]: true }, writes: [path] } } : {}) },
  });

/** A connection that records each command it runs on this machine. */
function recording(host: string, log: string[]): Connection {
  return execSpy(new LocalConnection(host), (command) => log.push(command.toString()));
}

/** Runs a declarative task of these steps on one local host; returns the steps and the commands sent. */
async function run(steps: (dir: string) => StepEntry[], opts: { dryRun?: boolean; dir?: string; handlers?: boolean } = {}) {
  const dir = opts.dir ?? tempDir('plan');
  const state = tempDir('plan-state');
  const task = defineTask({
    name: 'planned',
    steps: (_, handler) => [...steps(dir), opts.handlers && touch(join(dir, 'notifier'), true, handler('after'))],
    handlers: { after: () => [touch(join(dir, 'handled'))] },
  });
  const inv = defineInventory({ hosts: { h: { connection: 'local' } } });
  const log: string[] = [];
  const events: RunEvent[] = [];
  const result = await runTask(task, [...inv.hosts.values()], {
    dryRun: opts.dryRun ?? false,
    connect: async (h) => recording(h.name, log),
    hostPaths: () => ({ lock: join(state, 'lock'), state: join(state, 'state') }),
    onEvent: (e) => events.push(e),
  });
  const host = result.hosts[0];
  if (!host) throw new Error('no host');
  const factBatches = log.filter((c) => c.includes('__TACKLE_')).length;
  return { dir, host, steps: host.steps.map((s) => `${s.status} ${s.name}${s.summary ? `: ${s.summary}` : ''}`), factBatches, log, events };
}

t.test('dry-run: the facts of every step in one round trip, each step planned against what the earlier ones leave', async (t) => {
  const r = await run((d) => [touch(join(d, 'a')), touch(join(d, 'a')), touch(join(d, 'b'))], { dryRun: true });
  t.same(r.steps, [`changed touch ${r.dir}/a: create ${r.dir}/a`, `ok touch ${r.dir}/a`, `changed touch ${r.dir}/b: create ${r.dir}/b`]);
  t.equal(r.factBatches, 1, 'one fact batch for the whole task');
  t.notOk(existsSync(join(r.dir, 'a')), 'nothing changed');
  const ends = r.events.filter((e) => e.type === 'step:end').length;
  t.equal(ends, 3, 'every step is shown');
});

t.test('a step after a change that says nothing of its effects is unknown, never ok', async (t) => {
  const r = await run((d) => [touch(join(d, 'a'), false), touch(join(d, 'a'))], { dryRun: true });
  t.equal(r.steps[1], `unknown touch ${r.dir}/a: ${UNKNOWN_SUMMARY} (there)`);
  t.equal(r.host.status, 'changed', 'the host may change');
});

t.test('real run: the dry-run said exactly this; only invalidated facts are read again, batched', async (t) => {
  const steps = (d: string) => [touch(join(d, 'a')), touch(join(d, 'b')), touch(join(d, 'a')), touch(join(d, 'c'))];
  const dry = await run(steps, { dryRun: true });
  const real = await run(steps, { dir: dry.dir });
  t.same(real.steps, dry.steps, 'same status and summary per step');
  t.ok(existsSync(join(real.dir, 'a')) && existsSync(join(real.dir, 'c')));
  // Before step 3 only exists:a is stale (touch b wrote elsewhere): one more batch, with a and nothing else.
  t.equal(real.factBatches, 2, 'the first batch, then one for what touch a invalidated');
  const second = real.log.filter((c) => c.includes('__TACKLE_'))[1] ?? '';
  t.match(second, `${real.dir}/a`);
  t.notMatch(second, `${real.dir}/b`);
  t.notMatch(second, `${real.dir}/c`, 'c was read in the first batch and nothing invalidated it');
  const again = await run(steps, { dir: dry.dir });
  t.equal(again.host.status, 'ok');
  t.equal(again.factBatches, 1, 'a converged host: one round trip for the lock and all facts');
  t.equal(again.log.length, 1, 'the facts rode with the lock: one command in all');
});

t.test('a guard after a change is unknown: its command may answer otherwise', async (t) => {
  const r = await run((d) => [touch(join(d, 'a')), shell({ name: 'guarded', command: sh`true`, unless: sh`test -e ${join(d, 'x')}` })], { dryRun: true });
  t.match(r.steps[1], /^unknown shell guarded:/);
  const before = await run((d) => [shell({ name: 'guarded', command: sh`true`, unless: sh`test -e ${join(d, 'x')}` })], { dryRun: true });
  const after = await run((d) => [shell({ name: 'marks', command: sh`touch ${join(d, 'm')}`, creates: join(d, 'm'), writes: [join(d, 'm')] }), touch(join(d, 'a'))], { dryRun: true });
  t.match(after.steps[1], /^changed touch/, 'a command that says what it writes leaves the rest known');
  t.match(before.steps[0], /^changed shell guarded: run true/, 'known when nothing changed before it');
});

t.test('handlers given as steps are planned against the state the task leaves', async (t) => {
  const r = await run(() => [], { dryRun: true, handlers: true });
  t.same(
    r.steps.map((s) => s.split(':')[0]),
    [`changed touch ${r.dir}/notifier`, `changed after › touch ${r.dir}/handled`],
  );
});

t.test('steps must be operations', async (t) => {
  t.throws(() => defineTask({ name: 'x' } as never), TypeError);
  const bad = await run(() => [Promise.resolve() as never], { dryRun: true });
  t.match(bad.host.error?.reason, /not an operation.*Promise/);
});

t.test('pure: paths meet, facts after a change', async (t) => {
  t.ok(pathsMeet('/etc/nginx/sites-enabled/app', '/etc/nginx/'), 'a write inside a tree a fact reads');
  t.ok(pathsMeet('/etc/nginx/', '/etc/nginx/nginx.conf'), 'a path inside a tree written');
  t.ok(pathsMeet('/srv/app', '/srv/app/'), 'the same path');
  t.notOk(pathsMeet('/srv/app', '/srv/app/index.html'), 'creating a directory leaves what is inside as it was');
  t.notOk(pathsMeet('/etc/nginx2/', '/etc/nginx/'));
  const f = exists('/x');
  const anyRead = defineFact('any', sh`true`, () => 1);
  t.equal(afterChange(f, false, { facts: { [f.key]: true } }), true, 'predicted');
  t.equal(afterChange(f, false, { writes: ['/'] }), UNKNOWN, 'a write of the whole tree above it');
  t.equal(afterChange(f, false, { writes: ['/y'] }), false, 'a write elsewhere');
  t.equal(afterChange(anyRead, 1, { writes: ['/y'] }), UNKNOWN, 'a fact that does not say what it reads: any write');
  t.equal(afterChange(anyRead, 1, {}), 1, 'no writes at all');
  t.equal(afterChange(f, false, undefined), UNKNOWN, 'no effects: anything may change');
  t.equal(afterChange(f, false, { update: { [f.key]: (b: boolean) => !b } }), true, 'updated from its value before');
  t.equal(afterChange(f, UNKNOWN, { update: { [f.key]: (b: boolean) => !b } }), UNKNOWN, 'unknown stays unknown');
  const both: Effects | undefined = afterEach({ writes: ['/a'] }, { facts: { k: 1 }, touches: (k) => k === 'z' });
  t.same(both?.writes, ['/a']);
  t.equal(both?.touches?.('z'), true);
  t.equal(afterEach({}, undefined), undefined, 'a part without effects: the whole may change anything');
  const state = new FactState(true);
  state.changed({ facts: { [f.key]: true } });
  state.store([f], [false]);
  t.equal(state.get(f.key), true, 'a fact read after a planned change carries its effect');
});

t.test('files: creating a directory leaves what is inside it as it was (missing)', async (t) => {
  const r = await run((d) => [files.directory({ path: join(d, 'x/y') }), touch(join(d, 'x/y/z'))], { dryRun: true });
  t.same(r.steps, [`changed files.directory ${r.dir}/x/y: create directory ${r.dir}/x/y`, `changed touch ${r.dir}/x/y/z: create ${r.dir}/x/y/z`]);
});
