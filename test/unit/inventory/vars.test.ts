// The var types: precise builders accept what their operations accept and refuse the rest; every
// problem of a shape is reported at once; undeclared vars are found with a suggestion.
import t, { type Test } from 'tap';
import { secret } from '../../../lib/command/command.ts';
import { VarError, checkShape, nearest, strayVars, undeclaredVars, undeclaredWarning, v, type VarType } from '../../../lib/inventory/vars.ts';

/** Table test: each good value passes unchanged, each bad one throws a VarError at `x`. */
function table<T>(t: Test, type: VarType<T>, good: readonly unknown[], bad: readonly unknown[]): void {
  for (const value of good) t.same(type.check(value, 'x'), value, `accepts ${JSON.stringify(value)}`);
  for (const value of bad) t.throws(() => type.check(value, 'x'), { name: 'VarError', path: 'x' }, `refuses ${JSON.stringify(value)}`);
}

t.test('hostPort: host or address, a colon, a port from 1 to 65535', async (t) => {
  table(t, v.hostPort(), ['127.0.0.1:3000', 'app.internal:8080', '[::1]:443', 'localhost:1', 'x:65535'], ['not a host', '127.0.0.1:99999', '127.0.0.1:0', '127.0.0.1', ':80', '::1:80', '[foo]:80', 'a b:80', 'host:80x', 3000]);
  t.throws(() => v.hostPort().check('127.0.0.1:99999', 'sites[0].upstreams[0]'), {
    message: 'sites[0].upstreams[0] must be host:port with a port from 1 to 65535, such as "127.0.0.1:3000", got "127.0.0.1:99999"',
  });
});

t.test('names: domain, hostname, fileName, userName, unitName, packageName', async (t) => {
  table(t, v.domain(), ['app.example.com', 'localhost', 'xn--bcher-kva.example', '10.0.0.1'], ['app example.com', '-app.example.com', 'app..example.com', '*.example.com', '', 'a'.repeat(64) + '.com']);
  table(t, v.hostname(), ['web1', 'web1.example.com'], ['-web-', 'web_1', `${'a'.repeat(60)}.example.com`]);
  table(t, v.fileName(), ['app', 'app.example.com', 'my_site-2'], ['.hidden', '-x', 'a/b', 'a b', '']);
  table(t, v.userName(), ['deploy', '_svc', 'ops-2'], ['Deploy User', 'Deploy', 'a.b', '1abc', 'x'.repeat(33), '']);
  table(t, v.unitName(), ['app.service', 'app', 'getty@tty1.service'], ['app service', '-x', '']);
  table(t, v.packageName(), ['nginx', 'libc6:i386', 'g++'], ['Nginx', 'a', 'nginx;rm', '']);
});

t.test('addresses: ipAddress, network, email, url, path', async (t) => {
  table(t, v.ipAddress(), ['10.0.0.1', '::1', '2001:db8::1'], ['10.0.0.300', '10.0.0.0/8', 'host']);
  table(t, v.network(), ['10.0.0.1', '10.0.0.0/8', '2001:db8::/32', '0.0.0.0/0'], ['10.0.0.300', '10.0.0.0/33', '10.0.0.0/8/1', 'office', '10.0.0.0/']);
  table(t, v.email(), ['ops@example.com', 'a.b+c@mail.example.org'], ['ops-at-example.com', 'ops@', '@example.com', 'ops@exa mple.com', 'a@b@c.com', 'ops@-x.com']);
  table(t, v.url(), ['https://acme.example/dir', 'http://10.0.0.1:14000/dir'], ['ftp://x', 'https://', 'https://a b', 'acme.example']);
  table(t, v.path(), ['/srv/app', '/'], ['srv/app', '', '/a\nb']);
});

t.test('time: timezone, timeOfDay, duration', async (t) => {
  table(t, v.timezone(), ['Europe/Berlin', 'UTC', 'Etc/UTC', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5'], ['Mars/Olympus_Mons', 'europe/berlin', 'Europe/Berlin ', '../etc/passwd', '']);
  table(t, v.timeOfDay(), ['03:30', '00:00', '23:59'], ['24:00', '3:30', '25:00', '03:60', 'now']);
  table(t, v.duration(), ['600', '30s', '10m', '1h', '1d', '1w'], ['forever', '1 h', '-1', '1y', '10min', '']);
});

t.test('sshPublicKey, gitRef, record', async (t) => {
  table(t, v.sshPublicKey(), ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE me@laptop', 'no-pty ssh-ed25519 AAAAC3Nza', 'from="10.0.0.1" ecdsa-sha2-nistp256 AAAAE2V='], ['ssh-ed25519', 'AAAA me', 'ssh-ed25519 AAAA\nssh-rsa BBBB', 'ssh-ed25519 AA!A']);
  table(t, v.gitRef(), ['main', 'v1.4.2', 'feature/x', 'a1b2c3d'], ['-x', 'a..b', 'a b', 'x.lock', 'a/', '/a', 'HEAD@{1}', '']);
  const thresholds = v.record(v.path(), v.integer({ min: 0 }));
  t.same(thresholds.check({ '/data': 1 }, 'm'), { '/data': 1 });
  const err = t.throws(() => thresholds.check({ data: 1, '/x': -1 }, 'm')) as VarError;
  t.same(err.problems.map((p) => p.path), ['m key "data"', 'm./x']);
});

t.test('integer and number bounds; match; anyOf; refine', async (t) => {
  table(t, v.integer({ min: 0, max: 10 }), [0, 10], [-1, 11, 1.5, '3']);
  t.throws(() => v.integer({ min: 0 }).check(-512, 'swapMb'), { message: 'swapMb must be an integer of 0 or more, got number -512' });
  table(t, v.number({ min: 0 }), [0, 1.5], [-0.1, Infinity, NaN]);
  table(t, v.match(/^\d+r\/[sm]$/, 'a rate'), ['10r/s'], ['fast', 10]);
  const either = v.anyOf(v.hostPort(), v.oneOf('-1'));
  table(t, either, ['-1', 'a:1'], ['-2', 'a']);
  t.throws(() => either.check('-2', 'x'), { message: /x must be host:port .*, or one of "-1"/ });
  table(t, v.string().refine((s) => s.startsWith('ssh-'), 'a key'), ['ssh-ed25519 AAAA'], ['rsa', 3]);
});

t.test('every problem of a shape is listed at once, nested ones with their paths', async (t) => {
  const shape = {
    deployUser: v.userName(),
    swapMb: v.integer({ min: 0 }),
    sites: v.array(v.object({ name: v.fileName(), upstreams: v.array(v.hostPort()) })),
    acme: v.object({ email: v.email() }).optional(),
  };
  const err = t.throws(() =>
    checkShape(shape, { deployUser: 'Deploy User', swapMb: -1, sites: [{ name: 'ok', upstreams: ['a:1', 'not a host', 'b:0'] }, { name: '.x' }], acme: { email: 'x' } }),
  ) as VarError;
  t.ok(err instanceof VarError);
  t.same(
    err.problems.map((p) => p.path),
    ['deployUser', 'swapMb', 'sites[0].upstreams[1]', 'sites[0].upstreams[2]', 'sites[1].name', 'sites[1].upstreams', 'acme.email'],
  );
  t.equal(err.path, 'deployUser', 'the first problem is the error path');
  t.equal(err.message.split('\n').length, 7, 'one line per problem');
  t.match(err.message, /sites\[1\]\.upstreams is missing \(expected an array of host:port/);
  // A secret is never shown in a problem.
  t.throws(() => v.string().check(secret('hunter2'), 'token'), { message: 'token must be a string, got a secret' });
});

t.test('strayVars: every var the shape does not declare, at the top and inside declared objects, near misses named', async (t) => {
  const shape = {
    swapMb: v.integer(),
    timezone: v.string(),
    deployKeys: v.array(v.string()),
    acme: v.object({ email: v.string() }).optional(),
    sites: v.array(v.object({ name: v.string(), upstreams: v.array(v.string()) })).default([]),
  };
  const given = {
    swapMB: 512,
    timeZone: 'UTC',
    deployKey: 'ssh-ed25519 A',
    backup: { databases: [] },
    deployUser: 'deploy',
    acme: { email: 'a@b.c', emial: 'x' },
    sites: [{ name: 'a', upstream: ['x:1'], tls: false }],
  };
  t.same(strayVars(shape, given), [
    { path: 'swapMB', name: 'swapMB', suggestion: 'swapMb' },
    { path: 'timeZone', name: 'timeZone', suggestion: 'timezone' },
    { path: 'deployKey', name: 'deployKey', suggestion: 'deployKeys' },
    { path: 'backup', name: 'backup' },
    { path: 'deployUser', name: 'deployUser' },
    { path: 'acme.emial', name: 'emial', suggestion: 'email' },
    { path: 'sites[0].upstream', name: 'upstream', suggestion: 'upstreams' },
    { path: 'sites[0].tls', name: 'tls' },
  ]);
  t.same(
    strayVars(shape, given, new Set(['backup', 'deployUser', 'swapMB', 'tls'])).map((s) => s.path),
    ['timeZone', 'deployKey', 'acme.emial', 'sites[0].upstream', 'sites[0].tls'],
    'top-level vars the inventory shares with other tasks are left out; a declared object is this task\'s own',
  );
});

t.test('undeclaredVars: each stray var once, with the hosts that give it and the full path it was meant to be', async (t) => {
  const shape = { swapMb: v.integer().default(0), sites: v.array(v.object({ upstreams: v.array(v.string()) })).default([]) };
  const hosts = [
    { name: 'web1', vars: { swapMB: 512, backup: {}, colour: 'red', sites: [{ upstream: [] }] } },
    { name: 'web2', vars: { colour: 'red', sites: [{ upstream: [] }] } },
    { name: 'db1', vars: { backup: {}, colour: 'red' } },
  ];
  t.same(undeclaredVars(shape, hosts), [
    { path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' },
    { path: 'backup', hosts: ['web1', 'db1'] },
    { path: 'colour', hosts: ['web1', 'web2', 'db1'] },
    { path: 'sites[0].upstream', hosts: ['web1', 'web2'], suggestion: 'sites[0].upstreams' },
  ]);
  t.same(undeclaredVars(shape, hosts, new Set(['backup', 'colour'])).map((u) => u.path), ['swapMB', 'sites[0].upstream'], 'shared vars left out');
  t.same(undeclaredVars(shape, [{ name: 'web1', vars: { swapMb: 1 } }]), [], 'nothing stray, nothing listed');
});

t.test('undeclaredWarning: one line; near misses first; vars on the same hosts together; every host said once', async (t) => {
  const run = ['web1', 'web2', 'db1'];
  t.equal(
    undeclaredWarning(
      'provision',
      [
        { path: 'backup', hosts: ['db1'] },
        { path: 'colour', hosts: run },
        { path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' },
        { path: 'app', hosts: ['web1', 'web2'] },
        { path: 'repo', hosts: ['web1', 'web2'] },
        { path: 'notes', hosts: run },
        { path: 'timeZone', hosts: run, suggestion: 'timezone' },
      ],
      run,
    ),
    "task provision ignores vars it does not declare: swapMB (web1: did you mean swapMb?); timeZone (every host: did you mean timezone?); backup (db1); colour, notes (every host); app, repo (web1, web2). Vars of other tasks can be named in the inventory's sharedVars",
  );
  t.equal(
    undeclaredWarning('provision', [{ path: 'swapMB', hosts: ['web1'], suggestion: 'swapMb' }, { path: 'sites[0].tls', hosts: ['web1'] }], ['web1']),
    'task provision ignores vars it does not declare: swapMB (web1: did you mean swapMb?); sites[0].tls (web1)',
    'one host is named, not "every host"; no hint when no top-level var could be shared',
  );
  const many = Array.from({ length: 8 }, (_, i) => `web${i + 1}`);
  t.equal(
    undeclaredWarning('deploy', [{ path: 'backup', hosts: many.slice(0, 6) }], many),
    "task deploy ignores vars it does not declare: backup (web1, web2, web3 and 3 more). Vars of other tasks can be named in the inventory's sharedVars",
    'a long host list is cut (the JSON report has them all)',
  );
});

t.test('nearest: case, typos and swaps; nothing for short or distant names', async (t) => {
  const declared = ['swapMb', 'timezone', 'hostname', 'sites', 'to'];
  t.equal(nearest('swapMB', declared), 'swapMb');
  t.equal(nearest('timeZone', declared), 'timezone');
  t.equal(nearest('hsotname', declared), 'hostname', 'a swap of neighbours is one edit');
  t.equal(nearest('site', declared), 'sites');
  t.equal(nearest('tz', declared), undefined, 'short names need an exact match but for case');
  t.equal(nearest('backup', declared), undefined);
});
