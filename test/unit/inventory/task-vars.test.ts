// The vars of the shipped tasks and scripts: the documented examples pass, and values their
// operations would refuse at run time are refused with the inventory instead.
import t from 'tap';
import { checkVars } from '../../../lib/engine/runner.ts';
import type { Task } from '../../../lib/engine/task.ts';
import { defineInventory, type Vars } from '../../../lib/inventory/inventory.ts';
import { backupVars } from '../../../lib/backup/config.ts';
import { defineTask } from '../../../lib/engine/task.ts';
import { baseline } from '../../../tasks/baseline.ts';
import { provision } from '../../../tasks/provision.ts';
import { deployTask } from '../../../scripts/deploy.ts';
import { installBackupSchedule } from '../../../scripts/install-backup-schedule.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop';

function problems<V extends Vars>(task: Task<V>, vars: Vars): string[] {
  const inv = defineInventory({ hosts: { web1: { connection: 'local', vars } } });
  try {
    checkVars(task, [...inv.hosts.values()]);
    return [];
  } catch (err) {
    return (err as Error).message.split('\n').slice(1).map((l) => l.replace(/^ {2}- host web1: var /, '').replace(/ must be .*| is missing.*/, ''));
  }
}

t.test('provision: the README example passes; each wrong value is named, all at once', async (t) => {
  t.same(
    problems(provision, {
      deployKeys: [KEY],
      trusted: ['198.51.100.4', '10.0.0.0/8'],
      timezone: 'Europe/Berlin',
      swapMb: 1024,
      hostname: 'web1.example.com',
      sites: [{ name: 'app', serverNames: ['app.example.com'], upstreams: ['127.0.0.1:3000', 'unix:/run/app.sock'], websocketPaths: ['/ws'], rateLimit: { rate: '10r/s', burst: 20 }, clientMaxBodySize: '20m' }],
      acme: { email: 'ops@example.com', server: 'https://10.200.3.1:14000/dir' },
      fail2ban: { bantime: '-1', findtime: '10m', maxretry: 3 },
      autoReboot: { enabled: true, time: '04:00' },
      openPorts: [{ port: 5432, from: '10.0.0.0/8' }],
    }),
    [],
  );
  t.same(
    problems(provision, {
      basePackages: ['curl', 'Bad Package'],
      deployKeys: ['not a key'],
      sshAllowUsers: ['ops extra'],
      sites: [{ name: 'app/x', serverNames: ['*.example.com'], upstreams: ['not a host', '127.0.0.1:99999'], websocketPaths: ['ws'], clientMaxBodySize: 'big' }],
      acme: { email: 'ops@example.com', server: 'acme.example', caCertPem: 'not pem' },
      fail2ban: { findtime: '10 minutes', maxretry: 0 },
    }),
    [
      'basePackages[1]',
      'deployKeys[0]',
      'sshAllowUsers[0]',
      'fail2ban.findtime',
      'fail2ban.maxretry',
      'sites[0].name',
      'sites[0].serverNames[0]',
      'sites[0].upstreams[0]',
      'sites[0].upstreams[1]',
      'sites[0].websocketPaths[0]',
      'sites[0].clientMaxBodySize',
      'acme.server',
      'acme.caCertPem',
    ],
  );
});

t.test('baseline, deploy, backup schedule and backup vars refuse what their ops would', async (t) => {
  t.same(problems(baseline, { packages: ['tree'], deployUser: 'deploy', deployKeys: [KEY], demoPort: 8080 }), []);
  t.same(problems(baseline, { packages: ['Tree'], deployUser: 'root user', deployKeys: ['x'], demoPort: 0 }), ['packages[0]', 'deployUser', 'deployKeys[0]', 'demoPort']);
  t.same(problems(deployTask, { app: 'shop', repo: 'https://git.example.com/shop.git', ref: 'v1.4.2', service: 'shop.service', healthUrl: 'http://127.0.0.1:8000/health' }), []);
  t.same(problems(deployTask, { app: '../shop', appRoot: 'srv', service: 'a b', healthUrl: 'localhost/health', healthStatus: 42, healthTimeout: 0, ref: '-x', imageTag: 'a b', keepReleases: 0, releaseOwner: 'a b' }), [
    'app',
    'appRoot',
    'service',
    'healthUrl',
    'healthStatus',
    'healthTimeout',
    'ref',
    'imageTag',
    'keepReleases',
    'releaseOwner',
  ]);
  t.same(problems(installBackupSchedule, { backupSchedule: { cron: '0 2 * * *', workingDirectory: 'srv/tackle', name: 'a.b', user: 'Ops', randomizedDelaySec: -1 } }), [
    'backupSchedule.workingDirectory',
    'backupSchedule.name',
    'backupSchedule.user',
    'backupSchedule.randomizedDelaySec',
  ]);
  const backupTask = defineTask({ name: 'nightly-backup', vars: backupVars, run: async () => {} });
  t.same(problems(backupTask, { backup: { databases: ['app'], remote: { bucket: 'acme-backups', accountId: '0123456789abcdef0123456789abcdef' } } }), []);
  t.same(problems(backupTask, { backup: { databases: ['-app'], dir: 'backups', keepAtLeast: 0, remote: { bucket: 'Acme_Backups', accountId: 'xyz', endpoint: 'r2', region: 'EU' } } }), [
    'backup.databases[0]',
    'backup.dir',
    'backup.keepAtLeast',
    'backup.remote.accountId',
    'backup.remote.endpoint',
    'backup.remote.region',
    'backup.remote.bucket',
  ]);
});
