import { raw, sh } from '../command/command.ts';
import { defineFact, type Fact, type FactOutput } from './fact.ts';

/** Debian's layout: a site is a file in sites-available… @example `${NGINX_SITES_AVAILABLE}/app` */
export const NGINX_SITES_AVAILABLE = '/etc/nginx/sites-available';
/** …enabled by a symlink in sites-enabled. @example `${NGINX_SITES_ENABLED}/default` */
export const NGINX_SITES_ENABLED = '/etc/nginx/sites-enabled';

/** Whether nginx is installed, and which version. */
export type NginxInstall = { kind: 'missing' } | { kind: 'installed'; version: string };

/**
 * The installed nginx (`nginx -v`). /usr/sbin is added to PATH: a login without sudo lacks it.
 *
 * @example
 * const nginx = await host.fact(nginxInstall);
 * if (nginx.kind === 'installed') console.log(nginx.version); // '1.22.1'
 */
export const nginxInstall: Fact<NginxInstall> = defineFact(
  'nginx.install',
  sh`${raw('PATH="$PATH:/usr/sbin:/sbin"; if command -v nginx >/dev/null 2>&1; then nginx -v 2>&1; else echo missing; fi')}`,
  parseNginxInstall,
  { reads: ['/usr/sbin/nginx'] },
);

/**
 * Pure parser of {@link nginxInstall}'s output.
 *
 * @example parseNginxInstall({ stdout: 'nginx version: nginx/1.22.1\n', stderr: '', exitCode: 0 }) // { kind: 'installed', version: '1.22.1' }
 */
export function parseNginxInstall({ stdout, stderr, exitCode }: FactOutput): NginxInstall {
  if (exitCode !== 0) throw new Error(`nginx -v failed (exit ${exitCode}): ${(stderr || stdout).trim() || 'no output'}`);
  if (stdout.trim() === 'missing') return { kind: 'missing' };
  // Builds may say "nginx/1.22.1" or, with a distribution suffix, "nginx/1.18.0 (Ubuntu)".
  const version = /^nginx version: [^/\s]+\/(\S+)/m.exec(stdout)?.[1];
  if (!version) throw new Error(`unexpected nginx -v output: ${JSON.stringify(stdout.slice(0, 200))}`);
  return { kind: 'installed', version };
}

/**
 * Paths of a site in Debian's layout.
 *
 * @example sitePaths('app') // { available: '/etc/nginx/sites-available/app', enabled: '/etc/nginx/sites-enabled/app' }
 */
export function sitePaths(name: string): { available: string; enabled: string } {
  return { available: `${NGINX_SITES_AVAILABLE}/${name}`, enabled: `${NGINX_SITES_ENABLED}/${name}` };
}
