// The main job: take fresh Debian 12 / Ubuntu 24.04 hosts to the production baseline small teams
// write by hand, on every host of the inventory in parallel; a second run changes nothing.
//
//   base packages → deploy user with keys and sudo → sshd hardening → fail2ban → unattended
//   upgrades → firewall → nginx reverse-proxy sites → certificates when domains are configured
//
//   npx tsx tasks/provision.ts --dry-run          # plan on the embedded default (this machine)
//   npx tsx tasks/provision.ts --limit web --diff
import {
  apt,
  APT_LOCK_TIMEOUT_SECONDS,
  certbot,
  defineTask,
  fail2ban,
  files,
  nginx,
  runIfMain,
  server,
  sshd,
  systemd,
  ufw,
  unattended,
  users,
  v,
  type HandlerLookup,
  type StepEntry,
  type UfwRuleSpec,
  type InferShape,
} from '../lib/index.ts';

// Each var is as precise as the operation it feeds, so a bad value is refused with the inventory,
// before any host is contacted, rather than at its step after earlier steps changed the host.
const site = v.object({
  /** The site's file name in sites-available and its certificate's name. */
  name: v.fileName(),
  serverNames: v.array(v.domain()),
  /** `host:port` of the app behind nginx, e.g. `127.0.0.1:3000`, or `unix:/run/app.sock`. */
  upstreams: v.array(v.anyOf(v.hostPort(), v.match(/^unix:\/[^\s;{}#'"\\$]+$/, 'a unix socket such as "unix:/run/app.sock"'))),
  websocketPaths: v.array(v.match(/^\/[^\s;{}#'"]*$/, 'a location path such as "/ws"')).default([]),
  rateLimit: v.object({ rate: v.match(/^\d+r\/[sm]$/, 'a rate such as "10r/s" or "60r/m"'), burst: v.integer({ min: 0 }).default(20) }).optional(),
  clientMaxBodySize: v.match(/^\d+[kKmMgG]?$/, 'a size such as "10m"').optional(),
  /** HTTPS with a certificate from the `acme` CA (needs `acme`); plain HTTP otherwise. */
  tls: v.boolean().default(true),
});

const provisionVars = {
  basePackages: v.array(v.packageName()).default(['ca-certificates', 'curl', 'less', 'sudo']),
  /** Seconds each apt step waits for another apt or dpkg (a fresh VPS's first-boot upgrade) before failing the host. */
  aptLockTimeout: v.integer({ min: 0, max: 24 * 3600 }).default(APT_LOCK_TIMEOUT_SECONDS),
  hostname: v.hostname().optional(),
  timezone: v.timezone().default('Etc/UTC'),
  /** A swap file for small VPSes; 0 for none. */
  swapMb: v.integer({ min: 0, max: 1024 * 1024 }).default(0),
  deployUser: v.userName().default('deploy'),
  deployKeys: v.array(v.sshPublicKey()).default([]),
  /** Users allowed to log in over SSH besides the deploy user (sshd patterns such as `ops@10.0.0.*`). */
  sshAllowUsers: v.array(v.match(/^[^\s"'#]+$/, 'a user pattern such as "ops" or "ops@10.0.0.*"')).default([]),
  /** `prohibit-password` keeps root's key login for a first run as root; `no` once deploy is in use. */
  rootLogin: v.oneOf('no', 'prohibit-password').default('prohibit-password'),
  /** Addresses never banned and always let through the firewall to SSH (your office, the controller). */
  trusted: v.array(v.network()).default([]),
  fail2ban: v
    .object({ bantime: v.anyOf(v.duration(), v.oneOf('-1')).default('1h'), findtime: v.duration().default('10m'), maxretry: v.integer({ min: 1 }).default(5) })
    .default({ bantime: '1h', findtime: '10m', maxretry: 5 }),
  autoReboot: v.object({ enabled: v.boolean(), time: v.timeOfDay().default('03:30') }).default({ enabled: false, time: '03:30' }),
  /** Extra ports to open besides SSH (rate-limited) and 80/443 when there are sites. */
  openPorts: v.array(v.object({ port: v.port(), proto: v.oneOf('tcp', 'udp').default('tcp'), from: v.network().optional() })).default([]),
  sites: v.array(site).default([]),
  /** The ACME CA for certificates; `caCertPem` for a private CA (the host must trust its TLS). */
  acme: v
    .object({
      email: v.email(),
      server: v.url().optional(),
      caCertPem: v.match(/^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\s*$/, 'a PEM certificate ("-----BEGIN CERTIFICATE-----…")').optional(),
    })
    .optional(),
};

type ProvisionVars = InferShape<typeof provisionVars>;

export const provision = defineTask({
  name: 'provision',
  vars: provisionVars,
  // Declarative: every step is known before any runs, so the facts of all come in one round trip
  // and a dry-run plans each step against the state the earlier ones leave (a fresh host included).
  steps(host, handler) {
    const vars = host.vars;
    const firewallPackages = ['ufw', 'fail2ban', 'python3-systemd', 'unattended-upgrades'];
    const deploy = { name: vars.deployUser, shell: '/bin/bash', home: `/home/${vars.deployUser}` };
    const web = vars.sites.length > 0;
    const rules: UfwRuleSpec[] = [
      // Trusted addresses first: ufw's limit would otherwise throttle a controller's many logins.
      ...vars.trusted.map((from): UfwRuleSpec => ({ action: 'allow', port: 22, proto: 'tcp', from, comment: 'ssh trusted' })),
      { action: 'limit', port: 22, proto: 'tcp', comment: 'ssh' },
      ...(web ? (['80', '443'] as const).map((port): UfwRuleSpec => ({ action: 'allow', port, proto: 'tcp', comment: 'web' })) : []),
      ...vars.openPorts.map((p): UfwRuleSpec => ({ action: 'allow', port: p.port, proto: p.proto, ...(p.from ? { from: p.from } : {}) })),
    ];
    return [
      apt.packages({ names: [...vars.basePackages, ...firewallPackages], lockTimeoutSeconds: vars.aptLockTimeout }),
      vars.hostname && server.hostname({ name: vars.hostname }),
      server.timezone({ name: vars.timezone }),
      vars.swapMb > 0 && server.swapfile({ sizeMb: vars.swapMb }),
      users.user(deploy),
      users.authorizedKeys({ user: deploy, keys: vars.deployKeys }),
      users.sudoer({ name: vars.deployUser, rules: [`${vars.deployUser} ALL=(ALL) NOPASSWD:ALL`] }),
      sshd.config({
        settings: {
          permitRootLogin: vars.rootLogin,
          passwordAuthentication: false,
          kbdInteractiveAuthentication: false,
          maxAuthTries: 3,
          x11Forwarding: false,
          // root stays allowed while it may log in with a key, or the first run would lock itself out.
          allowUsers: [...new Set([vars.deployUser, ...vars.sshAllowUsers, ...(vars.rootLogin === 'no' ? [] : ['root'])])],
        },
      }),
      fail2ban.jail({ name: 'sshd', ...vars.fail2ban, ignoreip: ['127.0.0.1/8', '::1', ...vars.trusted], notify: handler('reload fail2ban') }),
      unattended.upgrades({ automaticReboot: vars.autoReboot.enabled, rebootTime: vars.autoReboot.time }),
      ufw.defaults({ incoming: 'deny', outgoing: 'allow', routed: 'deny' }),
      ufw.rules({ rules, purge: true }),
      ufw.enabled({ enabled: true }),
      // Docker forwards published ports past ufw's INPUT rules; this applies the same rules to them
      // (in DOCKER-USER), now or whenever Docker is installed later.
      ufw.dockerUser(),
      ...(web ? webSteps(vars, handler) : []),
    ];
  },
  handlers: {
    'reload fail2ban': () => fail2ban.reload({ jails: ['sshd'] }),
    'reload nginx': () => systemd.service({ name: 'nginx', state: 'reloaded' }),
  },
});

/** nginx in front of the sites, with a certificate for each TLS site when an ACME CA is configured. */
function webSteps(vars: ProvisionVars, handler: HandlerLookup<'reload nginx' | 'reload fail2ban'>): StepEntry[] {
  const tlsSites = vars.acme ? vars.sites.filter((s) => s.tls) : [];
  const acme = vars.acme;
  const caFile = '/usr/local/share/ca-certificates/tackle-acme.crt';
  return [
    apt.packages({ names: tlsSites.length ? ['nginx', 'certbot', 'python3-certbot-nginx'] : ['nginx'], lockTimeoutSeconds: vars.aptLockTimeout }),
    nginx.defaultSite({ present: false, notify: handler('reload nginx') }),
    acme?.caCertPem && tlsSites.length > 0 && files.file({ path: caFile, content: acme.caCertPem }),
    ...vars.sites.flatMap((s) => {
      const withTls = acme && tlsSites.includes(s);
      return [
        withTls &&
          certbot.certificate({
            domains: s.serverNames,
            certName: s.name,
            email: acme.email,
            authenticator: 'nginx',
            ...(acme.server ? { server: acme.server } : {}),
            ...(acme.caCertPem ? { env: { REQUESTS_CA_BUNDLE: caFile } } : {}),
            notify: handler('reload nginx'),
          }),
        nginx.site({
          name: s.name,
          serverNames: s.serverNames,
          upstreams: s.upstreams,
          websocketPaths: s.websocketPaths,
          ...(s.rateLimit ? { rateLimit: s.rateLimit } : {}),
          ...(s.clientMaxBodySize ? { clientMaxBodySize: s.clientMaxBodySize } : {}),
          ...(withTls ? { tls: certbot.paths(s.name) } : {}),
          gzip: true,
          notify: handler('reload nginx'),
        }),
      ];
    }),
  ];
}

export default provision;

await runIfMain(import.meta, provision);
