// The main job: take fresh Debian 12 / Ubuntu 24.04 hosts to the production baseline, on every
// host of the inventory in parallel; a second run changes nothing.
//
//   npx tsx tasks/provision.ts --dry-run          # plan on the embedded default (this machine)
//   npx tsx tasks/provision.ts --limit web --diff
import { apt, defineTask, isMain, runCli, users, v } from '../lib/index.ts';

export const provision = defineTask({
  name: 'provision',
  vars: {
    basePackages: v.array(v.string()).default(['ca-certificates', 'curl', 'less', 'sudo']),
    deployUser: v.string().default('deploy'),
    deployKeys: v.array(v.string()).default([]),
  },
  async run(host) {
    const { basePackages, deployUser, deployKeys } = host.vars;
    await host.run(apt.packages({ names: basePackages }));
    const deploy = { name: deployUser, shell: '/bin/bash', home: `/home/${deployUser}` };
    await host.run(users.user(deploy));
    await host.run(users.authorizedKeys({ user: deploy, keys: deployKeys }));
  },
});

export default provision;

if (isMain(import.meta.url, process.argv)) {
  process.exitCode = await runCli(provision, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr, signals: process });
}
