import { Secret, sh, type Command } from '../command/command.ts';
import { defineOperation, type Change, type CommonOptions, type Operation } from './operation.ts';
import { LETSENCRYPT_DIR, certbotLineages, type CertbotState, type Lineage } from '../facts/certbot.ts';
import { refuse } from './refuse.ts';

/** Let's Encrypt's production ACME directory: certbot's default, trusted by browsers, strictly rate-limited. @example certbot.certificate({ …, server: LETSENCRYPT_PRODUCTION }) */
export const LETSENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
/** Let's Encrypt's staging ACME directory: generous limits, certificates no browser trusts. For trying a setup. @example certbot.certificate({ …, server: LETSENCRYPT_STAGING }) */
export const LETSENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** Desired state of one certbot certificate (a lineage). */
export interface CertificateOptions extends Omit<CommonOptions, 'name'> {
  /** The names the certificate covers; the first is the default lineage name. No wildcards (they need DNS-01). */
  domains: readonly string[];
  /** The ACME account's contact address. */
  email: string;
  /**
   * How the http-01 challenge is answered: `webroot` writes files under `webroot` that a web
   * server already serves on port 80 (nginx.site's `acmeWebroot`); `nginx` lets certbot's nginx
   * plugin (package python3-certbot-nginx) answer through the running nginx, even before any site exists.
   */
  authenticator: 'webroot' | 'nginx';
  /** The directory served at `/.well-known/acme-challenge/`'s parent; required with `webroot`. */
  webroot?: string;
  /** ACME directory URL; default {@link LETSENCRYPT_PRODUCTION}. */
  server?: string;
  /** The lineage name (directory under /etc/letsencrypt/live); default the first domain. */
  certName?: string;
  /** Key type of the certificate; default: certbot's (ECDSA since certbot 2.0). */
  keyType?: 'ecdsa' | 'rsa';
  /**
   * Environment of this step's certbot run, e.g. `REQUESTS_CA_BUNDLE` for a private ACME CA.
   * Renewals by certbot.timer do not see it. `secret()` values print as `***`.
   */
  env?: Readonly<Record<string, string | Secret>>;
  /** External account binding, for CAs that require one (ZeroSSL, Google, some private CAs). */
  eab?: { kid: string; hmacKey: string | Secret };
  /** Request a new certificate when the current one expires within this many days. Default 30. */
  renewBeforeDays?: number;
}

/** The files of a lineage, in the shape nginx.site's `tls` takes. */
export interface LineagePaths {
  /** The certificate with its intermediates (`fullchain.pem`): what a server must send. */
  certificate: string;
  key: string;
  /** The leaf alone (`cert.pem`). */
  cert: string;
  /** The intermediates alone (`chain.pem`). */
  chain: string;
}

interface Desired {
  domains: string[];
  email: string;
  authenticator: 'webroot' | 'nginx';
  webroot: string | undefined;
  server: string;
  certName: string;
  keyType: 'ecdsa' | 'rsa' | undefined;
  env: [string, string | Secret][];
  eab: { kid: string; hmacKey: string | Secret } | undefined;
  renewBeforeDays: number;
}

const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const CERT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The paths certbot keeps a lineage's current files at (links into its archive, updated on renewal).
 *
 * @example
 * nginx.site({ name: 'app', serverNames: ['app.example.com'], upstreams: ['127.0.0.1:8000'], tls: certbot.paths('app.example.com') })
 */
function paths(certName: string): LineagePaths {
  if (typeof certName !== 'string' || !CERT_NAME.test(certName)) throw refuse('certbot.paths', `${JSON.stringify(certName)} is not a certificate name`);
  const live = `${LETSENCRYPT_DIR}/live/${certName}`;
  return { certificate: `${live}/fullchain.pem`, key: `${live}/privkey.pem`, cert: `${live}/cert.pem`, chain: `${live}/chain.pem` };
}

function checkCertificate(o: CertificateOptions): Desired {
  const where = `certbot.certificate${typeof o?.certName === 'string' ? ` ${o.certName}` : Array.isArray(o?.domains) && typeof o.domains[0] === 'string' ? ` ${o.domains[0]}` : ''}`;
  const fail = (message: string): never => {
    throw refuse(where, message);
  };
  if (!Array.isArray(o?.domains) || o.domains.length === 0) fail('domains must be a non-empty array of host names');
  const domains: string[] = [];
  for (const d of o.domains as unknown[]) {
    if (typeof d !== 'string') fail(`${JSON.stringify(d)} is not a domain`);
    const name = (d as string).toLowerCase();
    if (name.startsWith('*.')) fail(`${name}: wildcard certificates need the DNS-01 challenge, which neither the webroot nor the nginx authenticator answers`);
    if (!DOMAIN.test(name)) fail(`${JSON.stringify(d)} is not a domain name`);
    if (!domains.includes(name)) domains.push(name);
  }
  if (typeof o.email !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(o.email)) fail(`email must be an address, got ${JSON.stringify(o.email)}`);
  if (o.authenticator !== 'webroot' && o.authenticator !== 'nginx') fail(`authenticator must be 'webroot' or 'nginx', got ${JSON.stringify(o.authenticator)}`);
  if (o.authenticator === 'webroot' && (typeof o.webroot !== 'string' || !o.webroot.startsWith('/'))) fail('the webroot authenticator needs webroot, an absolute path');
  if (o.authenticator === 'nginx' && o.webroot !== undefined) fail("webroot only applies to the 'webroot' authenticator");
  const server = o.server ?? LETSENCRYPT_PRODUCTION;
  if (typeof server !== 'string' || !/^https?:\/\/\S+$/.test(server)) fail(`server must be an ACME directory URL, got ${JSON.stringify(server)}`);
  const certName = o.certName ?? (domains[0] as string);
  if (!CERT_NAME.test(certName)) fail(`certName ${JSON.stringify(certName)} must be letters, digits, '.', '_' and '-'`);
  if (o.keyType !== undefined && o.keyType !== 'ecdsa' && o.keyType !== 'rsa') fail(`keyType must be 'ecdsa' or 'rsa', got ${JSON.stringify(o.keyType)}`);
  const env = Object.entries(o.env ?? {});
  for (const [k, v] of env) {
    if (!ENV_NAME.test(k)) fail(`env: ${JSON.stringify(k)} is not a variable name`);
    if (typeof v !== 'string' && !(v instanceof Secret)) fail(`env ${k} must be a string or secret()`);
  }
  if (o.eab !== undefined && (typeof o.eab.kid !== 'string' || o.eab.kid === '' || (typeof o.eab.hmacKey !== 'string' && !(o.eab.hmacKey instanceof Secret)))) fail('eab needs kid and hmacKey');
  const days = o.renewBeforeDays ?? 30;
  if (typeof days !== 'number' || !Number.isFinite(days) || days < 0) fail(`renewBeforeDays must be a number of days, 0 or more, got ${JSON.stringify(days)}`);
  return { domains, email: o.email, authenticator: o.authenticator, webroot: o.webroot, server, certName, keyType: o.keyType, env, eab: o.eab, renewBeforeDays: days };
}

/** Why the lineage needs a new certificate, in words; `force` when certbot would otherwise keep the current one. */
interface Verdict {
  reasons: string[];
  force: boolean;
  expand: boolean;
}

/** Pure: what is wrong with an existing lineage, or nothing. */
function judge(d: Desired, lineage: Lineage, now: number): Verdict {
  const reasons: string[] = [];
  let force = false;
  let expand = false;
  const cert = lineage.certificate;
  if (cert.kind !== 'certificate') {
    reasons.push(`its certificate ${cert.path || '(none named)'} is ${cert.kind}`);
    force = true;
  } else {
    const added = d.domains.filter((x) => !cert.domains.includes(x));
    const removed = cert.domains.filter((x) => !d.domains.includes(x));
    // With --cert-name, certbot replaces the lineage's names with exactly those given.
    if (added.length) reasons.push(`add ${added.join(', ')}`);
    if (removed.length) reasons.push(`drop ${removed.join(', ')}`);
    expand = added.length > 0 && removed.length === 0;
    const left = (cert.notAfter - now) / 86400;
    if (left < d.renewBeforeDays) {
      reasons.push(left <= 0 ? 'it has expired' : `it expires in ${Math.floor(left)} day(s), within ${d.renewBeforeDays}`);
      force = true;
    }
    if (d.keyType !== undefined && cert.keyType !== d.keyType) {
      reasons.push(`key type ${cert.keyType} → ${d.keyType}`);
      force = true;
    }
  }
  // Renewals by certbot.timer replay the renewal configuration: it must say what is wanted now.
  const server = lineage.renewal.server ?? LETSENCRYPT_PRODUCTION;
  if (server !== d.server) {
    reasons.push(`server ${server} → ${d.server}`);
    force = true;
  }
  if (lineage.renewal.authenticator !== d.authenticator) {
    reasons.push(`authenticator ${lineage.renewal.authenticator ?? '(none)'} → ${d.authenticator}`);
    force = true;
  } else if (d.authenticator === 'webroot') {
    const { webrootPath, webrootMap } = lineage.renewal;
    // certbot keeps the path as given: '/var/www/html/' and '/var/www/html' are the same webroot.
    const same = (p: string | undefined): boolean => p === undefined || trimSlash(p) === trimSlash(d.webroot ?? '');
    const mapped = d.domains.filter((x) => !same(webrootMap[x]));
    if (mapped.length || !webrootPath.every(same)) {
      reasons.push(`webroot ${[...new Set([...webrootPath, ...mapped.map((x) => webrootMap[x])])].join(', ')} → ${d.webroot}`);
      force = true;
    }
  }
  return { reasons, force, expand };
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

function certonly(d: Desired, verdict: { force: boolean; expand: boolean }): Command {
  const env = d.env.map(([k, v]) => sh`${k}=${v}`);
  const args = [
    sh`certonly --non-interactive --agree-tos --no-eff-email --email ${d.email}`,
    sh`--cert-name ${d.certName} --server ${d.server} --authenticator ${d.authenticator}`,
    ...(d.webroot === undefined ? [] : [sh`--webroot-path ${d.webroot}`]),
    sh`${d.domains.flatMap((x) => ['-d', x])}`,
    ...(d.keyType === undefined ? [] : [sh`--key-type ${d.keyType}`]),
    ...(d.eab === undefined ? [] : [sh`--eab-kid ${d.eab.kid} --eab-hmac-key ${d.eab.hmacKey}`]),
    ...(verdict.expand ? [sh`--expand`] : []),
    ...(verdict.force ? [sh`--force-renewal`] : []),
  ];
  return sh`${env.length ? sh`${env} ` : sh``}certbot ${args}`;
}

function planCertificate(d: Desired, state: CertbotState): Change | undefined {
  // Planned as a whole, an earlier step installing certbot shows here as installed.
  const note = state.installed ? '' : ' (certbot is not installed: this fails)';
  const lineage = state.lineages.find((l) => l.name === d.certName);
  if (!lineage) {
    return {
      summary: `obtain certificate ${d.certName} for ${d.domains.join(', ')} from ${d.server} (${d.authenticator})${note}`,
      actions: [{ command: certonly(d, { force: false, expand: false }) }],
      effects: CERTONLY_EFFECTS,
    };
  }
  const verdict = judge(d, lineage, state.now);
  if (verdict.reasons.length === 0) return undefined;
  return { summary: `renew certificate ${d.certName}: ${verdict.reasons.join('; ')}${note}`, actions: [{ command: certonly(d, verdict) }], effects: CERTONLY_EFFECTS };
}

// certbot's own directories; its nginx authenticator puts nginx's configuration back as it was.
const CERTONLY_EFFECTS = { writes: [`${LETSENCRYPT_DIR}/`, '/var/lib/letsencrypt/', '/var/log/letsencrypt/'] };

/**
 * Ensures a certbot certificate (lineage) for exactly `domains`, from `server`, valid for more
 * than `renewBeforeDays`. Nothing is requested while the lineage covers the same names, was issued
 * by the same server and authenticator, and is not close to expiry (judged by the host's clock).
 * Otherwise `certbot certonly --non-interactive` runs (`--expand` when names were only added,
 * `--force-renewal` when certbot would keep the current certificate). The files are at
 * {@link certbot.paths}; renewal afterwards is certbot.timer's job (enable it with systemd.service).
 *
 * @example
 * await host.run(certbot.certificate({ domains: ['app.example.com'], email: 'ops@example.com', authenticator: 'nginx', notify: handler('reload nginx') }));
 */
function certificate(options: CertificateOptions): Operation {
  const desired = checkCertificate(options);
  return defineOperation({
    name: `certbot.certificate ${desired.certName}`,
    facts: { state: certbotLineages },
    options: { notify: options.notify },
    plan: ({ state }) => planCertificate(desired, state),
  });
}

/**
 * certbot (Let's Encrypt and other ACME CAs) operations.
 *
 * @example
 * await host.run(certbot.certificate({ domains: ['app.example.com'], email: 'ops@example.com', authenticator: 'webroot', webroot: '/var/www/html' }));
 * const tls = certbot.paths('app.example.com'); // { certificate: '/etc/letsencrypt/live/app.example.com/fullchain.pem', key: … }
 */
export const certbot = { certificate, paths };
