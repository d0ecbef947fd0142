// Deploy a release of an app to every selected host, in rolling batches, each host checked for
// health and rolled back on its own when the new release is not healthy.
//
//   npx tsx scripts/deploy.ts --ref v1.4.2 --serial 1 --max-fail 0          # one host at a time, stop at the first failure
//   npx tsx scripts/deploy.ts --ref main --limit web --serial 25% --dry-run
//   npx tsx scripts/deploy.ts --image-tag 1.4.2                           # a compose app: set IMAGE_TAG in the release's .env
//
// The app is described by inventory vars (for a group, usually):
//   app: 'shop', repo: 'https://git.example.com/shop.git', service: 'shop.service',
//   healthUrl: 'http://127.0.0.1:8000/health', healthBody: 'ok', preDeploy: './manage migrate'
// Releases live in /srv/APP/releases/ID, `current` points at the live one, the last
// `keepReleases` are kept, and /srv/APP/releases.jsonl records every deploy (scripts/releases.ts).
//
// Without downtime (blue/green): service is a template unit run once per port, and nginx proxies
// to an upstream the deploy writes; the new release starts on the other port, is checked there,
// then the upstream is switched with a reload:
//   service: 'shop@.service', blueGreen: { ports: [3001, 3002], upstream: 'shop', healthPath: '/health' }
import { apt, type BlueGreenOptions, colorUnit, Command, defineTask, deploy, health, type InferShape, type Probe, raw, type ReleaseSource, type Restart, runIfMain, sh, TackleError, v, VarError, VarType } from '../lib/index.ts';

/** A command from the inventory: `sh\`…\`` or plain shell text (the inventory is trusted code). */
const commandVar = new VarType<Command>('a command (sh`…` or shell text)', (value, path) => {
  if (value instanceof Command) return value;
  if (typeof value === 'string' && value.trim() !== '') return sh`${raw(value)}`;
  throw new VarError(path, 'a command (sh`…` or shell text)', value);
});

/** The vars that describe an app and how to tell it is healthy; shared with scripts/rollback.ts. */
export const serviceVars = {
  /** The app's directory name under appRoot. */
  app: v.fileName(),
  /** Releases go to APPROOT/APP. */
  appRoot: v.path().default('/srv'),
  /** The systemd unit to restart (and to require active). */
  service: v.unitName().optional(),
  /** Restart with `docker compose up -d` in the release directory instead. */
  compose: v.boolean().default(false),
  healthUrl: v.url().optional(),
  healthStatus: v.integer({ min: 100, max: 599 }).default(200),
  healthBody: v.string().optional(),
  /** A TCP port that must accept connections on 127.0.0.1, tried from the host. */
  healthPort: v.port().optional(),
  /** `host` (curl on the host) or `controller` (from this machine). */
  healthFrom: v.oneOf('host', 'controller').default('host'),
  /** Seconds to wait for health after a restart. */
  healthTimeout: v.number({ min: 1 }).default(60),
  /**
   * Deploy without downtime: `service` is a template (`app@.service`, started as `app@PORT.service`
   * from APPROOT/APP/current-PORT), each release starts on the port not live, is checked on it
   * (`healthPath`, else the port accepting connections), then the nginx upstream `upstream`
   * (/etc/nginx/conf.d/upstream-NAME.conf) is switched to it with a reload. The previous color
   * keeps running for a rollback without restart, unless `stopPrevious` (after `drainSeconds`).
   */
  blueGreen: v
    .object({
      ports: v.array(v.port()).refine((p) => p.length === 2 && p[0] !== p[1], 'two different ports'),
      upstream: v.match(/^[A-Za-z0-9_-]{1,64}$/, "an nginx upstream name (letters, digits, '_', '-')"),
      healthPath: v.match(/^\/\S*$/, 'a URL path such as "/health"').optional(),
      stopPrevious: v.boolean().default(false),
      drainSeconds: v.number({ min: 0, max: 3600 }).default(5),
    })
    .optional(),
};

type ServiceVars = InferShape<typeof serviceVars>;

/**
 * The restart, probes and waiting an app's vars ask for.
 *
 * @example serviceOptions(host.vars) // { app: 'shop', root: '/srv', restart: { systemd: 'shop.service' }, health: [...], wait: {...} }
 */
export function serviceOptions(vars: ServiceVars): { app: string; root: string; restart?: Restart; health: Probe[]; wait: { deadlineMs: number }; blueGreen?: BlueGreenOptions } {
  if (vars.compose && vars.service) throw new TackleError({ phase: 'task', reason: 'vars compose and service are both set; choose how the app restarts' });
  const restart: Restart | undefined = vars.compose ? { compose: {} } : vars.service ? { systemd: vars.service } : undefined;
  const wait = { deadlineMs: vars.healthTimeout * 1000 };
  if (vars.blueGreen) return { app: vars.app, root: vars.appRoot, ...(restart ? { restart } : {}), health: [], wait, blueGreen: blueGreenOptions(vars, vars.blueGreen) };
  const probes: Probe[] = [
    ...(vars.service ? [health.unit(vars.service)] : []),
    ...(vars.healthUrl ? [health.http(vars.healthUrl, { status: vars.healthStatus, from: vars.healthFrom, ...(vars.healthBody ? { body: vars.healthBody } : {}) })] : []),
    ...(vars.healthPort ? [health.tcp(vars.healthPort)] : []),
  ];
  return { app: vars.app, root: vars.appRoot, ...(restart ? { restart } : {}), health: probes, wait };
}

/** Each color checked on its own port: its unit instance active, then healthPath (or the port open). */
function blueGreenOptions(vars: ServiceVars, bg: NonNullable<ServiceVars['blueGreen']>): BlueGreenOptions {
  const template = vars.service;
  if (template === undefined || !/@(\.service)?$/.test(template)) {
    throw new TackleError({ phase: 'task', reason: `blueGreen needs service to be a template unit such as "${vars.app}@.service" (run once per port), got ${template === undefined ? 'none' : JSON.stringify(template)}` });
  }
  if (vars.healthUrl !== undefined || vars.healthPort !== undefined) {
    throw new TackleError({ phase: 'task', reason: 'with blueGreen, give blueGreen.healthPath instead of healthUrl or healthPort: each color is checked on its own port' });
  }
  const { healthPath } = bg;
  return {
    ports: [bg.ports[0] ?? 0, bg.ports[1] ?? 0],
    upstream: bg.upstream,
    stopPrevious: bg.stopPrevious,
    drainMs: Math.round(bg.drainSeconds * 1000),
    health: (port) => [
      health.unit(colorUnit(template, port)),
      healthPath === undefined ? health.tcp(port) : health.http(`http://127.0.0.1:${port}${healthPath}`, { status: vars.healthStatus, ...(vars.healthBody ? { body: vars.healthBody } : {}) }),
    ],
  };
}

export const deployTask = defineTask({
  name: 'deploy',
  vars: {
    ...serviceVars,
    /** The git repository, as the host reaches it. */
    repo: v.match(/^[^\s-]\S*$/, 'a git repository URL or path').optional(),
    /** The branch, tag or commit to deploy (`--ref`). */
    ref: v.gitRef().optional(),
    /** A compose app's image tag (`--image-tag`), instead of a git ref. */
    imageTag: v.match(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'an image tag such as "1.4.2"').optional(),
    /** A compose app's first release is a copy of this directory on the host (the compose file); later ones copy the current release. */
    composeTemplate: v.path().optional(),
    keepReleases: v.integer({ min: 1 }).default(5),
    preDeploy: commandVar.optional(),
    /** `user` or `user:group` owning the release files. */
    releaseOwner: v.match(/^[^\s:]+(?::[^\s:]+)?$/, 'user or user:group').optional(),
    /** Install git with apt first (git sources only). */
    installGit: v.boolean().default(true),
  },
  flags: {
    ref: { type: 'string', description: 'git branch, tag or commit to deploy' },
    'image-tag': { type: 'string', description: 'image tag to set in the compose env file (instead of --ref)', var: 'imageTag' },
  },
  async run(host) {
    const vars = host.vars;
    const source = releaseSource(host.name, vars);
    if ('git' in source && vars.installGit) await host.run(apt.packages({ names: ['git'] }));
    await host.run(
      deploy.release({
        ...serviceOptions(vars),
        source,
        keep: vars.keepReleases,
        ...(vars.preDeploy ? { hook: vars.preDeploy } : {}),
        ...(vars.releaseOwner ? { owner: vars.releaseOwner } : {}),
      }),
    );
  },
});

function releaseSource(
  hostName: string,
  { repo, ref, imageTag, composeTemplate }: { repo?: string | undefined; ref?: string | undefined; imageTag?: string | undefined; composeTemplate?: string | undefined },
): ReleaseSource {
  if (imageTag !== undefined && ref !== undefined) throw new TackleError({ phase: 'task', reason: 'give --ref (a git release) or --image-tag (a compose release), not both' });
  if (imageTag !== undefined) return { image: { tag: imageTag, ...(composeTemplate ? { template: composeTemplate } : {}) } };
  if (ref === undefined) throw new TackleError({ phase: 'task', reason: 'no --ref given (the git branch, tag or commit to deploy)' });
  if (repo === undefined) throw new TackleError({ phase: 'task', reason: `var repo is not set for ${hostName} (the git repository to deploy from)` });
  return { git: { repo, ref } };
}

export default deployTask;

await runIfMain(import.meta, deployTask);
