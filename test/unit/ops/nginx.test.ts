import { readFileSync } from 'node:fs';
import t from 'tap';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import { sha256Hex, type PathInfo } from '../../../lib/facts/files.ts';
import type { NginxInstall } from '../../../lib/facts/nginx.ts';
import { nginx, renderSite, type SiteSpec } from '../../../lib/ops/nginx.ts';
import { handlerRef } from '../../support/handler.ts';

// Goldens: checked by `nginx -t` on a lab host (nginx 1.22.1) when they were written; the e2e
// tests (test/e2e/web-*.test.ts) load such files into a real nginx on every run.
const golden = (name: string) => readFileSync(new URL(`./golden/${name}`, import.meta.url), 'utf8');

const full: SiteSpec = {
  name: 'app',
  serverNames: ['app.test', 'www.app.test'],
  upstreams: { servers: ['127.0.0.1:8000', 'unix:/run/app.sock'], keepalive: 8 },
  websocketPaths: ['/ws'],
  rateLimit: { rate: '10r/s', burst: 20, nodelay: true },
  gzip: true,
  clientMaxBodySize: '10m',
  tls: { certificate: '/etc/letsencrypt/live/app.test/fullchain.pem', key: '/etc/letsencrypt/live/app.test/privkey.pem' },
  locations: [{ path: '/' }, { path: '/static/', root: '/srv/app/static', extra: ['expires 7d', 'add_header Cache-Control "public";'] }, { path: '= /metrics', proxyPass: 'http://127.0.0.1:9100' }],
};
const plain: SiteSpec = { name: 'plain', serverNames: ['plain.test'], upstreams: ['127.0.0.1:9000'] };

t.test('renderSite goldens', async (t) => {
  t.equal(renderSite(full, { nginxVersion: '1.22.1' }), golden('nginx-site-tls.conf'), 'TLS, websocket, rate limit, gzip, keepalive, static and extra locations');
  t.equal(renderSite(plain), golden('nginx-site-http.conf'), 'the smallest site: one upstream over HTTP');
});

t.test('HTTP/2 in the syntax of the nginx that reads the file', async (t) => {
  // Debian 12's 1.22 refuses `http2 on;`; from 1.25.1 (Debian 13: 1.26) `listen … http2` warns at nginx -t.
  const directive = golden('nginx-site-tls.conf').replace('    listen 443 ssl http2;\n    listen [::]:443 ssl http2;\n', '    listen 443 ssl;\n    listen [::]:443 ssl;\n    http2 on;\n');
  for (const nginxVersion of ['1.25.1', '1.26.3', '1.27.0', '2.0.0']) t.equal(renderSite(full, { nginxVersion }), directive, `${nginxVersion}: the http2 directive`);
  for (const nginxVersion of ['1.18.0', '1.22.1', '1.25.0', '0.9.9']) t.equal(renderSite(full, { nginxVersion }), golden('nginx-site-tls.conf'), `${nginxVersion}: listen … http2`);
  t.equal(renderSite(full), directive, 'an unknown version: a current nginx');
  t.equal(renderSite(full, { nginxVersion: 'custom' }), directive, 'an unreadable version: a current nginx');
  t.notMatch(renderSite(plain, { nginxVersion: '1.26.3' }), /http2/, 'no HTTP/2 without TLS');
});

t.test('renderSite details', async (t) => {
  const https8443 = renderSite({ ...plain, tls: { certificate: '/c.pem', key: '/k.pem' }, listen: { http: 8080, https: 8443 }, ipv6: false });
  t.match(https8443, /listen 8080;\n    server_name/, 'no [::] listen with ipv6: false');
  t.match(https8443, /return 301 https:\/\/\$host:8443\$request_uri;/, 'the redirect names a non-default port');
  t.match(https8443, /location \^~ \/\.well-known\/acme-challenge\/ \{\n        root \/var\/www\/html;/, 'ACME from the default webroot with TLS');
  t.notMatch(renderSite(plain), /acme-challenge/, 'no ACME location without TLS or acmeWebroot');
  t.match(renderSite({ ...plain, acmeWebroot: '/srv/acme' }), /root \/srv\/acme;/);
  t.notMatch(renderSite({ ...plain, securityHeaders: false }), /add_header/);
  t.notMatch(renderSite(plain), /Strict-Transport-Security/, 'HSTS only with TLS');
  t.match(renderSite({ ...plain, gzip: false }), /\n    gzip off;\n/);
  t.match(renderSite({ ...plain, websocketPaths: ['/ws'] }), /map \$http_upgrade \$site_plain_connection_upgrade \{\n    default upgrade;\n    '' close;\n\}/);
  t.match(renderSite({ ...plain, rateLimit: { rate: '5r/m', zone: 'shared' } }), /limit_req_zone \$binary_remote_addr zone=shared:10m rate=5r\/m;[\s\S]*limit_req zone=shared;\n    limit_req_status 429;/);
  t.match(renderSite({ ...plain, name: 'my-app.example' }), /upstream site_my_app_example \{/, 'identifiers shared across sites derive from the name');
});

t.test('bad input is refused, naming the site', async (t) => {
  const bad: [Partial<SiteSpec>, RegExp][] = [
    [{ name: '../etc' }, /name must be a file name/],
    [{ name: '.hidden' }, /name must be a file name/],
    [{ serverNames: [] }, /serverNames must be a non-empty array/],
    [{ serverNames: ['a.test; include /etc/passwd'] }, /is not a server name/],
    [{ upstreams: [] }, /upstreams must be a non-empty array/],
    [{ upstreams: ['127.0.0.1:80; evil'] }, /an upstream server must be one word/],
    [{ upstreams: { servers: ['a:1'], keepalive: 0 } }, /keepalive must be a whole number/],
    [{ locations: [{ path: '/a { }' }] }, /is not a location match/],
    [{ locations: [{ path: '/', root: '/srv', proxyPass: 'http://x' }] }, /give root or proxyPass, not both/],
    [{ locations: [{ path: '/', root: 'relative' }] }, /root must be an absolute path/],
    [{ locations: [{ path: '/', proxyPass: 'ftp://x' }] }, /proxyPass must be an http/],
    [{ locations: [{ path: '/', extra: ['a;\nb'] }] }, /one non-empty line/],
    [{ locations: [{ path: '/ws' }], websocketPaths: ['/ws'] }, /location \/ws is given twice/],
    [{ rateLimit: { rate: '10/s' } }, /rateLimit.rate must look like/],
    [{ rateLimit: { rate: '1r/s', zone: 'a-b' } }, /rateLimit.zone/],
    [{ rateLimit: { rate: '1r/s', burst: -1 } }, /burst must be a whole number/],
    [{ clientMaxBodySize: '10 MB' }, /clientMaxBodySize/],
    [{ tls: { certificate: '/c $x', key: '/k' } }, /tls.certificate must be one word/],
    [{ tls: { certificate: '/c', key: '/k' }, listen: { http: 443, https: 443 } }, /both 443/],
    [{ listen: { http: 70000 } }, /listen.http must be a port number/],
  ];
  for (const [change, message] of bad) t.throws(() => nginx.site({ ...plain, ...change } as SiteSpec), { name: 'TackleError', message }, String(message));
  t.throws(() => nginx.site({ ...plain, serverNames: ['x;'] }), { name: 'TackleError', message: /^nginx\.site plain: / });
  t.throws(() => nginx.defaultSite({} as { present: boolean }), /present must be true or false/);
});

// ------------------------------------------------------------------ planning, from given facts

const installed: NginxInstall = { kind: 'installed', version: '1.22.1' };
const missing: PathInfo = { kind: 'missing' };
const file = (content: string): PathInfo => ({ kind: 'file', mode: '0644', owner: 'root', group: 'root', uid: 0, gid: 0, size: content.length, sha256: sha256Hex(content), content: Buffer.from(content).toString('base64') });
const link = (target: string): PathInfo => ({ kind: 'link', target });
const plan = (op: Operation, facts: Record<string, unknown>): Change | undefined => op.plan(facts);
const script = (c: Change | undefined) => c?.actions.map((a) => a.command.toString()).join('\n---\n') ?? '';

t.test('nginx.site plans', async (t) => {
  const op = nginx.site({ ...plain, notify: handlerRef('reload nginx') });
  t.equal(op.name, 'nginx.site plain');
  t.same(op.notify, ['reload nginx']);
  const content = renderSite(plain);

  const create = plan(op, { file: missing, link: missing, install: installed });
  t.equal(
    create?.summary,
    `site plain: create /etc/nginx/sites-available/plain (${content.length} bytes, mode 0644); create symlink /etc/nginx/sites-enabled/plain → /etc/nginx/sites-available/plain, check with nginx -t`,
  );
  const commands = create?.actions.map((a) => a.command.toString()) ?? [];
  t.equal(commands.length, 4, 'keep the old file and link, write, link, check the whole or restore');
  t.match(commands[0], /cp -P -p -- \/etc\/nginx\/sites-available\/plain [\s\S]*cp -P -p -- \/etc\/nginx\/sites-enabled\/plain /, 'the previous file and link are kept aside');
  t.equal(create?.actions[1]?.stdin, content, 'the files.file writer');
  t.match(commands[1], /mktemp \/etc\/nginx\/sites-available\/\.tackle-[0-9a-f]{8}-XXXXXX/, 'its temporary file hidden in sites-available');
  t.match(commands[2], /ln -sfn -- \/etc\/nginx\/sites-available\/plain /, 'the files.link writer');
  t.match(commands[3], /nginx -t 2>&1 <\/dev\/null\); then .*mv -fT -- \/etc\/nginx\/sites-available\/\.plain\.tackle-prev .*mv -fT -- \/etc\/nginx\/sites-enabled\/\.plain\.tackle-prev /, 'on rejection: file and link as they were');
  t.match(create?.diff, /^--- \/dev\/null\n\+\+\+ \/etc\/nginx\/sites-available\/plain\n/);
  t.notMatch(script(create), /reload|restart/, 'no reload: that is the handler\'s job');

  t.equal(plan(op, { file: file(content), link: link('/etc/nginx/sites-available/plain'), install: installed }), undefined, 'converged');
  t.equal(plan(op, { file: file(content), link: link('../sites-available/plain'), install: installed }), undefined, 'a relative link counts');

  const update = plan(op, { file: file(content.replace('9000', '9001')), link: link('/etc/nginx/sites-available/plain'), install: installed });
  t.match(update?.summary, /^site plain: update \/etc\/nginx\/sites-available\/plain \(\d+ bytes\), check with nginx -t$/);
  t.match(update?.diff, /-    server 127\.0\.0\.1:9001;\n\+    server 127\.0\.0\.1:9000;/);

  const relink = plan(op, { file: file(content), link: missing, install: installed });
  t.equal(relink?.summary, 'site plain: create symlink /etc/nginx/sites-enabled/plain → /etc/nginx/sites-available/plain, check with nginx -t');
  t.notOk(relink?.actions.some((a) => a.stdin !== undefined), 'only the link changes');
  t.notOk(relink?.diff);
  t.notMatch(script(relink), /cat >/);
  t.match(plan(op, { file: file(content), link: link('/srv/other'), install: installed })?.summary, /retarget symlink \/etc\/nginx\/sites-enabled\/plain: \/srv\/other → \/etc\/nginx\/sites-available\/plain/);

  t.match(plan(op, { file: missing, link: missing, install: { kind: 'missing' } })?.summary, /\(nginx is not installed: this fails\)$/, 'a dry run before the install plans, truthfully');

  const tls = nginx.site(full);
  const old = renderSite(full, { nginxVersion: '1.22.1' });
  const enabled = link('/etc/nginx/sites-available/app');
  t.equal(plan(tls, { file: file(old), link: enabled, install: installed }), undefined, 'nginx 1.22: converged with listen … http2');
  const upgraded = plan(tls, { file: file(old), link: enabled, install: { kind: 'installed', version: '1.26.3' } });
  t.equal(upgraded?.actions[1]?.stdin, renderSite(full, { nginxVersion: '1.26.3' }), 'nginx upgraded to 1.26: the site is rewritten with the http2 directive');
  t.match(upgraded?.diff, /-    listen 443 ssl http2;\n-    listen \[::\]:443 ssl http2;\n\+    listen 443 ssl;\n\+    listen \[::\]:443 ssl;\n\+    http2 on;/);
  t.throws(() => plan(op, { file: { kind: 'directory', mode: '0755', owner: 'root', group: 'root', uid: 0, gid: 0 }, link: missing, install: installed }), { name: 'TackleError', message: /sites-available\/plain is a directory/ });
  t.throws(() => plan(op, { file: missing, link: file('x'), install: installed }), { name: 'TackleError', message: /sites-enabled\/plain is a file, not a symlink/ });
  t.throws(() => plan(op, { file: link('/x'), link: missing, install: installed }), { name: 'TackleError', message: /^nginx\.site: \/etc\/nginx\/sites-available\/plain is a link to \/x, not a regular file/ });
});

t.test('nginx.defaultSite plans', async (t) => {
  const off = nginx.defaultSite({ present: false, notify: handlerRef('reload nginx') });
  t.equal(off.name, 'nginx.defaultSite disabled');
  t.equal(plan(off, { link: missing, install: installed }), undefined);
  t.equal(script(plan(off, { link: link('/etc/nginx/sites-available/default'), install: installed })), 'rm -f -- /etc/nginx/sites-enabled/default');
  t.equal(plan(off, { link: missing, install: { kind: 'missing' } }), undefined, 'nothing to remove (planned as a whole, a step installing nginx shows here as the link it creates)');
  const on = nginx.defaultSite({ present: true });
  t.equal(plan(on, { link: link('/etc/nginx/sites-available/default'), install: installed }), undefined);
  t.match(script(plan(on, { link: missing, install: installed })), /\[ -f \/etc\/nginx\/sites-available\/default \] \|\|[\s\S]*nginx -t/);
});
