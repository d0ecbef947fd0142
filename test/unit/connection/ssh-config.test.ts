import { join } from 'node:path';
import t from 'tap';
import { parseJumpSpec, parseSshG, resolveSshConfig } from '../../../lib/connection/ssh-config.ts';

// Captured from OpenSSH 9.2 `ssh -G -F cfg web` (unrelated keywords trimmed). ssh -G leaves
// IdentityFile's ~ and %-tokens unexpanded and prints a multi-hop ProxyJump verbatim.
const webOutput = `host web
user deploy
hostname web.example.com
port 2222
identitiesonly yes
serveralivecountmax 3
serveraliveinterval 30
identityfile ~/.ssh/id_web
identityfile %d/.ssh/id_%h_%r
identityfile /keys/with space/id_%n_%p_%%d_%C
canonicalizePermittedcnames none
connecttimeout 7
proxyjump jump@bastion:2200,ssh://other@hop2:23,[fe80::1]:24
`;

// Likewise for an alias matched only by `Host *` (default identity files trimmed): no proxyjump line,
// connecttimeout none.
const defaultsOutput = `host other
user fallback
hostname other
port 22
identitiesonly no
serveraliveinterval 0
identityfile ~/.ssh/id_rsa
identityfile ~/.ssh/id_ed25519
connecttimeout none
`;

t.test('parseSshG reads the settings tackle uses', async (t) => {
  t.same(parseSshG(webOutput, { home: '/home/me', localUser: 'me' }), {
    hostname: 'web.example.com',
    user: 'deploy',
    port: 2222,
    identityFiles: ['/home/me/.ssh/id_web', '/home/me/.ssh/id_web.example.com_deploy', '/keys/with space/id_web_2222_%d_%C'],
    proxyJump: 'jump@bastion:2200,ssh://other@hop2:23,[fe80::1]:24',
    identitiesOnly: true,
    connectTimeout: 7,
    serverAliveInterval: 30,
  });
});

t.test('parseSshG leaves ~ and %d alone without a home dir', async (t) => {
  t.same(parseSshG(webOutput).identityFiles, ['~/.ssh/id_web', '%d/.ssh/id_web.example.com_deploy', '/keys/with space/id_web_2222_%d_%C']);
  t.same(parseSshG('hostname h\nidentityfile ~other/id\nidentityfile ~x\n', { home: '/home/me' }).identityFiles, ['~other/id', '~x']);
});

t.test('parseSshG: unset values are absent, `none` and 0 mean unset', async (t) => {
  const cfg = parseSshG(defaultsOutput, { home: '/h' });
  t.same(cfg, { hostname: 'other', user: 'fallback', port: 22, identityFiles: ['/h/.ssh/id_rsa', '/h/.ssh/id_ed25519'], identitiesOnly: false });
  t.notOk('proxyJump' in cfg);
  t.equal(parseSshG('hostname h\nproxyjump none\n').proxyJump, undefined);
  t.equal(parseSshG('hostname h\r\nport 2200\r\n').port, 2200, 'CRLF output');
});

t.test('parseSshG rejects output that is not ssh -G', async (t) => {
  t.throws(() => parseSshG(''), /no "hostname" line/);
  t.throws(() => parseSshG('hostname h\nport abc\n'), /non-numeric port/);
  t.throws(() => parseSshG('hostname h\nport 70000\n'), /invalid port/);
});

t.test('parseJumpSpec', async (t) => {
  const cases: Array<[string, ReturnType<typeof parseJumpSpec>]> = [
    ['bastion', [{ host: 'bastion' }]],
    ['admin@bastion:2200', [{ user: 'admin', host: 'bastion', port: 2200 }]],
    ['[fe80::1]:24', [{ host: 'fe80::1', port: 24 }]],
    ['u@[2001:db8::1]', [{ user: 'u', host: '2001:db8::1' }]],
    ['ssh://other@hop2:23', [{ user: 'other', host: 'hop2', port: 23 }]],
    ['ssh://hop2/', [{ host: 'hop2' }]],
    ['ssh://a%40b;fingerprint=SHA256-x@hop', [{ user: 'a@b', host: 'hop' }]],
    ['ssh://u@[::1]:2222', [{ user: 'u', host: '::1', port: 2222 }]],
    ['a@b@c:22', [{ user: 'a@b', host: 'c', port: 22 }]],
    [
      'jump@bastion:2200, ssh://other@hop2:23,[fe80::1]:24',
      [
        { user: 'jump', host: 'bastion', port: 2200 },
        { user: 'other', host: 'hop2', port: 23 },
        { host: 'fe80::1', port: 24 },
      ],
    ],
    ['none', []],
  ];
  for (const [spec, hops] of cases) t.same(parseJumpSpec(spec), hops, spec);
  for (const bad of ['', 'a,,b', 'host:0', 'host:99999', 'host:', 'fe80::1', '@host', '[::1', '[::1]x', 'ssh://h/path', 'ssh://%zz@h']) {
    t.throws(() => parseJumpSpec(bad), /invalid ProxyJump/, JSON.stringify(bad));
  }
});

t.test('resolveSshConfig runs ssh -G through the injected runner', async (t) => {
  const calls: string[][] = [];
  const run = async (args: string[]): Promise<string> => {
    calls.push(args);
    return defaultsOutput;
  };
  const cfg = await resolveSshConfig('other', { configFile: '/cfg', home: '/h', run });
  t.same(calls, [['-G', '-F', '/cfg', 'other']]);
  t.equal(cfg.hostname, 'other');
  await resolveSshConfig('other', { run });
  t.same(calls[1], ['-G', 'other'], 'no -F without a config file');
  await t.rejects(resolveSshConfig('-oProxyCommand=x', { run }), TypeError);
  await t.rejects(resolveSshConfig('', { run }), TypeError);
  await t.rejects(resolveSshConfig('x', { run: async () => 'garbage' }), /could not read the ssh configuration of x/);
});

t.test('resolveSshConfig with the real ssh -G: first match wins, Host * supplies defaults', async (t) => {
  const dir = t.testdir({
    config: `
Host web web-*
  HostName %h.lab.example
  User deploy
  Port 2222
  IdentityFile ~/.ssh/id_web
  ProxyJump jump@bastion:2200

Host web-db
  # Too late: web-* above already set these, and the first obtained value wins.
  User dba
  Port 5432
  IdentitiesOnly yes

Host *.direct !nojump.direct
  ProxyJump none

Host *
  User fallback
  Port 2022
  IdentityFile ~/.ssh/id_default
  ProxyJump gw.example
  ConnectTimeout 9
  ServerAliveInterval 15
`,
  });
  const configFile = join(dir, 'config');
  const resolve = (alias: string) => resolveSshConfig(alias, { configFile, home: '/home/me' });

  const web = await resolve('web');
  t.same(web, {
    hostname: 'web.lab.example',
    user: 'deploy',
    port: 2222,
    // IdentityFile accumulates across matching blocks, in order.
    identityFiles: ['/home/me/.ssh/id_web', '/home/me/.ssh/id_default'],
    proxyJump: 'jump@bastion:2200',
    identitiesOnly: false,
    connectTimeout: 9,
    serverAliveInterval: 15,
  });

  const db = await resolve('web-db');
  t.equal(db.hostname, 'web-db.lab.example');
  t.equal(db.user, 'deploy');
  t.equal(db.port, 2222);
  t.equal(db.identitiesOnly, true, 'a keyword not set earlier still applies');

  const other = await resolve('box');
  t.equal(other.hostname, 'box');
  t.equal(other.user, 'fallback');
  t.equal(other.port, 2022);
  t.equal(other.proxyJump, 'gw.example');

  t.equal((await resolve('a.direct')).proxyJump, undefined, 'ProxyJump none before Host * disables it');
  t.equal((await resolve('nojump.direct')).proxyJump, 'gw.example', 'negated pattern skips the block');
});

t.test('resolveSshConfig reports ssh failures clearly', async (t) => {
  await t.rejects(resolveSshConfig('web', { configFile: '/nonexistent/tackle-ssh-config' }), /ssh -G -F \/nonexistent\/tackle-ssh-config web failed with exit code 255: Can't open user config file/);

  const path = process.env.PATH;
  t.teardown(() => {
    process.env.PATH = path;
  });
  process.env.PATH = '/nonexistent';
  await t.rejects(resolveSshConfig('web'), /OpenSSH client \(ssh\) is not installed or not on PATH/);
});
