import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import type { Operation } from '../../../lib/ops/operation.ts';
import { shell } from '../../../lib/ops/shell.ts';
import { runOp } from '../../support/run-op.ts';
import { handlerRef } from '../../support/handler.ts';

const plan = (op: Operation, facts: Record<string, unknown>) => op.plan(facts);
const commands = (op: Operation, facts: Record<string, unknown>): string[] | undefined => plan(op, facts)?.actions.map((a) => a.command.toString());

t.test('step names', async (t) => {
  t.equal(shell({ command: sh`make install` }).name, 'shell make install');
  t.equal(shell({ name: 'build app', command: sh`make` }).name, 'shell build app');
  t.equal(shell({ command: sh`echo ${'x'.repeat(100)}` }).name, `shell echo ${'x'.repeat(54)}…`);
  t.equal(shell({ command: sh`a\n  b` }).name, 'shell a b', 'one line');
  t.equal(shell({ command: sh`curl -H ${secret('Bearer tok3n')} x` }).name, 'shell curl -H *** x');
});

t.test('guards are facts; any guard can skip', async (t) => {
  const op = shell({ command: sh`make`, cwd: '/srv/app', creates: 'bin/app', removes: '/tmp/flag', unless: sh`test -f done`, onlyIf: sh`true` });
  t.same(
    Object.fromEntries(Object.entries(op.facts).map(([k, f]) => [k, f.command.toString()])),
    {
      creates: 'test -e /srv/app/bin/app',
      removes: 'test -e /tmp/flag',
      unless: '(cd /srv/app || exit\ntest -f done\n) >/dev/null 2>&1',
      onlyIf: '(cd /srv/app || exit\ntrue\n) >/dev/null 2>&1',
    },
    'relative paths resolved from cwd; command guards run in cwd',
  );
  const run = { creates: { kind: 'missing' }, removes: { kind: 'exists' }, unless: { kind: 'failure', exitCode: 1 }, onlyIf: { kind: 'success' } };
  t.same(commands(op, run), ['(cd /srv/app || exit\nmake\n)']);
  t.equal(plan(op, run)?.summary, 'run make');
  t.equal(plan(op, { ...run, creates: { kind: 'exists' } }), undefined, 'creates exists');
  t.equal(plan(op, { ...run, removes: { kind: 'missing' } }), undefined, 'removes missing');
  t.equal(plan(op, { ...run, unless: { kind: 'success' } }), undefined, 'unless succeeded');
  t.equal(plan(op, { ...run, onlyIf: { kind: 'failure', exitCode: 3 } }), undefined, 'onlyIf failed');
});

t.test('without a guard it always runs, verbatim', async (t) => {
  const op = shell({ command: sh`apt-get update; echo done`, stdin: 'input' });
  t.same(Object.keys(op.facts), []);
  t.same(commands(op, {}), ['apt-get update; echo done']);
  t.equal(plan(op, {})?.actions[0]?.stdin, 'input');
});

t.test('env: quoted, secrets masked, names checked', async (t) => {
  const op = shell({ command: sh`deploy`, env: { MODE: 'a b', TOKEN: secret('s3cr3t-value') }, unless: sh`check` });
  t.same(commands(op, { unless: { kind: 'failure', exitCode: 1 } }), ["(export MODE='a b' TOKEN=***\ndeploy\n)"]);
  t.equal(op.facts.unless?.command.toString(), "(export MODE='a b' TOKEN=***\ncheck\n) >/dev/null 2>&1");
  t.equal(plan(op, { unless: { kind: 'failure', exitCode: 1 } })?.actions[0]?.command.reveal(), "(export MODE='a b' TOKEN=s3cr3t-value\ndeploy\n)");
  t.notMatch(op.facts.unless?.key ?? '', 's3cr3t', 'cache key keeps the secret out');
  const other = shell({ command: sh`deploy`, env: { TOKEN: secret('another') }, unless: sh`check` });
  t.not(other.facts.unless?.key, shell({ command: sh`deploy`, env: { TOKEN: secret('s3cr3t-value') }, unless: sh`check` }).facts.unless?.key, 'two secrets never share a cached answer');
  t.throws(() => shell({ command: sh`x`, env: { 'BAD-NAME': 'v' } }), TypeError);
  t.equal(shell({ command: sh`a`, notify: handlerRef('restart') }).notify[0], 'restart');
});

t.test('real: creates/removes guards with files in a temp dir', async (t) => {
  const dir = t.testdir({ 'flag': '' });
  const out = join(dir, 'out');
  const op = () => shell({ command: sh`echo built >> out`, cwd: dir, creates: 'out' });

  const dry = await runOp(op(), { dryRun: true });
  t.equal(dry.status, 'changed', 'dry-run predicts the run');
  t.notOk(existsSync(out), 'dry-run ran nothing');
  t.equal((await runOp(op())).status, 'changed');
  t.equal((await runOp(op())).status, 'ok', 'second run skipped: creates exists');
  t.equal(readFileSync(out, 'utf8'), 'built\n');

  const clean = () => shell({ command: sh`rm flag`, cwd: dir, removes: 'flag' });
  t.equal((await runOp(clean())).status, 'changed');
  t.equal((await runOp(clean())).status, 'ok', 'removes: gone, skipped');
});

t.test('real: unless / onlyIf run in cwd with env, stdin reaches the command', async (t) => {
  const dir = t.testdir({});
  const op = () =>
    shell({ command: sh`cat > "$OUT"`, cwd: dir, env: { OUT: 'copy' }, stdin: 'hello\n', unless: sh`grep -q hello "$OUT"` });
  t.equal((await runOp(op())).status, 'changed');
  t.equal(readFileSync(join(dir, 'copy'), 'utf8'), 'hello\n');
  t.equal((await runOp(op())).status, 'ok', 'unless succeeded');

  const only = (flag: string) => shell({ command: sh`touch ran`, cwd: dir, onlyIf: sh`test -e ${flag}` });
  t.equal((await runOp(only('nope'))).status, 'ok', 'onlyIf failed: skipped');
  t.notOk(existsSync(join(dir, 'ran')));
  writeFileSync(join(dir, 'yes'), '');
  t.equal((await runOp(only('yes'))).status, 'changed');
  t.ok(existsSync(join(dir, 'ran')));
});

t.test('real: a failing command fails the step; secrets stay masked everywhere', async (t) => {
  const token = 'tkltest-TOPSECRET-42';
  const step = await runOp(
    shell({ command: sh`echo "token is $TOKEN" >&2; exit 3`, env: { TOKEN: secret(token) }, unless: sh`test "$TOKEN" = nope` }),
  );
  t.equal(step.status, 'failed');
  t.equal(step.error?.exitCode, 3);
  t.match(step.error?.message, 'token is ***');
  t.notMatch(JSON.stringify(step), token, 'not in name, commands or error');
  t.notMatch(step.error?.message ?? '', token);
  t.notMatch(String(step.error?.stack), token);

  const ok = await runOp(shell({ command: sh`test "$TOKEN" = ${secret(token)}`, env: { TOKEN: secret(token) } }));
  t.equal(ok.status, 'changed', 'the real value reached the host');
  t.notMatch(JSON.stringify(ok), token);
});
