import { Buffer } from 'node:buffer';
import { Command, raw, sh } from '../command/command.ts';
import { receiveWhole, tempFiles, type ContentDigest } from '../connection/replace.ts';
import { defineOperation, type Change, type CommonOptions, type Operation } from '../engine/operation.ts';
import { TackleError } from '../errors.ts';
import { pathInfo, sha256Hex, type PathInfo } from '../facts/files.ts';
import { NGINX_SITES_AVAILABLE, NGINX_SITES_ENABLED, nginxInstall, sitePaths, type NginxInstall } from '../facts/nginx.ts';
import { jsdiff } from '../lazy.ts';

/** One `location` block of a site. Without `root` or `proxyPass` it proxies to the site's upstream. */
export interface SiteLocation {
  /** The match, with an optional modifier: `'/'`, `'/static/'`, `'= /health'`, `'~* \\.png$'`. */
  path: string;
  /** Proxy to this URL instead of the site's upstream, e.g. `'http://127.0.0.1:9000'`. */
  proxyPass?: string;
  /** Serve files from this directory instead of proxying. */
  root?: string;
  /** More directives for this location, one per entry (`'expires 7d'`); a missing `;` is added. */
  extra?: readonly string[];
}

/** `limit_req` for the whole site, keyed by client address. Rejected requests get 429. */
export interface RateLimit {
  /** The shared zone's name; default: derived from the site name, so each site has its own. */
  zone?: string;
  /** Requests per second or minute: `'10r/s'`, `'60r/m'`. */
  rate: string;
  /** Requests allowed above the rate before rejecting (queued unless `nodelay`). */
  burst?: number;
  /** Serve the burst at once instead of spacing it out at the rate. */
  nodelay?: boolean;
}

/** Servers behind the site, `host:port` or `unix:/path`; `keepalive` keeps that many idle connections open. */
export type Upstreams = readonly string[] | { servers: readonly string[]; keepalive?: number };

/** A reverse-proxy site: what {@link renderSite} turns into an nginx server configuration. */
export interface SiteSpec {
  /** The file name in sites-available and sites-enabled: letters, digits, `.`, `_`, `-`. */
  name: string;
  serverNames: readonly string[];
  /** Ports; default http 80, https 443 (https only with `tls`). */
  listen?: { http?: number; https?: number };
  upstreams: Upstreams;
  /** Default: one `location /` proxying to the upstream. Given, exactly these (plus websocket and ACME locations). */
  locations?: readonly SiteLocation[];
  /** Locations proxied with the WebSocket upgrade headers, HTTP/1.1 and a one-hour read timeout. */
  websocketPaths?: readonly string[];
  rateLimit?: RateLimit;
  /** X-Frame-Options, X-Content-Type-Options, Referrer-Policy, and with TLS Strict-Transport-Security. Default true. */
  securityHeaders?: boolean;
  /** `true`: gzip for text types, also for proxied responses; `false`: `gzip off`; default: as nginx.conf says. */
  gzip?: boolean;
  /** `client_max_body_size`, e.g. `'10m'`. */
  clientMaxBodySize?: string;
  /** Serve HTTPS with this certificate chain and key; plain HTTP then redirects to HTTPS (ACME challenges excepted). */
  tls?: { certificate: string; key: string };
  /** Serve `/.well-known/acme-challenge/` from this directory over HTTP. Default with `tls`: {@link DEFAULT_ACME_WEBROOT}. */
  acmeWebroot?: string;
  /** Also listen on IPv6 (`[::]`). Default true. */
  ipv6?: boolean;
}

/** Options of {@link nginx.site}: the site, and `notify` (the step is named after the site). */
export interface SiteOptions extends SiteSpec, Omit<CommonOptions, 'name'> {}

/** Options of {@link nginx.defaultSite}. */
export interface DefaultSiteOptions extends CommonOptions {
  /** Whether Debian's default site (a `default_server` on port 80) is enabled. */
  present: boolean;
}

/** Where ACME http-01 challenges are served from with `tls`, unless `acmeWebroot` says otherwise: Debian's default web root. @example certbot.certificate({ …, authenticator: 'webroot', webroot: DEFAULT_ACME_WEBROOT }) */
export const DEFAULT_ACME_WEBROOT = '/var/www/html';

// ---------------------------------------------------------------- validation

// Values are written into the configuration unquoted: nothing that ends a directive, opens a
// block, starts a comment, quotes or expands a variable.
const TOKEN = /^[^\s;{}#'"\\$]+$/;
const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SERVER_NAME = /^[A-Za-z0-9*~^.\\_()|?+[\]-]+$/;
const LOCATION = /^(?:(=|~|~\*|\^~) +)?([^\s;{}#'"]+)$/;
const SIZE = /^\d+[kKmMgG]?$/;
const RATE = /^\d+r\/[sm]$/;
const ZONE = /^[A-Za-z0-9_]+$/;

function fail(site: string, message: string): never {
  throw new TypeError(`nginx.site ${site}: ${message}`);
}

function token(site: string, what: string, value: unknown): string {
  if (typeof value !== 'string' || !TOKEN.test(value)) fail(site, `${what} must be one word without spaces, quotes, ';', '{', '}', '#' or '$', got ${JSON.stringify(value)}`);
  return value;
}

function absolutePath(site: string, what: string, value: unknown): string {
  const path = token(site, what, value);
  if (!path.startsWith('/')) fail(site, `${what} must be an absolute path, got ${JSON.stringify(value)}`);
  return path;
}

function port(site: string, what: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) fail(site, `${what} must be a port number, got ${JSON.stringify(value)}`);
  return value;
}

/** Identifiers nginx shares across all sites (upstream, map variable, zone) are derived from the site name. */
function slug(name: string): string {
  return `site_${name.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

interface Normalized {
  name: string;
  id: string;
  serverNames: string[];
  http: number;
  https: number;
  servers: string[];
  keepalive: number | undefined;
  locations: SiteLocation[];
  websocketPaths: string[];
  rateLimit: { zone: string; rate: string; burst: number | undefined; nodelay: boolean } | undefined;
  securityHeaders: boolean;
  gzip: boolean | undefined;
  clientMaxBodySize: string | undefined;
  tls: { certificate: string; key: string } | undefined;
  acmeWebroot: string | undefined;
  ipv6: boolean;
}

function normalize(spec: SiteSpec): Normalized {
  const name = spec?.name;
  if (typeof name !== 'string' || !SITE_NAME.test(name)) throw new TypeError(`nginx.site: name must be a file name of letters, digits, '.', '_' and '-' (not starting with '.' or '-'), got ${JSON.stringify(name)}`);
  if (!Array.isArray(spec.serverNames) || spec.serverNames.length === 0) fail(name, 'serverNames must be a non-empty array of host names');
  for (const s of spec.serverNames as unknown[]) if (typeof s !== 'string' || !SERVER_NAME.test(s)) fail(name, `${JSON.stringify(s)} is not a server name`);

  const up = spec.upstreams;
  const servers = Array.isArray(up) ? up : (up as { servers?: unknown })?.servers;
  if (!Array.isArray(servers) || servers.length === 0) fail(name, 'upstreams must be a non-empty array of host:port (or unix:/path) servers, or { servers, keepalive }');
  servers.forEach((s: unknown) => token(name, 'an upstream server', s));
  const keepalive = Array.isArray(up) ? undefined : (up as { keepalive?: number }).keepalive;
  if (keepalive !== undefined && (!Number.isInteger(keepalive) || keepalive < 1)) fail(name, `keepalive must be a whole number of connections, got ${JSON.stringify(keepalive)}`);

  const locations = spec.locations === undefined ? [{ path: '/' }] : [...spec.locations];
  if (!Array.isArray(spec.locations ?? [])) fail(name, 'locations must be an array');
  for (const l of locations) {
    if (typeof l?.path !== 'string' || !LOCATION.test(l.path)) fail(name, `location path ${JSON.stringify(l?.path)} is not a location match such as '/', '/api/' or '= /health'`);
    if (l.root !== undefined && l.proxyPass !== undefined) fail(name, `location ${l.path}: give root or proxyPass, not both`);
    if (l.root !== undefined) absolutePath(name, `location ${l.path} root`, l.root);
    if (l.proxyPass !== undefined && !/^(https?:\/\/|unix:)/.test(token(name, `location ${l.path} proxyPass`, l.proxyPass))) fail(name, `location ${l.path}: proxyPass must be an http://, https:// or unix: URL`);
    for (const d of l.extra ?? []) if (typeof d !== 'string' || d.trim() === '' || /[\n\r]/.test(d)) fail(name, `location ${l.path}: each extra directive must be one non-empty line, got ${JSON.stringify(d)}`);
  }
  const websocketPaths = [...(spec.websocketPaths ?? [])];
  for (const p of websocketPaths) if (typeof p !== 'string' || !LOCATION.test(p)) fail(name, `websocket path ${JSON.stringify(p)} is not a location match`);
  const seen = new Set<string>();
  for (const p of [...locations.map((l) => l.path), ...websocketPaths]) {
    // nginx refuses two locations with the same match: say so now rather than at nginx -t.
    if (seen.has(p)) fail(name, `location ${p} is given twice`);
    seen.add(p);
  }

  const rl = spec.rateLimit;
  let rateLimit: Normalized['rateLimit'];
  if (rl !== undefined) {
    if (typeof rl.rate !== 'string' || !RATE.test(rl.rate)) fail(name, `rateLimit.rate must look like '10r/s' or '60r/m', got ${JSON.stringify(rl.rate)}`);
    if (rl.zone !== undefined && (typeof rl.zone !== 'string' || !ZONE.test(rl.zone))) fail(name, `rateLimit.zone must be letters, digits and '_', got ${JSON.stringify(rl.zone)}`);
    if (rl.burst !== undefined && (!Number.isInteger(rl.burst) || rl.burst < 0)) fail(name, `rateLimit.burst must be a whole number, got ${JSON.stringify(rl.burst)}`);
    rateLimit = { zone: rl.zone ?? slug(name), rate: rl.rate, burst: rl.burst, nodelay: rl.nodelay === true };
  }
  if (spec.clientMaxBodySize !== undefined && (typeof spec.clientMaxBodySize !== 'string' || !SIZE.test(spec.clientMaxBodySize))) {
    fail(name, `clientMaxBodySize must look like '10m', got ${JSON.stringify(spec.clientMaxBodySize)}`);
  }
  const tls = spec.tls === undefined ? undefined : { certificate: absolutePath(name, 'tls.certificate', spec.tls.certificate), key: absolutePath(name, 'tls.key', spec.tls.key) };
  const acmeWebroot = spec.acmeWebroot === undefined ? (tls ? DEFAULT_ACME_WEBROOT : undefined) : absolutePath(name, 'acmeWebroot', spec.acmeWebroot);
  const http = port(name, 'listen.http', spec.listen?.http, 80);
  const https = port(name, 'listen.https', spec.listen?.https, 443);
  if (tls && http === https) fail(name, `listen.http and listen.https are both ${http}`);
  return {
    name,
    id: slug(name),
    serverNames: [...spec.serverNames],
    http,
    https,
    servers: [...servers] as string[],
    keepalive,
    locations,
    websocketPaths,
    rateLimit,
    securityHeaders: spec.securityHeaders !== false,
    gzip: spec.gzip,
    clientMaxBodySize: spec.clientMaxBodySize,
    tls,
    acmeWebroot,
    ipv6: spec.ipv6 !== false,
  };
}

// ---------------------------------------------------------------- rendering

const GZIP_TYPES = 'text/plain text/css text/xml application/json application/javascript application/xml application/rss+xml image/svg+xml';

function block(header: string, body: readonly string[], indent = ''): string[] {
  return [`${indent}${header} {`, ...body.map((l) => (l === '' ? '' : `${indent}    ${l}`)), `${indent}}`];
}

function directive(text: string): string {
  const t = text.trim();
  return t.endsWith(';') || t.endsWith('}') ? t : `${t};`;
}

/** The first nginx that knows the `http2` directive (and warns about `listen … http2`). */
const HTTP2_DIRECTIVE_SINCE = [1, 25, 1] as const;

/**
 * How HTTP/2 is switched on for the nginx that will read the file: the `http2 on;` directive from
 * 1.25.1 (Debian 13), the `listen … http2` parameter before it (Debian 12's 1.22 refuses the
 * directive, 1.25.1+ warns about the parameter). An unknown or unreadable version gets today's form.
 */
function http2Directive(nginxVersion: string | undefined): boolean {
  const parts = /^(\d+)\.(\d+)\.(\d+)/.exec(nginxVersion ?? '')?.slice(1).map(Number);
  if (!parts) return true;
  for (const [i, since] of HTTP2_DIRECTIVE_SINCE.entries()) if (parts[i] !== since) return (parts[i] ?? 0) > since;
  return true;
}

function listens(s: Normalized, port: number, suffix: string): string[] {
  return [`listen ${port}${suffix};`, ...(s.ipv6 ? [`listen [::]:${port}${suffix};`] : [])];
}

// Repeated in every location: nginx inherits add_header and proxy_set_header only into blocks that
// set none of their own, so an `extra` add_header would silently drop server-level ones.
function headers(s: Normalized): string[] {
  if (!s.securityHeaders) return [];
  return [
    'add_header X-Frame-Options "SAMEORIGIN" always;',
    'add_header X-Content-Type-Options "nosniff" always;',
    'add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
    ...(s.tls ? ['add_header Strict-Transport-Security "max-age=31536000" always;'] : []),
  ];
}

const PROXY_HEADERS = [
  'proxy_set_header Host $host;',
  'proxy_set_header X-Real-IP $remote_addr;',
  'proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
  'proxy_set_header X-Forwarded-Proto $scheme;',
];

function location(s: Normalized, l: SiteLocation): string[] {
  const body: string[] = [];
  if (l.root !== undefined) body.push(`root ${l.root};`);
  else {
    body.push(`proxy_pass ${l.proxyPass ?? `http://${s.id}`};`, 'proxy_http_version 1.1;', ...PROXY_HEADERS);
    // An idle upstream connection can be reused only when the client's "Connection: close" is not passed on.
    if (s.keepalive !== undefined && l.proxyPass === undefined) body.push('proxy_set_header Connection "";');
  }
  body.push(...headers(s), ...(l.extra ?? []).map(directive));
  return block(`location ${l.path}`, body, '    ');
}

function websocket(s: Normalized, path: string): string[] {
  return block(
    `location ${path}`,
    [
      `proxy_pass http://${s.id};`,
      'proxy_http_version 1.1;',
      ...PROXY_HEADERS,
      'proxy_set_header Upgrade $http_upgrade;',
      `proxy_set_header Connection $${s.id}_connection_upgrade;`,
      // An open WebSocket may be quiet for long; nginx's default 60 s would cut it.
      'proxy_read_timeout 1h;',
      'proxy_send_timeout 1h;',
      ...headers(s),
    ],
    '    ',
  );
}

function acme(s: Normalized): string[] {
  if (s.acmeWebroot === undefined) return [];
  return [...block('location ^~ /.well-known/acme-challenge/', [`root ${s.acmeWebroot};`, 'default_type text/plain;', 'try_files $uri =404;'], '    '), ''];
}

/** Directives shared by the server that proxies, on HTTPS or (without TLS) on HTTP. */
function serverSettings(s: Normalized): string[] {
  const out: string[] = [];
  if (s.clientMaxBodySize) out.push(`client_max_body_size ${s.clientMaxBodySize};`);
  if (s.gzip === true) out.push('gzip on;', 'gzip_vary on;', 'gzip_proxied any;', `gzip_types ${GZIP_TYPES};`);
  if (s.gzip === false) out.push('gzip off;');
  if (s.rateLimit) {
    const { zone, burst, nodelay } = s.rateLimit;
    out.push(`limit_req zone=${zone}${burst === undefined ? '' : ` burst=${burst}`}${nodelay ? ' nodelay' : ''};`, 'limit_req_status 429;');
  }
  return out;
}

function proxyLocations(s: Normalized): string[] {
  const blocks = [...s.websocketPaths.map((p) => websocket(s, p)), ...s.locations.map((l) => location(s, l))];
  return blocks.flatMap((b, i) => (i === 0 ? b : ['', ...b]));
}

/** What {@link renderSite} must know about the nginx that reads the file. */
export interface NginxTarget {
  /** `nginx -v`'s version, e.g. `'1.22.1'`; it decides the HTTP/2 syntax. Default: a current nginx (1.25.1 or later). */
  nginxVersion?: string;
}

/**
 * The nginx configuration of a reverse-proxy site, as written to sites-available: `upstream`,
 * `map` and `limit_req_zone` at the top (the file is included inside `http {}`), then the servers.
 * Pure; throws a TypeError for a spec nginx would reject or that would inject directives.
 *
 * @example
 * renderSite({ name: 'app', serverNames: ['app.example.com'], upstreams: ['127.0.0.1:8000'] }, { nginxVersion: '1.22.1' })
 */
export function renderSite(spec: SiteSpec, target: NginxTarget = {}): string {
  const s = normalize(spec);
  const http2 = http2Directive(target.nginxVersion);
  const out: string[] = [`# Managed by tackle (nginx.site ${s.name}); local changes are overwritten.`, ''];
  out.push(...block(`upstream ${s.id}`, [...s.servers.map((v) => `server ${v};`), ...(s.keepalive === undefined ? [] : [`keepalive ${s.keepalive};`])]), '');
  if (s.websocketPaths.length > 0) {
    // Without an Upgrade header, "close" (or nothing, to keep upstream connections alive).
    out.push(...block(`map $http_upgrade $${s.id}_connection_upgrade`, ['default upgrade;', s.keepalive === undefined ? "'' close;" : "'' '';"]), '');
  }
  if (s.rateLimit) out.push(`limit_req_zone $binary_remote_addr zone=${s.rateLimit.zone}:10m rate=${s.rateLimit.rate};`, '');
  const names = `server_name ${s.serverNames.join(' ')};`;
  if (s.tls) {
    const target = s.https === 443 ? 'https://$host$request_uri' : `https://$host:${s.https}$request_uri`;
    // `return` at server level would run before any location, ACME's included: it lives in `location /`.
    out.push(...block('server', [...listens(s, s.http, ''), names, '', ...acme(s).map(unindent), ...block('location /', [`return 301 ${target};`])]), '');
    out.push(
      ...block('server', [
        ...listens(s, s.https, http2 ? ' ssl' : ' ssl http2'),
        ...(http2 ? ['http2 on;'] : []),
        names,
        '',
        `ssl_certificate ${s.tls.certificate};`,
        `ssl_certificate_key ${s.tls.key};`,
        'ssl_protocols TLSv1.2 TLSv1.3;',
        ...spaced(serverSettings(s)),
        '',
        ...proxyLocations(s).map(unindent),
      ]),
    );
  } else {
    out.push(...block('server', [...listens(s, s.http, ''), names, ...spaced(serverSettings(s)), '', ...acme(s).map(unindent), ...proxyLocations(s).map(unindent)]));
  }
  return `${out.join('\n')}\n`;
}

/** A group of directives set off by a blank line, or nothing. */
function spaced(lines: readonly string[]): string[] {
  return lines.length ? ['', ...lines] : [];
}

// Locations are built indented for reading on their own; `block` indents them again.
function unindent(line: string): string {
  return line.startsWith('    ') ? line.slice(4) : line;
}

// ---------------------------------------------------------------- applying

const NGINX_T = 'nginx -t';

/**
 * One script: put the site file in place (atomically, keeping the previous one aside), link it, and
 * check the WHOLE configuration with `nginx -t`. When nginx rejects it, the previous file and link
 * state come back and the script fails with nginx's own message.
 */
function installScript(name: string, content: ContentDigest | undefined): Command {
  const { available, enabled } = sitePaths(name);
  const temp = tempFiles(available);
  const lines: Command[] = [
    sh`set -e`,
    sh`PATH="$PATH:/usr/sbin:/sbin"`,
    sh`tackle_a=${available}; tackle_e=${enabled}`,
    sh`if [ ! -d ${NGINX_SITES_AVAILABLE} ] || [ ! -d ${NGINX_SITES_ENABLED} ]; then printf 'tackle: nginx is not installed (no %s)\\n' ${NGINX_SITES_ENABLED} >&2; exit 1; fi`,
    sh`tackle_new=; tackle_old=`,
    sh`trap 'rm -f -- \${tackle_new:+"$tackle_new"} \${tackle_old:+"$tackle_old"}' EXIT`,
    sh`trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM`,
    sh`if [ -L "$tackle_e" ]; then tackle_link=$(readlink -- "$tackle_e"); else tackle_link=; fi`,
  ];
  if (content) {
    // Temporary names start with a dot in sites-available, which nginx never includes.
    lines.push(
      temp.removeStale,
      sh`tackle_new=$(${temp.create})`,
      receiveWhole(sh`"$tackle_new"`, content),
      sh`chmod 0644 "$tackle_new"`,
      sh`if [ -f "$tackle_a" ]; then tackle_old=$(${temp.create}); cp -p -- "$tackle_a" "$tackle_old"; fi`,
      sh`mv -fT -- "$tackle_new" "$tackle_a"; tackle_new=`,
    );
  }
  lines.push(
    sh`ln -sfn -- "$tackle_a" "$tackle_e"`,
    sh`if ! tackle_out=$(${raw(NGINX_T)} 2>&1); then`,
    content ? sh`  if [ -n "$tackle_old" ]; then mv -fT -- "$tackle_old" "$tackle_a"; tackle_old=; else rm -f -- "$tackle_a"; fi` : sh`  :`,
    sh`  if [ -n "$tackle_link" ]; then ln -sfn -- "$tackle_link" "$tackle_e"; else rm -f -- "$tackle_e"; fi`,
    sh`  printf '%s\\n' "$tackle_out" >&2`,
    sh`  printf 'tackle: nginx -t rejected the configuration with site %s; the previous state of the site is restored\\n' ${name} >&2`,
    sh`  exit 1`,
    sh`fi`,
  );
  return Command.join(lines, '\n');
}

/** A link to the site file, as Debian writes it (absolute) or relative from sites-enabled. */
function linksTo(info: PathInfo, name: string): boolean {
  return info.kind === 'link' && (info.target === sitePaths(name).available || info.target === `../sites-available/${name}`);
}

function refuse(path: string, why: string): TackleError {
  return new TackleError({ phase: 'operation', reason: `${path} ${why}` });
}

function notInstalled(install: NginxInstall): string {
  return install.kind === 'missing' ? ' (nginx is not installed now: fails unless an earlier step installs it)' : '';
}

function describeLink(info: PathInfo): string {
  return info.kind === 'link' ? `a link to ${info.target}` : info.kind === 'file' ? 'a file' : info.kind === 'directory' ? 'a directory' : info.kind === 'other' ? `a ${info.type}` : 'missing';
}

/**
 * A reverse-proxy site (see {@link renderSite}) written to `/etc/nginx/sites-available/NAME`
 * atomically, linked from sites-enabled, and checked with `nginx -t` (the whole configuration).
 * When nginx rejects it, the previous file and link come back and the step fails with nginx's
 * message. nginx is not reloaded here: name a handler in `notify` that reloads it.
 * With `tls` the certificate must exist when the step runs (nginx -t loads it): obtain it first,
 * e.g. with certbot's nginx authenticator, which needs no site of its own. The file is rendered
 * for the installed nginx's version (HTTP/2 syntax); a dry run before nginx is installed shows it
 * for a current nginx.
 *
 * @example
 * await host.run(nginx.site({ name: 'app', serverNames: ['app.example.com'], upstreams: ['127.0.0.1:8000'],
 *   tls: certbot.paths('app.example.com'), notify: 'reload nginx' }));
 * // handlers: { 'reload nginx': (host) => host.run(systemd.service({ name: 'nginx', state: 'reloaded' })).then(() => {}) }
 */
function site(options: SiteOptions): Operation {
  // Rendered once now so that a bad spec is a TypeError at once, not at the step.
  renderSite(options);
  const { name } = options;
  const { available, enabled } = sitePaths(name);
  return defineOperation({
    name: `nginx.site ${name}`,
    facts: { file: pathInfo(available), link: pathInfo(enabled), install: nginxInstall },
    options: { notify: options.notify },
    plan: ({ file, link, install }): Change | undefined => {
      const content = renderSite(options, install.kind === 'installed' ? { nginxVersion: install.version } : {});
      const sha256 = sha256Hex(content);
      if (file.kind !== 'file' && file.kind !== 'missing') throw refuse(available, `is ${describeLink(file)}; nginx.site manages it as a regular file`);
      if (link.kind !== 'link' && link.kind !== 'missing') throw refuse(enabled, `is ${describeLink(link)}, not a symlink; nginx.site will not replace it`);
      const same = file.kind === 'file' && file.sha256 === sha256;
      const linked = linksTo(link, name);
      if (same && linked) return undefined;
      const said = [
        same ? undefined : file.kind === 'missing' ? `create ${available} (${Buffer.byteLength(content)} bytes)` : `update ${available} (${Buffer.byteLength(content)} bytes)`,
        linked ? undefined : link.kind === 'missing' ? `enable it` : `relink ${enabled} (was ${describeLink(link)})`,
      ].filter(Boolean);
      const old = file.kind === 'file' && file.content !== undefined ? Buffer.from(file.content, 'base64').toString('utf8') : file.kind === 'file' ? undefined : '';
      const diff = same ? undefined : old === undefined ? `${available}: current content too large to show\n` : jsdiff().createTwoFilesPatch(file.kind === 'file' ? available : '/dev/null', available, old, content, undefined, undefined, { headerOptions: jsdiff().FILE_HEADERS_ONLY });
      return {
        summary: `site ${name}: ${said.join(', ')}, check with nginx -t${notInstalled(install)}`,
        // The content goes on stdin even when only the link changes: the script is then still one transaction.
        actions: [{ command: installScript(name, same ? undefined : { size: Buffer.byteLength(content), sha256, secret: false }), ...(same ? {} : { stdin: content }) }],
        ...(diff ? { diff } : {}),
      };
    },
  });
}

/**
 * Enables or disables Debian's default site (`sites-enabled/default`, a `default_server` on port
 * 80 showing nginx's welcome page). Disabling removes only the link; enabling links it back and
 * checks the configuration with `nginx -t` (restoring the previous state if nginx rejects it).
 *
 * @example
 * await host.run(nginx.defaultSite({ present: false, notify: 'reload nginx' }));
 */
function defaultSite(options: DefaultSiteOptions): Operation {
  if (typeof options?.present !== 'boolean') throw new TypeError('nginx.defaultSite: present must be true or false');
  const { available, enabled } = sitePaths('default');
  return defineOperation({
    name: `nginx.defaultSite ${options.present ? 'enabled' : 'disabled'}`,
    facts: { link: pathInfo(enabled), install: nginxInstall },
    options,
    plan: ({ link, install }): Change | undefined => {
      if (!options.present) {
        // Installing nginx creates the link: a dry run before the install must still plan its removal.
        if (link.kind === 'missing' && install.kind === 'missing') {
          return { summary: `disable the default site (nginx is not installed now: its package creates ${enabled})`, actions: [{ command: sh`rm -f -- ${enabled}` }] };
        }
        if (link.kind === 'missing') return undefined;
        if (link.kind === 'directory' || link.kind === 'other') throw refuse(enabled, `is ${describeLink(link)}; nginx.defaultSite only removes a link or file`);
        return { summary: `disable the default site (remove ${enabled}, ${describeLink(link)})`, actions: [{ command: sh`rm -f -- ${enabled}` }] };
      }
      if (linksTo(link, 'default')) return undefined;
      if (link.kind !== 'link' && link.kind !== 'missing') throw refuse(enabled, `is ${describeLink(link)}, not a symlink; nginx.defaultSite will not replace it`);
      return {
        summary: `enable the default site (link ${enabled} → ${available}), check with nginx -t${notInstalled(install)}`,
        actions: [{ command: Command.join([sh`[ -f ${available} ] || { printf 'tackle: %s does not exist\\n' ${available} >&2; exit 1; }`, installScript('default', undefined)], '\n') }],
      };
    },
  });
}

/**
 * nginx operations on Debian's sites-available / sites-enabled layout.
 *
 * @example
 * await host.run(nginx.defaultSite({ present: false, notify: 'reload nginx' }));
 * await host.run(nginx.site({ name: 'app', serverNames: ['app.example.com'], upstreams: ['127.0.0.1:8000'], notify: 'reload nginx' }));
 */
export const nginx = { site, defaultSite };
