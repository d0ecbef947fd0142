// The check every platform's provisioning must pass: the configurations tackle generated are not
// only accepted but clean, since a warning today (nginx's `listen … http2` on 1.25.1+) is the
// error of a later release.
import type { Test } from 'tap';
import type { Lab } from '../../../lab/lab.ts';

/** All that a clean `nginx -t` prints. */
export const NGINX_T_CLEAN = 'nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\nnginx: configuration file /etc/nginx/nginx.conf test is successful\n';

/** Asserts that `nginx -t` and `sshd -t` succeed on each host and print nothing but success. */
export async function assertCleanConfigs(t: Test, lab: Lab, hosts: readonly string[]): Promise<void> {
  for (const n of hosts) {
    const nginx = await lab.ssh(n, 'nginx -t 2>&1');
    t.same([nginx.code, nginx.stdout], [0, NGINX_T_CLEAN], `${n}: nginx -t prints no warnings`);
    const sshd = await lab.ssh(n, 'sshd -t 2>&1');
    t.same([sshd.code, sshd.stdout], [0, ''], `${n}: sshd -t prints nothing`);
  }
}
