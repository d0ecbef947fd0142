import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** Where certbot keeps its configuration, accounts and certificates. @example `${LETSENCRYPT_DIR}/renewal/app.example.com.conf` */
export const LETSENCRYPT_DIR = '/etc/letsencrypt';

/** What a renewal configuration (`/etc/letsencrypt/renewal/NAME.conf`) says about how to renew. */
export interface RenewalParams {
  server?: string;
  authenticator?: string;
  keyType?: string;
  /** `webroot_path`: the webroots given on the command line (certbot writes a list, `a,` for one). */
  webrootPath: string[];
  /** Domain → webroot, from the `[[webroot_map]]` section (often empty: certbot 2.1 keeps the path list only). */
  webrootMap: Readonly<Record<string, string>>;
}

/** The certificate a lineage's `cert` points at. */
export type LineageCertificate =
  | { kind: 'missing'; path: string }
  | { kind: 'unreadable'; path: string; reason: string }
  | {
      kind: 'certificate';
      path: string;
      /** DNS names of the subjectAltName extension, in the certificate's order. */
      domains: string[];
      /** Expiry, seconds since the epoch. */
      notAfter: number;
      /** `ecdsa` or `rsa` (certbot's words), from the public key. */
      keyType: string;
      serial: string;
    };

/** One certbot lineage: its renewal configuration and its current certificate. */
export interface Lineage {
  name: string;
  renewal: RenewalParams;
  certificate: LineageCertificate;
}

/**
 * certbot's lineages on a host, read from the renewal configurations and the certificates
 * themselves (what `certbot certificates` reports, without its second of Python start-up).
 * `now` is the host's clock, so expiry is judged by the host's time, not the controller's.
 */
export type CertbotState = { kind: 'certbot'; installed: boolean; now: number; lineages: Lineage[] };

// One read-only pass: the host's time, whether certbot is installed, then per renewal file its name,
// content and the certificate it names (base64, so no content can break the line format).
const SCRIPT = `printf 'now %s\\n' "$(date +%s)"
if command -v certbot >/dev/null 2>&1; then echo 'certbot installed'; else echo 'certbot missing'; fi
for f in ${LETSENCRYPT_DIR}/renewal/*.conf; do
  [ -f "$f" ] || continue
  n=\${f##*/}
  printf 'lineage %s\\n' "$(printf %s "\${n%.conf}" | base64 -w0)"
  printf 'conf %s\\n' "$(base64 -w0 < "$f")"
  c=$(sed -n 's/^cert *= *//p' "$f" | head -n 1)
  printf 'path %s\\n' "$(printf %s "$c" | base64 -w0)"
  if [ -z "$c" ] || [ ! -e "$c" ]; then echo 'cert missing'
  elif [ -r "$c" ]; then printf 'cert %s\\n' "$(base64 -w0 < "$c")"
  else echo 'cert unreadable'; fi
done`;

/**
 * certbot's lineages (renewal configurations and certificates) and the host's clock.
 *
 * @example
 * const state = await host.fact(certbotLineages);
 * const app = state.lineages.find((l) => l.name === 'app.example.com');
 */
export const certbotLineages: Fact<CertbotState> = defineFact('certbot.lineages', sh`${raw(SCRIPT)}`, parseCertbotLineages, {
  reads: [`${LETSENCRYPT_DIR}/`, '/usr/bin/certbot'],
});

/**
 * Pure parser of {@link certbotLineages}' output.
 *
 * @example parseCertbotLineages({ stdout: 'now 1700000000\ncertbot missing\n', stderr: '', exitCode: 0 }) // { kind: 'certbot', installed: false, now: 1700000000, lineages: [] }
 */
export function parseCertbotLineages({ stdout, stderr, exitCode }: FactOutput): CertbotState {
  if (exitCode !== 0) throw new Error(`cannot read certbot's lineages (exit ${exitCode}): ${stderr.trim() || 'no error output'}`);
  let now: number | undefined;
  let installed: boolean | undefined;
  const lineages: Lineage[] = [];
  let current: { name: string; conf?: string; path?: string } | undefined;
  const decode = (b64: string): string => Buffer.from(b64, 'base64').toString('utf8');
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const space = line.indexOf(' ');
    const word = space < 0 ? line : line.slice(0, space);
    const rest = space < 0 ? '' : line.slice(space + 1);
    switch (word) {
      case 'now':
        now = Number(rest);
        break;
      case 'certbot':
        installed = rest === 'installed';
        break;
      case 'lineage':
        current = { name: decode(rest) };
        break;
      case 'conf':
        if (current) current.conf = decode(rest);
        break;
      case 'path':
        if (current) current.path = decode(rest);
        break;
      case 'cert': {
        if (!current) throw new Error('a certificate line before any lineage');
        const path = current.path ?? '';
        const certificate: LineageCertificate =
          rest === 'missing' ? { kind: 'missing', path } : rest === 'unreadable' ? { kind: 'unreadable', path, reason: 'not readable' } : parseCertificate(path, Buffer.from(rest, 'base64'));
        lineages.push({ name: current.name, renewal: parseRenewalConf(current.conf ?? ''), certificate });
        current = undefined;
        break;
      }
      default:
        throw new Error(`unexpected line ${JSON.stringify(line.slice(0, 100))}`);
    }
  }
  if (now === undefined || !Number.isInteger(now) || installed === undefined) throw new Error(`unexpected output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return { kind: 'certbot', installed, now, lineages };
}

function parseCertificate(path: string, pem: Buffer): LineageCertificate {
  try {
    const cert = new X509Certificate(pem);
    const domains = (cert.subjectAltName ?? '')
      .split(', ')
      .filter((entry) => entry.startsWith('DNS:'))
      .map((entry) => entry.slice(4).toLowerCase());
    const notAfter = Math.floor(Date.parse(cert.validTo) / 1000);
    if (!Number.isFinite(notAfter)) throw new Error(`cannot read the expiry ${JSON.stringify(cert.validTo)}`);
    const type = cert.publicKey.asymmetricKeyType;
    return { kind: 'certificate', path, domains, notAfter, keyType: type === 'ec' ? 'ecdsa' : (type ?? 'unknown'), serial: cert.serialNumber.toLowerCase() };
  } catch (err) {
    return { kind: 'unreadable', path, reason: `not a PEM certificate: ${(err as Error).message}` };
  }
}

/**
 * Pure parser of a renewal configuration (configobj syntax: `key = value`, `[section]`, `[[subsection]]`).
 *
 * @example parseRenewalConf('[renewalparams]\nserver = https://acme/dir\n').server // 'https://acme/dir'
 */
export function parseRenewalConf(text: string): RenewalParams {
  const params: { server?: string; authenticator?: string; keyType?: string } = {};
  let webrootPath: string[] = [];
  const webrootMap: Record<string, string> = {};
  let section = '';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^(\[+)\s*([^\]]*?)\s*\]+$/.exec(line);
    if (header) {
      section = `${header[1]?.length === 1 ? '' : `${section.split('/')[0]}/`}${header[2]}`;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (section === 'renewalparams') {
      if (key === 'server') params.server = value;
      if (key === 'authenticator') params.authenticator = value;
      if (key === 'key_type') params.keyType = value;
      if (key === 'webroot_path') webrootPath = value.split(',').map((p) => p.trim()).filter((p) => p !== '');
    } else if (section === 'renewalparams/webroot_map') {
      webrootMap[key.toLowerCase()] = value;
    }
  }
  return { ...params, webrootPath, webrootMap };
}
