import t from 'tap';
import { parseSystemctlShow, systemdUnit } from '../../../lib/facts/systemd.ts';

// `systemctl show --property=Id,Names,LoadState,ActiveState,SubState,FragmentPath,UnitFileState,CanReload,NeedDaemonReload X`
// as systemd 252 (Debian 12) prints it. There is no systemd on the machine these tests were written on,
// so these samples were written from org.freedesktop.systemd1(5), systemctl(1) and systemd's dbus-unit.c
// (properties come in the order of the Unit D-Bus vtable, not the order asked for), not captured;
// `unavailable` alone was captured, from a container without systemd.
const show = (lines: string[], exitCode = 0) => ({ stdout: `${lines.join('\n')}\n`, stderr: '', exitCode });
const props = (id: string, names: string, load: string, active: string, sub: string, fragment: string, file: string, reload: string, daemonReload = 'no') => [
  `Id=${id}`,
  `Names=${names}`,
  `LoadState=${load}`,
  `ActiveState=${active}`,
  `SubState=${sub}`,
  `FragmentPath=${fragment}`,
  `UnitFileState=${file}`,
  `CanReload=${reload}`,
  `NeedDaemonReload=${daemonReload}`,
];

const samples = {
  running: show(props('nginx.service', 'nginx.service', 'loaded', 'active', 'running', '/lib/systemd/system/nginx.service', 'enabled', 'yes')),
  // Before its package is installed: systemctl still answers, with exit code 0.
  notFound: show(props('nginx.service', 'nginx.service', 'not-found', 'inactive', 'dead', '', '', 'no')),
  // Asked for "sshd": Debian's ssh.service has Alias=sshd.service.
  alias: show(props('ssh.service', 'ssh.service sshd.service', 'loaded', 'active', 'running', '/lib/systemd/system/ssh.service', 'enabled', 'yes')),
  static: show(props('apt-daily.service', 'apt-daily.service', 'loaded', 'inactive', 'dead', '/lib/systemd/system/apt-daily.service', 'static', 'no')),
  // uuidd.service has only Also=uuidd.socket in [Install].
  indirect: show(props('uuidd.service', 'uuidd.service', 'loaded', 'inactive', 'dead', '/lib/systemd/system/uuidd.service', 'indirect', 'no')),
  // An /etc/init.d script turned into a unit by systemd-sysv-generator.
  generated: show(props('legacyd.service', 'legacyd.service', 'loaded', 'active', 'exited', '/run/systemd/generator.late/legacyd.service', 'generated', 'yes')),
  masked: show(props('nginx.service', 'nginx.service', 'masked', 'inactive', 'dead', '/etc/systemd/system/nginx.service', 'masked', 'no')),
  disabled: show(props('nginx.service', 'nginx.service', 'loaded', 'inactive', 'dead', '/lib/systemd/system/nginx.service', 'disabled', 'yes')),
  failed: show(props('nginx.service', 'nginx.service', 'loaded', 'failed', 'failed', '/lib/systemd/system/nginx.service', 'enabled', 'yes')),
  crashLoop: show(props('app.service', 'app.service', 'loaded', 'activating', 'auto-restart', '/etc/systemd/system/app.service', 'enabled', 'no')),
  stopping: show(props('app.service', 'app.service', 'loaded', 'deactivating', 'stop-sigterm', '/etc/systemd/system/app.service', 'enabled', 'no')),
  // The unit file was edited after systemd loaded it.
  changed: show(props('app.service', 'app.service', 'loaded', 'active', 'running', '/etc/systemd/system/app.service', 'enabled', 'no', 'yes')),
  // An instance of a template: the fragment is the template's file.
  instance: show(props('getty@tty1.service', 'getty@tty1.service', 'loaded', 'active', 'running', '/lib/systemd/system/getty@.service', 'enabled', 'no')),
  // Debian's postgresql-common links cluster instances from a generator, in /run.
  runtime: show(props('postgresql@15-main.service', 'postgresql@15-main.service', 'loaded', 'active', 'running', '/lib/systemd/system/postgresql@.service', 'enabled-runtime', 'yes')),
  unavailable: {
    stdout: '',
    stderr: "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n",
    exitCode: 1,
  },
};

t.test('systemctl show: a running, enabled unit', async (t) => {
  const names = { kind: 'unit', id: 'nginx.service', names: ['nginx.service'], fragmentPath: '/lib/systemd/system/nginx.service' };
  const states = { loadState: 'loaded', activeState: 'active', subState: 'running', unitFileState: 'enabled', canReload: true, needDaemonReload: false };
  t.same(parseSystemctlShow(samples.running), { ...names, ...states });
});

t.test('systemctl show: a unit that does not exist is still a unit', async (t) => {
  t.match(parseSystemctlShow(samples.notFound), { kind: 'unit', loadState: 'not-found', activeState: 'inactive', unitFileState: '', fragmentPath: '', canReload: false });
});

t.test('systemctl show: the tricky states', async (t) => {
  t.match(parseSystemctlShow(samples.alias), { id: 'ssh.service', names: ['ssh.service', 'sshd.service'] });
  t.match(parseSystemctlShow(samples.static), { unitFileState: 'static' });
  t.match(parseSystemctlShow(samples.indirect), { unitFileState: 'indirect' });
  t.match(parseSystemctlShow(samples.generated), { unitFileState: 'generated', activeState: 'active', subState: 'exited' });
  t.match(parseSystemctlShow(samples.masked), { loadState: 'masked', unitFileState: 'masked' });
  t.match(parseSystemctlShow(samples.crashLoop), { activeState: 'activating', subState: 'auto-restart' });
  t.match(parseSystemctlShow(samples.changed), { needDaemonReload: true });
  t.match(parseSystemctlShow(samples.instance), { id: 'getty@tty1.service', fragmentPath: '/lib/systemd/system/getty@.service' });
  t.match(parseSystemctlShow(samples.runtime), { unitFileState: 'enabled-runtime' });
});

t.test('systemctl show: order does not matter, values may hold "="', async (t) => {
  const out = show(['NeedDaemonReload=yes', 'LoadState=loaded', 'FragmentPath=/etc/systemd/system/a=b.service', 'Id=a=b.service']);
  t.match(parseSystemctlShow(out), { id: 'a=b.service', fragmentPath: '/etc/systemd/system/a=b.service', needDaemonReload: true, activeState: '' });
});

t.test('systemctl show: no systemd is a result, not a crash', async (t) => {
  t.same(parseSystemctlShow(samples.unavailable), {
    kind: 'unavailable',
    reason: "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down",
  });
  t.same(parseSystemctlShow({ stdout: '', stderr: '', exitCode: 1 }), { kind: 'unavailable', reason: 'systemctl show exited with code 1' });
});

t.test('systemdUnit: one systemctl show, keyed by unit', async (t) => {
  const fact = systemdUnit('nginx');
  t.equal(fact.key, 'systemd.unit nginx');
  t.equal(fact.command.toString(), 'systemctl show --property=Id,Names,LoadState,ActiveState,SubState,FragmentPath,UnitFileState,CanReload,NeedDaemonReload nginx');
});
