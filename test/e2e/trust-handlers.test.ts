// Issue 8 item 10: a notified handler is never lost. A step changes nginx's configuration and
// notifies `reload nginx`; a later step fails, so the handler does not run in that run. The
// notification is recorded on the host before the change, so the next run (which finds the file
// already in place and notifies nothing) still reloads nginx, says so, and nginx serves the new
// configuration. The same holds when the controller is SIGKILLed after the change, while a later
// step runs: nothing on the controller could record anything then, so the record on the host must
// have been written before. nginx comes from apt through the lab's proxy, as on a real host.
import t, { type Test } from 'tap';
import { poll, run } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli, startTaskCli } from './support/cli.ts';
import { writeTaskFile } from './support/task-file.ts';

const lab = await withLab(t, 1);
const inventory = await labInventory(lab);
const address = lab.host('lab1').address;
/** The blocking step's mark on the host: the controller is past the notifying change. */
const BLOCKED = '/run/tackle-test-blocked';
const task = await writeTaskFile(
  'site',
  ['apt', 'files', 'shell', 'systemd', 'sh', 'v'],
  `{
  name: 'site',
  vars: { body: v.string(), fail: v.boolean().default(false), block: v.boolean().default(false) },
  async run(host) {
    const BLOCKED = ${JSON.stringify(BLOCKED)};
    await host.run(apt.packages({ names: ['nginx'] }));
    const conf = 'server { listen 8081; location / { return 200 "' + host.vars.body + '"; } }\\n';
    await host.run(files.file({ path: '/etc/nginx/conf.d/tackle-test.conf', content: conf, notify: 'reload nginx' }));
    if (host.vars.block) await host.run(shell({ name: 'a later step that blocks', command: sh\`touch \${BLOCKED} && sleep 120\` }));
    if (host.vars.fail) await host.run(shell({ name: 'a later step that fails', command: sh\`echo the mirror is down >&2; exit 1\` }));
  },
  handlers: { 'reload nginx': (host) => host.run(systemd.service({ name: 'nginx', state: 'reloaded' })) },
}`,
);

const HANDLER_STEP = 'reload nginx › systemd.service nginx reloaded';
const serves = async (): Promise<string> => (await run('curl', ['-s', '--max-time', '5', `http://${address}:8081/`])).stdout;
// nginx's reload returns before its new workers answer: wait a few seconds for `body`, then say what it serves.
const servesSoon = async (body: string): Promise<string> => {
  for (let i = 0; i < 50; i++) {
    const got = await serves();
    if (got === body) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  return serves();
};
const cli = (...args: string[]) => runTaskCli(task, ['--inventory', inventory, ...args], { CI: '1' });
const PENDING_RAN = /lab1: handler "reload nginx" was pending from an earlier run \(notified by files\.file \/etc\/nginx\/conf\.d\/tackle-test\.conf[^\n]*\): ran/;
const records = async (): Promise<string> => (await lab.ssh('lab1', 'ls -A /var/lib/tackle/pending/site 2>/dev/null | wc -l')).stdout.trim();

/** A plain run with the file already holding `body`: it runs the pending handler and nothing else, says so, and nginx serves `body`. */
async function rerunRunsPending(t: Test, body: string): Promise<void> {
  const rerun = await cli('--var', `body=${body}`);
  t.equal(rerun.code, 0, 'the plain rerun', { stdout: rerun.stdout.slice(-3000), stderr: rerun.stderr });
  t.same(changedSteps(rerun.report).lab1, [HANDLER_STEP], 'the file was already in place; the pending handler ran');
  t.match(rerun.stdout, PENDING_RAN, 'the recap says the handler was pending and ran');
  t.equal(await servesSoon(body), body, 'nginx serves the new configuration');
  t.equal(await records(), '0', 'no record left on the host');
}

t.test('change + notify, then a failing step: the next run reloads and nginx serves the new configuration', async (t) => {
  const first = await cli('--var', 'body=v1');
  t.equal(first.code, 0, 'first run', { stdout: first.stdout.slice(-3000), stderr: first.stderr });
  t.equal(await serves(), 'v1', 'nginx serves v1');

  const broken = await cli('--var', 'body=v2', '--var', 'fail=true');
  t.equal(broken.code, 2, 'the later step fails the host');
  t.match((await lab.ssh('lab1', 'cat /etc/nginx/conf.d/tackle-test.conf')).stdout, /"v2"/, 'the v2 file is in place');
  t.equal(await serves(), 'v1', 'the handler did not run after the failure: nginx still serves v1');
  t.notOk(changedSteps(broken.report).lab1?.includes(HANDLER_STEP));
  t.match(broken.stdout, /lab1: handler "reload nginx" stays pending on the host/, 'the recap says the handler is still owed');

  const dry = await cli('--var', 'body=v2', '--dry-run');
  t.equal(dry.code, 0);
  t.match(dry.stdout, /lab1: handler "reload nginx" is pending from an earlier run \(notified by files\.file \/etc\/nginx\/conf\.d\/tackle-test\.conf/, 'the plan names the pending handler');
  t.same(changedSteps(dry.report).lab1, [HANDLER_STEP], 'the plan: nothing but the pending handler');
  t.equal(await serves(), 'v1', 'the dry-run reloaded nothing');

  await rerunRunsPending(t, 'v2');

  const third = await cli('--var', 'body=v2');
  t.equal(third.code, 0);
  t.same(changedSteps(third.report).lab1, [], 'nothing is pending any more: the third run changes nothing');
  t.equal(await records(), '0', 'no record left on the host');
});

t.test('the controller SIGKILLed after the change, before the handler: the record was on the host; a plain rerun reloads', async (t) => {
  await lab.ssh('lab1', `rm -f ${BLOCKED}`);
  const killed = await startTaskCli(task, ['--inventory', inventory, '--var', 'body=v3', '--var', 'block=true'], { CI: '1' });
  await poll(async () => ((await lab.ssh('lab1', `test -e ${BLOCKED}`)).code === 0 ? true : undefined), {
    timeoutMs: 120_000,
    intervalMs: 100,
    onTimeout: () => new Error('the blocking step never started on lab1'),
  });
  process.kill(killed.pid, 'SIGKILL');
  t.equal((await killed.done).code, 137, 'the controller died by SIGKILL');
  t.match((await lab.ssh('lab1', 'cat /etc/nginx/conf.d/tackle-test.conf')).stdout, /"v3"/, 'the v3 file is in place');
  t.equal(await serves(), 'v2', 'the handler never ran: nginx still serves v2');
  t.equal(await records(), '1', 'the notification is recorded on the host');

  await rerunRunsPending(t, 'v3');
});
