// Issue 8 item 10: a notified handler is never lost. A step changes nginx's configuration and
// notifies `reload nginx`; a later step fails, so the handler does not run in that run. The
// notification is recorded on the host before the change, so the next run (which finds the file
// already in place and notifies nothing) still reloads nginx, says so, and nginx serves the new
// configuration. nginx comes from apt through the lab's proxy, as on a real host.
import t from 'tap';
import { run } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { changedSteps, labInventory, runTaskCli } from './support/cli.ts';
import { writeTaskFile } from './support/task-file.ts';

const lab = await withLab(t, 1);
const inventory = await labInventory(lab);
const address = lab.host('lab1').address;
const task = await writeTaskFile(
  'site',
  ['apt', 'files', 'shell', 'systemd', 'sh', 'v'],
  `{
  name: 'site',
  vars: { body: v.string(), fail: v.boolean().default(false) },
  async run(host) {
    await host.run(apt.packages({ names: ['nginx'] }));
    const conf = 'server { listen 8081; location / { return 200 "' + host.vars.body + '"; } }\\n';
    await host.run(files.file({ path: '/etc/nginx/conf.d/tackle-test.conf', content: conf, notify: 'reload nginx' }));
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

  const second = await cli('--var', 'body=v2');
  t.equal(second.code, 0, 'second run', { stdout: second.stdout.slice(-3000), stderr: second.stderr });
  t.same(changedSteps(second.report).lab1, [HANDLER_STEP], 'the file was already in place; the pending handler ran');
  t.match(second.stdout, /lab1: handler "reload nginx" was pending from an earlier run \(notified by files\.file \/etc\/nginx\/conf\.d\/tackle-test\.conf[^\n]*\): ran/, 'the recap says so');
  t.equal(await servesSoon('v2'), 'v2', 'nginx serves the new configuration');

  const third = await cli('--var', 'body=v2');
  t.equal(third.code, 0);
  t.same(changedSteps(third.report).lab1, [], 'nothing is pending any more: the third run changes nothing');
  t.equal((await lab.ssh('lab1', 'ls -A /var/lib/tackle/pending/site 2>/dev/null | wc -l')).stdout, '0\n', 'no record left on the host');
});
