// The hosts tackle manages. This file is plain TypeScript: hosts, groups and typed vars.
// Vars merge in this order, later wins: `vars` below → each group the host is in → the host's own.
//
// The embedded default is `localhost`, this machine, reached without SSH, so that on a fresh
// clone `npx tsx tasks/provision.ts --dry-run` shows a real plan and changes nothing.
// Add your own hosts below it; select some with `--limit web` (group), `--limit db1`, `--limit 'web*,!web3'`.
import { defineInventory, loadEnv } from './lib/index.ts';

// Secrets come from the environment or a `.env` file next to this one; they print as *** everywhere.
const env = loadEnv({ SUDO_PASSWORD: { secret: true, optional: true } }, { env: process.env, file: '.env' });

export default defineInventory({
  vars: {
    deployUser: 'deploy',
  },
  // Vars that only some tasks read (deployUser: provision and baseline, not the scripts). Any other
  // var a task does not declare is named in a warning, misspellings with "did you mean".
  sharedVars: ['deployUser'],
  groups: {
    web: { vars: {} },
    db: { vars: {} },
  },
  hosts: {
    localhost: { connection: 'local' },

    // A VPS reached over SSH as root, keys from ssh-agent or ~/.ssh/id_*:
    //   web1: { address: '203.0.113.10', groups: ['web'] },
    // A `Host db1` alias from ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyJump apply),
    // logging in as a sudoer whose password is SUDO_PASSWORD (sent over stdin to sudo -S):
    //   db1: { address: 'db1', user: 'deploy', groups: ['db'], become: { password: env.SUDO_PASSWORD } },
    // A container behind a jump host that is itself in this inventory:
    //   pve: { address: '198.51.100.7', user: 'root' },
    //   ct101: { address: '10.10.10.101', jump: 'pve', groups: ['web'] },
  },
});

void env;
