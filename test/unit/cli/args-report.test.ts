import t from 'tap';
import { parseCliArgs } from '../../../lib/cli/args.ts';
import { exitCodeOf, toJsonReport } from '../../../lib/engine/report.ts';
import { secret, sh } from '../../../lib/command/command.ts';
import { assertOk } from '../../../lib/connection/connection.ts';
import type { RunResult } from '../../../lib/engine/runner.ts';

t.test('flags', async (t) => {
  t.match(parseCliArgs([]), { inventory: './inventory.ts', dryRun: false, concurrency: 10, acceptNewHostKeys: false });
  t.match(parseCliArgs(['--dry-run', '--limit', 'web,db1', '--concurrency', '3', '--json', 'r.json', '--diff', '--verbose', '--accept-new-host-keys', '--inventory', 'x.ts']), {
    dryRun: true, limit: 'web,db1', concurrency: 3, json: 'r.json', diff: true, verbose: true, acceptNewHostKeys: true, inventory: 'x.ts',
  });
  t.throws(() => parseCliArgs(['--concurrency', '0']), TypeError);
  t.throws(() => parseCliArgs(['--nope']), TypeError);
  t.throws(() => parseCliArgs(['extra']), TypeError);
});

t.test('JSON report: shape, host summary, masked errors, exit codes', async (t) => {
  let error;
  try {
    assertOk({ command: sh`mysql -p${secret('hunter2')}`, exitCode: 1, signal: null, stdout: '', stderr: 'denied for hunter2', durationMs: 1 }, 'db1');
  } catch (e) {
    error = e;
  }
  const result: RunResult = {
    task: 't', dryRun: false, interrupted: false, startedAt: new Date(0), durationMs: 5,
    hosts: [
      { name: 'a', status: 'changed', durationMs: 1, steps: [{ name: 's', status: 'changed', durationMs: 1 }] },
      { name: 'db1', status: 'failed', durationMs: 1, steps: [{ name: 'q', status: 'failed', durationMs: 1, error: error as never }], error: error as never },
      { name: 'c', status: 'unreachable', durationMs: 1, steps: [] },
    ],
  };
  const report = toJsonReport(result);
  t.same(report.summary, { ok: 0, changed: 1, failed: 1, unreachable: 1, skipped: 0 });
  t.equal(report.startedAt, '1970-01-01T00:00:00.000Z');
  const text = JSON.stringify(report);
  t.notMatch(text, /hunter2/, 'no secret in the report');
  t.match(report.hosts[1]?.error, { phase: 'command', host: 'db1', exitCode: 1, command: 'mysql -p***', stderrTail: 'denied for ***' });
  t.equal(exitCodeOf(result), 2);
  t.equal(exitCodeOf({ ...result, hosts: result.hosts.slice(0, 1) }), 0);
  t.equal(exitCodeOf({ ...result, interrupted: true, hosts: result.hosts.slice(0, 1) }), 130);
  t.equal(exitCodeOf({ ...result, interrupted: true, hosts: result.hosts.slice(0, 1) }, 'SIGTERM'), 143);
  // A step stopped by the interrupt fails its host; the exit code still says the run was interrupted.
  t.equal(exitCodeOf({ ...result, interrupted: true }, 'SIGINT'), 130);
  t.equal(exitCodeOf({ ...result, interrupted: true }, 'SIGTERM'), 143);
});

t.test('serial, max-fail, --var and task flags', async (t) => {
  t.match(parseCliArgs(['--serial', '2', '--max-fail', '0']), { serial: 2, maxFail: 0, vars: {} });
  t.match(parseCliArgs(['--serial', '25%']), { serial: '25%' });
  t.throws(() => parseCliArgs(['--serial', '0']), TypeError);
  t.throws(() => parseCliArgs(['--serial', '150%']), TypeError);
  t.throws(() => parseCliArgs(['--max-fail', '101']), TypeError);
  t.same(parseCliArgs(['--var', 'port=8080', '--var', 'name=web', '--var', 'list=["a"]']).vars, { port: 8080, name: 'web', list: ['a'] });
  t.throws(() => parseCliArgs(['--var', 'novalue']), TypeError);
  const flags = { ref: { type: 'string', description: 'git ref' }, keep: { type: 'number', description: 'releases kept', var: 'keepReleases' }, force: { type: 'boolean', description: 'force' } } as const;
  t.same(parseCliArgs(['--ref', 'v1.2', '--keep', '5', '--force'], flags).vars, { ref: 'v1.2', keepReleases: 5, force: true });
  t.throws(() => parseCliArgs(['--keep', 'many'], flags), TypeError);
  t.throws(() => parseCliArgs(['--ref', 'x']), TypeError, 'unknown without the task flag');
});

t.test('--lock-timeout: seconds to wait for another run on a host', async (t) => {
  t.equal(parseCliArgs([]).lockTimeout, 300, 'a few minutes by default');
  t.equal(parseCliArgs(['--lock-timeout', '2.5']).lockTimeout, 2.5);
  t.equal(parseCliArgs(['--lock-timeout', '0']).lockTimeout, 0, '0: fail at once when busy');
  t.throws(() => parseCliArgs(['--lock-timeout=-1']), { name: 'TypeError', message: /--lock-timeout takes a number of seconds/ });
  t.throws(() => parseCliArgs(['--lock-timeout', 'soon']), TypeError);
});

t.test('JSON report carries the handler notifications kept on a host', async (t) => {
  const handlers = { earlier: [{ handler: 'reload nginx', step: 'nginx.site app', at: '2026-11-30T10:00:00.000Z', by: 'ctl (pid 42)' }], ran: ['reload nginx'], outstanding: [] };
  const report = toJsonReport({ task: 't', dryRun: false, interrupted: false, startedAt: new Date(0), durationMs: 1, hosts: [{ name: 'a', status: 'changed', durationMs: 1, steps: [], handlers }] });
  t.same(report.hosts[0]?.handlers, handlers);
});
