import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import type { JsonReport } from '../../../lib/engine/report.ts';
import { failureMessage, postWebhook } from '../../../lib/backup/webhook.ts';
import { startWebhook } from '../../../lab/webhook.ts';

const report = (hosts: JsonReport['hosts']): JsonReport => ({
  task: 'nightly-backup',
  dryRun: false,
  interrupted: false,
  startedAt: '2026-11-22T02:00:00.000Z',
  durationMs: 1000,
  hosts,
  summary: { ok: 0, changed: 0, failed: 0, unreachable: 0, skipped: 0 },
});

t.test('failureMessage names each failed host and its step, and masks secrets', async (t) => {
  const r = report([
    { name: 'db1', status: 'changed', durationMs: 1, steps: [] },
    {
      name: 'db2',
      status: 'failed',
      durationMs: 1,
      steps: [
        { name: 'apt.packages rclone', status: 'ok', durationMs: 1 },
        {
          name: 'rclone.copy /var/backups/postgresql → r2:backups/db2',
          status: 'failed',
          durationMs: 1,
          error: { message: 'm', phase: 'command', reason: 'command exited with code 1', stderrTail: 'ERROR: key AKIA-SECRET refused\nFailed to copy: connection refused' },
        },
      ],
    },
    { name: 'db3', status: 'unreachable', durationMs: 1, steps: [], error: { message: 'm', phase: 'connect', reason: 'no SSH answer from 10.0.0.3:22 within 10s' } },
  ]);
  const payload = failureMessage(r, { secrets: ['AKIA-SECRET'] });
  t.same(payload, {
    text: [
      'tackle nightly-backup failed on 2 of 3 host(s) (started 2026-11-22T02:00:00.000Z)',
      '• db2: step `rclone.copy /var/backups/postgresql → r2:backups/db2` failed: command exited with code 1: Failed to copy: connection refused',
      '• db3: unreachable: no SSH answer from 10.0.0.3:22 within 10s',
    ].join('\n'),
  });
  const leaky = failureMessage(report([{ name: 'h', status: 'failed', durationMs: 1, steps: [{ name: 's', status: 'failed', durationMs: 1, error: { message: '', phase: 'task', reason: 'key AKIA-SECRET x' } }] }]), { secrets: ['AKIA-SECRET'] });
  t.equal(leaky?.text.includes('AKIA-SECRET'), false);
  t.match(leaky?.text, /key \*\*\* x/);
  t.equal(failureMessage(report([{ name: 'db1', status: 'ok', durationMs: 1, steps: [] }])), undefined, 'nothing failed: no message');
});

t.test('postWebhook posts JSON and never throws; failures do not show the URL', async (t) => {
  const hook = await startWebhook();
  t.teardown(() => hook.close());
  t.same(await postWebhook(secret(hook.url), { text: 'hello' }), { ok: true, status: 200 });
  const [post] = await hook.waitFor(1);
  t.same(post, { path: '/hooks/backup', contentType: 'application/json', body: '{"text":"hello"}' });
  const closed = await startWebhook();
  await closed.close();
  const down = await postWebhook(secret(`${closed.url.replace('/hooks/backup', '')}/secret-token-path`), { text: 'x' });
  t.equal(down.ok, false);
  t.notMatch(JSON.stringify(down), /secret-token-path/);
  t.match(down, { reason: /could not be reached \(TypeError: ECONNREFUSED\)/ });
});
