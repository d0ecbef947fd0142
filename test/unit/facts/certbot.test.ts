import { readFileSync } from 'node:fs';
import t from 'tap';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { gatherFacts } from '../../../lib/facts/gather.ts';
import { certbotLineages, parseCertbotLineages, parseRenewalConf } from '../../../lib/facts/certbot.ts';

// Captured from a lab host (Debian 12, certbot 2.1.0) after two certificates from pebble: `app.test`
// (nginx authenticator, reissued as RSA) and `www` (webroot /var/www/html, ECDSA).
const captured = readFileSync(new URL('./fixtures/certbot-lineages.txt', import.meta.url), 'utf8');
const out = (stdout: string, exitCode = 0, stderr = '') => ({ stdout, stderr, exitCode });
const b64 = (s: string) => Buffer.from(s).toString('base64');

t.test('captured lineages: renewal parameters and the certificates themselves', async (t) => {
  const state = parseCertbotLineages(out(captured));
  t.equal(state.installed, true);
  t.equal(state.now, 1795315441, "the host's clock");
  t.same(
    state.lineages.map((l) => [l.name, l.renewal]),
    [
      ['app.test', { server: 'https://10.200.1.1:14000/dir', authenticator: 'nginx', keyType: 'rsa', webrootPath: [], webrootMap: {} }],
      ['www', { server: 'https://10.200.1.1:14000/dir', authenticator: 'webroot', keyType: 'ecdsa', webrootPath: ['/var/www/html'], webrootMap: {} }],
    ],
  );
  t.same(state.lineages[0]?.certificate, {
    kind: 'certificate',
    path: '/etc/letsencrypt/live/app.test/cert.pem',
    domains: ['app.test'],
    notAfter: 1953081811,
    keyType: 'rsa',
    serial: '48a67f10ce122dc0',
  });
  t.match(state.lineages[1]?.certificate, { kind: 'certificate', domains: ['www.app.test'], keyType: 'ecdsa' });
});

t.test('no certbot, no lineages; missing and unreadable certificates', async (t) => {
  t.same(parseCertbotLineages(out('now 1700000000\ncertbot missing\n')), { kind: 'certbot', installed: false, now: 1700000000, lineages: [] });
  const conf = '[renewalparams]\nauthenticator = nginx\n';
  const broken = parseCertbotLineages(
    out(`now 1\ncertbot installed\nlineage ${b64('a')}\nconf ${b64(conf)}\npath ${b64('/etc/letsencrypt/live/a/cert.pem')}\ncert missing\nlineage ${b64('b')}\nconf ${b64(conf)}\npath ${b64('/x')}\ncert ${b64('not a pem')}\n`),
  );
  t.same(broken.lineages[0]?.certificate, { kind: 'missing', path: '/etc/letsencrypt/live/a/cert.pem' });
  t.match(broken.lineages[1]?.certificate, { kind: 'unreadable', path: '/x', reason: /not a PEM certificate/ });
});

t.test('bad output is an error, not a guess', async (t) => {
  t.throws(() => parseCertbotLineages(out('', 1, 'date: not found')), /cannot read certbot's lineages \(exit 1\): date: not found/);
  t.throws(() => parseCertbotLineages(out('hello\n')), /unexpected line "hello"/);
  t.throws(() => parseCertbotLineages(out('certbot installed\n')), /unexpected output/);
});

t.test('renewal configuration: sections, lists and the webroot map', async (t) => {
  const conf = [
    '# renew_before_expiry = 30 days',
    'cert = /etc/letsencrypt/live/x/cert.pem',
    '[renewalparams]',
    'server = https://acme.example/dir',
    'authenticator = webroot',
    'webroot_path = /var/www/a, /var/www/b,',
    '[[webroot_map]]',
    'X.example = /var/www/a',
    'y.example = /var/www/b',
  ].join('\n');
  t.same(parseRenewalConf(conf), {
    server: 'https://acme.example/dir',
    authenticator: 'webroot',
    webrootPath: ['/var/www/a', '/var/www/b'],
    webrootMap: { 'x.example': '/var/www/a', 'y.example': '/var/www/b' },
  });
  t.same(parseRenewalConf('server = top-level is not renewalparams\n'), { webrootPath: [], webrootMap: {} });
});

t.test('the fact script runs in a real POSIX sh (this machine has no certbot)', async (t) => {
  const [state] = await gatherFacts(new LocalConnection('local'), [certbotLineages]);
  t.match(state, { kind: 'certbot', lineages: [] });
  t.ok(Math.abs((state as { now: number }).now - Date.now() / 1000) < 60, 'now is the clock');
});
