import t from 'tap';
import type { Change } from '../../../lib/ops/operation.ts';
import type { PathInfo } from '../../../lib/facts/files.ts';
import type { SwapInfo, ZoneInfo } from '../../../lib/facts/server.ts';
import { server } from '../../../lib/ops/server.ts';
import { fileInfo, refusal } from '../../support/plan.ts';
import { handlerRef } from '../../support/handler.ts';

const missing: PathInfo = { kind: 'missing' };
const commands = (c: Change | undefined) => (c?.actions ?? []).map((a) => a.command.toString());
// /etc/hosts of a fresh lab host (captured).
const HOSTS = '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\thx1\n';


t.test('server.hostname: the 127.0.1.1 line, then the name', async (t) => {
  const op = server.hostname({ name: 'web1.example.test', notify: handlerRef('x') });
  t.equal(op.name, 'server.hostname web1.example.test');
  const change = op.plan({ names: { transient: 'hx1', static: 'hx1' }, hosts: fileInfo(HOSTS) });
  t.equal(change?.summary, 'update /etc/hosts (95 bytes); host name hx1 → web1.example.test');
  t.match(change?.actions[0]?.stdin, /\n127\.0\.1\.1\tweb1\.example\.test web1\n$/);
  t.equal(commands(change).length, 1, 'one command: no sudo may start between the two (it would wait for DNS)');
  t.match(commands(change)[0], /mv -fT -- "\$tackle_tmp" \/etc\/hosts\ntackle_tmp=\nif command -v hostnamectl >\/dev\/null 2>&1 && hostnamectl set-hostname web1\.example\.test; then :; else printf '%s\\n' web1\.example\.test > \/etc\/hostname && hostname web1\.example\.test; fi$/);
  t.same(commands(op.plan({ names: { transient: 'hx1', static: 'hx1' }, hosts: fileInfo(HOSTS.replace('hx1', 'web1.example.test web1')) })), [
    "if command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname web1.example.test; then :; else printf '%s\\n' web1.example.test > /etc/hostname && hostname web1.example.test; fi",
  ], '/etc/hosts already right: the name alone');
  const hosts = fileInfo(String(change?.actions[0]?.stdin));
  t.equal(op.plan({ names: { transient: 'web1.example.test', static: 'web1.example.test' }, hosts }), undefined, 'converged');
  t.match(op.plan({ names: { transient: 'web1.example.test', static: 'hx1' }, hosts })?.summary, /^host name web1\.example\.test \(boots as hx1\) → web1\.example\.test$/);
  t.match(server.hostname({ name: 'db' }).plan({ names: { transient: 'db', static: 'db' }, hosts: fileInfo(HOSTS) })?.actions[0]?.stdin, /\n127\.0\.1\.1\tdb\n$/, 'a short name alone');
  t.throws(() => server.hostname({ name: 'web_1' }), /not a host name/);
  t.throws(() => server.hostname({ name: '-web' }), /not a host name/);
  t.throws(() => server.hostname({ name: `${'a'.repeat(60)}.example` }), /at most 64/);
});

t.test('server.timezone', async (t) => {
  const op = server.timezone({ name: 'Europe/Berlin' });
  t.equal(op.name, 'server.timezone Europe/Berlin');
  const zone: ZoneInfo = { kind: 'zone' };
  const utc: PathInfo = { kind: 'link', target: '/usr/share/zoneinfo/Etc/UTC' };
  const change = op.plan({ zone, localtime: utc, timezone: fileInfo('Etc/UTC\n') });
  t.equal(change?.summary, 'time zone Etc/UTC → Europe/Berlin');
  t.match(commands(change)[0], /ln -sfn -- \/usr\/share\/zoneinfo\/Europe\/Berlin "\$tackle_tmp"/, 'an atomic link (files.link)');
  t.equal(change?.actions[1]?.stdin, 'Europe/Berlin\n');
  t.equal(op.plan({ zone, localtime: { kind: 'link', target: '/usr/share/zoneinfo/Europe/Berlin' }, timezone: fileInfo('Europe/Berlin\n') }), undefined);
  // systemd writes a relative link (captured after `ln -sf ../usr/share/zoneinfo/Asia/Tokyo`): the same zone.
  const tokyo = server.timezone({ name: 'Asia/Tokyo' }).plan({ zone, localtime: { kind: 'link', target: '../usr/share/zoneinfo/Asia/Tokyo' }, timezone: fileInfo('Etc/UTC\n') });
  t.equal(tokyo?.summary, '/etc/timezone → Asia/Tokyo (/etc/localtime already links to it)');
  t.equal(tokyo?.actions.length, 1);
  t.match(refusal(() => server.timezone({ name: 'Mars/Olympus' }).plan({ zone: { kind: 'unknown' }, localtime: utc, timezone: missing })), /unknown time zone Mars\/Olympus: there is no \/usr\/share\/zoneinfo\/Mars\/Olympus/);
  const noDb = op.plan({ zone: { kind: 'no-database' }, localtime: missing, timezone: missing });
  t.match(commands(noDb)[0], /^\[ -f \/usr\/share\/zoneinfo\/Europe\/Berlin \] \|\| \{ printf/, 'checked on the host when there is no zone database');
  t.match(noDb?.summary, /no \/usr\/share\/zoneinfo on the host: this fails/);
  t.throws(() => server.timezone({ name: '../../etc/passwd' }), /not a time zone name/);
  t.throws(() => server.timezone({ name: 'Europe/Berlin; rm' }), /not a time zone name/);
});

t.test('server.swapfile', async (t) => {
  const op = server.swapfile({ sizeMb: 8, swappiness: 10 });
  t.equal(op.name, 'server.swapfile /swapfile');
  const facts = (swap: SwapInfo, fstab: PathInfo = fileInfo('# UNCONFIGURED FSTAB FOR BASE SYSTEM\n'), sysctl: PathInfo = missing) => ({ swap, fstab, sysctl });
  const none: SwapInfo = { file: { kind: 'missing' }, active: false, swappiness: 60 };
  const create = op.plan(facts(none));
  t.same(commands(create).filter((c) => !c.startsWith('set -e')), [
    "rm -f -- /swapfile && (umask 077 && { fallocate -l 8388608 /swapfile 2>/dev/null || dd if=/dev/zero of=/swapfile bs=1M count=8 status=none; }) && chmod 600 /swapfile && mkswap /swapfile >/dev/null",
    'swapon /swapfile',
    'sysctl -q -w vm.swappiness=10',
  ]);
  t.match(create?.actions[1]?.stdin, /\n\/swapfile none swap sw 0 0\n$/, 'the fstab line');
  t.equal(create?.actions[2]?.stdin, '# Managed by tackle (server.swapfile).\nvm.swappiness = 10\n');
  t.match(create?.summary, /^create \/swapfile \(8 MiB swap\); update \/etc\/fstab .*; create \/etc\/sysctl\.d\/60-tackle-swappiness\.conf .*; swapon \/swapfile; vm\.swappiness 60 → 10$/);

  const fstab = fileInfo('# UNCONFIGURED FSTAB FOR BASE SYSTEM\n/swapfile none swap sw 0 0\n');
  const sysctl = fileInfo('# Managed by tackle (server.swapfile).\nvm.swappiness = 10\n');
  const good = { kind: 'file', size: 8 * 1048576, mode: '0600', owner: 'root', swap: true } as const;
  t.equal(op.plan(facts({ file: good, active: true, swappiness: 10 }, fstab, sysctl)), undefined, 'converged');
  // What the lab leaves: everything but swapon (a container may not swapon).
  t.same(commands(op.plan(facts({ file: good, active: false, swappiness: 10 }, fstab, sysctl))), ['swapon /swapfile']);
  // Captured: a file made by hand with mode 644 and a signature, not in use.
  t.same(commands(op.plan(facts({ file: { ...good, mode: '0644' }, active: false, swappiness: 10 }, fstab, sysctl))), ['chmod 600 /swapfile', 'swapon /swapfile']);
  t.same(commands(op.plan(facts({ file: { ...good, swap: false }, active: false, swappiness: 10 }, fstab, sysctl))), ['mkswap /swapfile >/dev/null', 'swapon /swapfile']);
  const resize = op.plan(facts({ file: { ...good, size: 4 * 1048576 }, active: true, swappiness: 10 }, fstab, sysctl));
  t.match(commands(resize)[0], /^swapoff \/swapfile && rm -f -- \/swapfile && /);
  t.match(resize?.summary, /^resize \(4 MiB → 8 MiB, swapoff first\) \/swapfile/);
  t.match(refusal(() => op.plan(facts({ file: { kind: 'other', type: 'directory' }, active: false, swappiness: 60 }))), /\/swapfile is a directory, not a swap file/);
  t.throws(() => server.swapfile({ sizeMb: 0 }), /sizeMb/);
  t.throws(() => server.swapfile({ sizeMb: 1, path: 'swap' }), /absolute path/);
  t.throws(() => server.swapfile({ sizeMb: 1, swappiness: 300 }), /swappiness/);
});
