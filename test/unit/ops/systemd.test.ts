import t from 'tap';
import type { Change } from '../../../lib/ops/operation.ts';
import type { SystemdUnit } from '../../../lib/facts/systemd.ts';
import { systemd, type ServiceOptions } from '../../../lib/ops/systemd.ts';
import { runOp } from '../../support/run-op.ts';
import { handlerRef } from '../../support/handler.ts';
import { TackleError } from '../../../lib/errors.ts';

// Parsed `systemctl show` (see test/unit/facts/systemd.test.ts): a running, enabled unit, and changes to it.
function unit(changes: Partial<SystemdUnit & { kind: 'unit' }> = {}): SystemdUnit {
  return {
    kind: 'unit',
    id: 'nginx.service',
    names: ['nginx.service'],
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    fragmentPath: '/lib/systemd/system/nginx.service',
    unitFileState: 'enabled',
    canReload: true,
    needDaemonReload: false,
    ...changes,
  };
}

const stopped = { activeState: 'inactive', subState: 'dead' };
const notFound = unit({ loadState: 'not-found', ...stopped, fragmentPath: '', unitFileState: '', canReload: false });

function commands(change: Change | undefined): string[] | undefined {
  return change?.actions.map((a) => a.command.toString());
}

type Case = [title: string, options: Omit<ServiceOptions, 'name'>, facts: SystemdUnit, expected: string[] | undefined];

const cases: Case[] = [
  ['started + enabled, converged', { state: 'started', enabled: true }, unit(), undefined],
  ['started: stopped → start', { state: 'started' }, unit(stopped), ['systemctl start nginx.service']],
  ['started: failed → start', { state: 'started' }, unit({ activeState: 'failed', subState: 'failed' }), ['systemctl start nginx.service']],
  ['started: crash loop is already starting', { state: 'started' }, unit({ activeState: 'activating', subState: 'auto-restart' }), undefined],
  ['started: stopping → start again', { state: 'started' }, unit({ activeState: 'deactivating', subState: 'stop-sigterm' }), ['systemctl start nginx.service']],
  ['stopped: running → stop', { state: 'stopped' }, unit(), ['systemctl stop nginx.service']],
  ['stopped: stopping → wait for it', { state: 'stopped' }, unit({ activeState: 'deactivating' }), ['systemctl stop nginx.service']],
  ['stopped: failed is not running', { state: 'stopped' }, unit({ activeState: 'failed' }), undefined],
  ['stopped + disabled: not installed → nothing', { state: 'stopped', enabled: false }, notFound, undefined],
  ['dry-run before install: enable and start', { state: 'started', enabled: true }, notFound, ['systemctl enable nginx.service', 'systemctl start nginx.service']],
  ['restarted always acts', { state: 'restarted' }, unit(), ['systemctl restart nginx.service']],
  ['reloaded always acts', { state: 'reloaded' }, unit(), ['systemctl reload-or-restart nginx.service']],
  ['enabled: disabled → enable', { enabled: true }, unit({ unitFileState: 'disabled' }), ['systemctl enable nginx.service']],
  ['enabled: linked → enable', { enabled: true }, unit({ unitFileState: 'linked' }), ['systemctl enable nginx.service']],
  ['enabled: static needs nothing', { enabled: true }, unit({ unitFileState: 'static' }), undefined],
  ['enabled: indirect', { enabled: true }, unit({ unitFileState: 'indirect' }), undefined],
  ['enabled: alias', { enabled: true }, unit({ unitFileState: 'alias' }), undefined],
  ['enabled: generated (SysV script)', { enabled: true }, unit({ unitFileState: 'generated' }), undefined],
  ['enabled: transient', { enabled: true }, unit({ unitFileState: 'transient' }), undefined],
  ['enabled: enabled-runtime counts', { enabled: true }, unit({ unitFileState: 'enabled-runtime' }), undefined],
  ['enabled: masked → let systemctl refuse', { enabled: true, state: 'started' }, unit({ loadState: 'masked', unitFileState: 'masked', ...stopped }), ['systemctl enable nginx.service', 'systemctl start nginx.service']],
  ['disabled: enabled → disable', { enabled: false }, unit(), ['systemctl disable nginx.service']],
  ['disabled: runtime enablement left alone', { enabled: false }, unit({ unitFileState: 'enabled-runtime' }), undefined],
  ['disabled: static needs nothing', { enabled: false }, unit({ unitFileState: 'static' }), undefined],
  ['disabled: masked', { enabled: false }, unit({ loadState: 'masked', unitFileState: 'masked' }), undefined],
  ['alias: commands use the real name', { enabled: true, state: 'started' }, unit({ id: 'ssh.service', unitFileState: 'disabled', ...stopped }), ['systemctl enable ssh.service', 'systemctl start ssh.service']],
  ['unit file changed: daemon-reload first', { state: 'restarted' }, unit({ needDaemonReload: true }), ['systemctl daemon-reload', 'systemctl restart nginx.service']],
  ['unit file changed: reload even when otherwise converged', { state: 'started' }, unit({ needDaemonReload: true }), ['systemctl daemon-reload']],
  ['unit file changed, daemonReload: false', { state: 'started', daemonReload: false }, unit({ needDaemonReload: true }), undefined],
  ['masked reports changes forever: no reload', {}, unit({ loadState: 'masked', needDaemonReload: true }), undefined],
  ['order: reload, enable, start', { state: 'started', enabled: true }, unit({ needDaemonReload: true, unitFileState: 'disabled', ...stopped }), ['systemctl daemon-reload', 'systemctl enable nginx.service', 'systemctl start nginx.service']],
];

t.test('systemd.service plans exactly these commands', async (t) => {
  for (const [title, options, facts, expected] of cases) {
    t.same(commands(systemd.service({ name: 'nginx', ...options }).plan({ unit: facts })), expected, title);
  }
});

t.test('systemd.service: summaries', async (t) => {
  const summary = (options: Omit<ServiceOptions, 'name'>, facts: SystemdUnit) => systemd.service({ name: 'nginx', ...options }).plan({ unit: facts })?.summary;
  t.equal(summary({ state: 'started', enabled: true }, notFound), 'enable nginx.service, start nginx.service');
  t.equal(summary({ state: 'reloaded' }, unit()), 'reload nginx.service');
  t.equal(summary({ state: 'reloaded' }, unit({ canReload: false })), 'restart nginx.service (it cannot reload)');
  t.equal(summary({ state: 'reloaded' }, unit(stopped)), 'start nginx.service (it was not running)');
  t.equal(summary({ state: 'reloaded' }, notFound), 'reload or restart nginx.service');
  t.equal(summary({ state: 'started' }, unit({ needDaemonReload: true })), 'daemon-reload (unit files changed on disk)');
});

t.test('systemd.service: without systemd, every implied command is planned and the reason said', async (t) => {
  const unavailable: SystemdUnit = { kind: 'unavailable', reason: 'System has not been booted with systemd as init system (PID 1).\nFailed to connect to bus' };
  const change = systemd.service({ name: 'nginx', state: 'started', enabled: true }).plan({ unit: unavailable });
  t.same(change?.actions.map((a) => a.command.toString()), ['systemctl enable nginx', 'systemctl start nginx']);
  t.equal(change?.summary, 'enable nginx, start nginx (state unknown: System has not been booted with systemd as init system (PID 1).)');
  t.equal(systemd.service({ name: 'nginx' }).plan({ unit: unavailable }), undefined, 'nothing desired, nothing planned');
});

t.test('systemd.service: stable step names and notify', async (t) => {
  t.equal(systemd.service({ name: 'nginx' }).name, 'systemd.service nginx');
  t.equal(systemd.service({ name: 'nginx', state: 'started' }).name, 'systemd.service nginx started');
  t.equal(systemd.service({ name: 'nginx', state: 'started', enabled: true }).name, 'systemd.service nginx started, enabled');
  t.equal(systemd.service({ name: 'fstrim.timer', enabled: false }).name, 'systemd.service fstrim.timer disabled');
  t.same(systemd.service({ name: 'nginx', notify: [handlerRef('a'), handlerRef('b')] }).notify, ['a', 'b']);
  t.equal(systemd.daemonReload().name, 'systemd.daemonReload');
  t.same(commands(systemd.daemonReload({ notify: handlerRef('x') }).plan({})), ['systemctl daemon-reload'], 'always acts');
});

t.test('systemd.service: bad input is refused at once', async (t) => {
  t.throws(() => systemd.service({ name: '' }), TackleError);
  t.throws(() => systemd.service({ name: '--now' }), /not a unit name/);
  t.throws(() => systemd.service({ name: 'nginx; reboot' }), /not a unit name/);
  t.throws(() => systemd.service({ name: '/etc/systemd/system/x.service' }), /not a unit name/);
  t.throws(() => systemd.service({ name: 'getty@' }), /is a template; name an instance such as getty@main/);
  t.throws(() => systemd.service({ name: 'getty@.service' }), /is a template/);
  t.throws(() => systemd.service({ name: 'nginx', state: 'running' as 'started' }), /state must be one of/);
  t.doesNotThrow(() => systemd.service({ name: 'getty@tty1.service', state: 'started' }));
  t.doesNotThrow(() => systemd.service({ name: 'systemd-fsck@dev-disk-by\\x2duuid-1234.service' }));
});

// The real fact command, parser and planner on this machine (no systemd here): the step fails, with the reason.
t.test('dry-run on a host without systemd', async (t) => {
  const step = await runOp(systemd.service({ name: 'nginx', state: 'started' }), { dryRun: true });
  t.equal(step.name, 'systemd.service nginx started');
  if (step.status === 'failed') t.match(step.error?.reason, /cannot read the state of nginx from systemd/);
  else t.pass(`systemd answered here: ${step.status}`);
});

t.test('unitFile: writes the file and says what systemd then shows, for the service step after it', async (t) => {
  const content = '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n';
  const op = systemd.unitFile({ name: 'demo', content });
  t.equal(op.name, 'systemd.unitFile demo.service');
  const notFound: SystemdUnit = { kind: 'unit', id: 'demo.service', names: ['demo.service'], loadState: 'not-found', activeState: 'inactive', subState: 'dead', fragmentPath: '', unitFileState: '', canReload: false, needDaemonReload: false };
  const change = op.plan({ 'files.path:/etc/systemd/system/demo.service': { kind: 'missing' }, unit: notFound });
  t.match(change?.summary, /^create \/etc\/systemd\/system\/demo\.service/);
  const after = change?.effects?.facts?.['systemd.unit demo'] as SystemdUnit;
  t.match(after, { loadState: 'loaded', unitFileState: 'disabled', activeState: 'inactive', fragmentPath: '/etc/systemd/system/demo.service', needDaemonReload: false }, 'a new unit: loaded from its file at once');
  const service = systemd.service({ name: 'demo', enabled: true, state: 'started' }).plan({ unit: after });
  t.equal(service?.summary, 'enable demo.service, start demo.service', 'the service step after it is planned from that');
  const loaded = { ...notFound, loadState: 'loaded', unitFileState: 'enabled', activeState: 'active', fragmentPath: '/etc/systemd/system/demo.service' };
  const changed = op.plan({ 'files.path:/etc/systemd/system/demo.service': { kind: 'file', mode: '0644', owner: 'root', group: 'root', uid: 0, gid: 0, size: 1, sha256: 'x' }, unit: loaded });
  t.match(changed?.effects?.facts?.['systemd.unit demo'], { needDaemonReload: true }, 'a changed unit needs a daemon-reload');
});
