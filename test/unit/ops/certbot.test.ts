import t from 'tap';
import { secret } from '../../../lib/command/command.ts';
import type { Change, Operation } from '../../../lib/ops/operation.ts';
import type { CertbotState, Lineage } from '../../../lib/facts/certbot.ts';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, certbot, type CertificateOptions } from '../../../lib/ops/certbot.ts';
import { handlerRef } from '../../support/handler.ts';
import { TackleError } from '../../../lib/errors.ts';

const NOW = 1_800_000_000;
const DAY = 86_400;
const PEBBLE = 'https://10.200.1.1:14000/dir';

// A lineage as the certbot fact parses it (see test/unit/facts/certbot.test.ts for the captured one).
function lineage(changes: { name?: string; domains?: string[]; daysLeft?: number; keyType?: string; server?: string; authenticator?: string; webrootPath?: string[] } = {}): Lineage {
  return {
    name: changes.name ?? 'app.test',
    renewal: { server: changes.server ?? PEBBLE, authenticator: changes.authenticator ?? 'nginx', keyType: 'ecdsa', webrootPath: changes.webrootPath ?? [], webrootMap: {} },
    certificate: {
      kind: 'certificate',
      path: '/etc/letsencrypt/live/app.test/cert.pem',
      domains: changes.domains ?? ['app.test', 'www.app.test'],
      notAfter: NOW + (changes.daysLeft ?? 89) * DAY,
      keyType: changes.keyType ?? 'ecdsa',
      serial: '01',
    },
  };
}
const state = (...lineages: Lineage[]): CertbotState => ({ kind: 'certbot', installed: true, now: NOW, lineages });
const base: CertificateOptions = { domains: ['app.test', 'www.app.test'], email: 'ops@app.test', authenticator: 'nginx', server: PEBBLE };
const plan = (op: Operation, s: CertbotState): Change | undefined => op.plan({ state: s });
const commands = (c: Change | undefined) => c?.actions.map((a) => a.command.toString());
const CERTONLY = `certbot certonly --non-interactive --agree-tos --no-eff-email --email ops@app.test --cert-name app.test --server ${PEBBLE} --authenticator nginx -d app.test -d www.app.test`;

t.test('a missing lineage is obtained', async (t) => {
  const op = certbot.certificate({ ...base, notify: handlerRef('reload nginx') });
  t.equal(op.name, 'certbot.certificate app.test');
  t.same(op.notify, ['reload nginx']);
  const change = plan(op, state(lineage({ name: 'other' })));
  t.equal(change?.summary, `obtain certificate app.test for app.test, www.app.test from ${PEBBLE} (nginx)`);
  t.same(commands(change), [CERTONLY]);
  t.match(plan(op, { kind: 'certbot', installed: false, now: NOW, lineages: [] })?.summary, /\(certbot is not installed: this fails\)$/);
});

type Case = [title: string, options: Partial<CertificateOptions>, facts: Lineage, summary: RegExp | undefined, flags: string];
const cases: Case[] = [
  ['same names, same server, far from expiry: nothing', {}, lineage(), undefined, ''],
  ['names compared as a set, case-insensitively', { domains: ['APP.test', 'www.app.test', 'WWW.app.test'] }, lineage(), undefined, ''],
  ['order does not matter with a certName', { certName: 'app.test', domains: ['www.app.test', 'app.test'] }, lineage(), undefined, ''],
  ['a name added: --expand, no forced renewal', { domains: ['app.test', 'www.app.test', 'api.app.test'] }, lineage(), /: add api\.app\.test$/, ' --expand'],
  ['a name dropped: certbot replaces the names, no --expand', { domains: ['app.test'] }, lineage(), /: drop www\.app\.test$/, ''],
  ['within renewBeforeDays: forced renewal', {}, lineage({ daysLeft: 29.5 }), /: it expires in 29 day\(s\), within 30$/, ' --force-renewal'],
  ['renewBeforeDays is the caller\'s, not certbot\'s 30', { renewBeforeDays: 60 }, lineage({ daysLeft: 45 }), /within 60$/, ' --force-renewal'],
  ['expired', {}, lineage({ daysLeft: -1 }), /: it has expired$/, ' --force-renewal'],
  ['another server (staging → production)', { server: LETSENCRYPT_PRODUCTION }, lineage({ server: LETSENCRYPT_STAGING }), /: server https:\/\/acme-staging-v02\S+ → https:\/\/acme-v02\S+$/, ' --force-renewal'],
  ['another authenticator', { authenticator: 'webroot', webroot: '/var/www/html' }, lineage(), /: authenticator nginx → webroot$/, ' --force-renewal'],
  ['webroot unchanged (trailing slash aside)', { authenticator: 'webroot', webroot: '/var/www/html/' }, lineage({ authenticator: 'webroot', webrootPath: ['/var/www/html'] }), undefined, ''],
  ['webroot moved', { authenticator: 'webroot', webroot: '/srv/acme' }, lineage({ authenticator: 'webroot', webrootPath: ['/var/www/html'] }), /: webroot \/var\/www\/html → \/srv\/acme$/, ' --force-renewal'],
  ['key type changed', { keyType: 'rsa' }, lineage(), /: key type ecdsa → rsa$/, ' --key-type rsa --force-renewal'],
  ['key type as wanted', { keyType: 'ecdsa' }, lineage(), undefined, ''],
];

t.test('an existing lineage: renewed only for a reason', async (t) => {
  for (const [title, options, facts, summary, flags] of cases) {
    const op = certbot.certificate({ ...base, ...options } as CertificateOptions);
    const change = plan(op, state(facts));
    if (summary === undefined) {
      t.equal(change, undefined, title);
      continue;
    }
    t.match(change?.summary, summary, title);
    t.match(commands(change)?.[0], new RegExp(`${flags.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), `${title}: flags`);
  }
});

t.test('a lineage whose certificate is gone is requested again', async (t) => {
  const broken: Lineage = { ...lineage(), certificate: { kind: 'missing', path: '/etc/letsencrypt/live/app.test/cert.pem' } };
  const change = plan(certbot.certificate(base), state(broken));
  t.match(change?.summary, /its certificate \/etc\/letsencrypt\/live\/app\.test\/cert\.pem is missing/);
  t.same(commands(change), [`${CERTONLY} --force-renewal`]);
});

t.test('webroot, certName, default server, environment and EAB; secrets print as ***', async (t) => {
  const hmac = 'hmac-key-that-is-secret';
  const op = certbot.certificate({
    domains: ['b.test'],
    email: 'a@b.test',
    authenticator: 'webroot',
    webroot: '/var/www/html',
    certName: 'b',
    env: { REQUESTS_CA_BUNDLE: '/etc/ssl/ca.pem', TOKEN: secret('tok-secret') },
    eab: { kid: 'kid-1', hmacKey: secret(hmac) },
  });
  t.equal(op.name, 'certbot.certificate b');
  const change = plan(op, state());
  const command = change?.actions[0]?.command;
  t.equal(
    command?.toString(),
    `REQUESTS_CA_BUNDLE=/etc/ssl/ca.pem TOKEN=*** certbot certonly --non-interactive --agree-tos --no-eff-email --email a@b.test --cert-name b --server ${LETSENCRYPT_PRODUCTION} --authenticator webroot --webroot-path /var/www/html -d b.test --eab-kid kid-1 --eab-hmac-key ***`,
  );
  t.match(command?.reveal(), /TOKEN=tok-secret .* --eab-hmac-key hmac-key-that-is-secret$/, 'the host gets the real values');
  const shown = JSON.stringify({ change, commands: commands(change) });
  t.notOk(shown.includes(hmac) || shown.includes('tok-secret'), 'never in the plan, its JSON or the commands shown');
});

t.test('paths of a lineage, for nginx.site tls', async (t) => {
  t.same(certbot.paths('app.test'), {
    certificate: '/etc/letsencrypt/live/app.test/fullchain.pem',
    key: '/etc/letsencrypt/live/app.test/privkey.pem',
    cert: '/etc/letsencrypt/live/app.test/cert.pem',
    chain: '/etc/letsencrypt/live/app.test/chain.pem',
  });
  t.throws(() => certbot.paths('../x'), TackleError);
});

t.test('bad input is refused, naming the step', async (t) => {
  const bad: [Partial<CertificateOptions>, RegExp][] = [
    [{ domains: [] }, /domains must be a non-empty array/],
    [{ domains: ['*.app.test'] }, /wildcard certificates need the DNS-01 challenge/],
    [{ domains: ['app test'] }, /is not a domain name/],
    [{ email: 'nobody' }, /email must be an address/],
    [{ authenticator: 'standalone' as 'nginx' }, /authenticator must be 'webroot' or 'nginx'/],
    [{ authenticator: 'webroot' }, /needs webroot, an absolute path/],
    [{ webroot: '/var/www/html' }, /webroot only applies to the 'webroot' authenticator/],
    [{ server: 'acme.example' }, /server must be an ACME directory URL/],
    [{ certName: 'a/b' }, /certName "a\/b"/],
    [{ keyType: 'dsa' as 'rsa' }, /keyType must be/],
    [{ env: { 'BAD-NAME': 'x' } }, /is not a variable name/],
    [{ renewBeforeDays: -1 }, /renewBeforeDays must be a number of days/],
  ];
  for (const [change, message] of bad) t.throws(() => certbot.certificate({ ...base, ...change } as CertificateOptions), { name: 'TackleError', message }, String(message));
  t.throws(() => certbot.certificate({ ...base, email: 'x' }), { message: /^certbot\.certificate app\.test: / });
});
