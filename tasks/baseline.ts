// The small baseline every host gets, using each core operation once: a package, a deploy user
// with keys, a config file (validated), a directory, a link, a line, a systemd service with a
// restart handler, and a guarded shell step. End-to-end tests and `npm run bench` run it.
//
//   npx tsx tasks/baseline.ts --dry-run
import { apt, defineTask, files, runIfMain, sh, shell, systemd, users, v } from '../lib/index.ts';

export const baseline = defineTask({
  name: 'baseline',
  vars: {
    packages: v.array(v.packageName()).default(['tree']),
    deployUser: v.userName().default('deploy'),
    deployKeys: v.array(v.sshPublicKey()).default([]),
    demoPort: v.port().default(8080),
  },
  steps(host, handler) {
    const { packages, deployUser, deployKeys, demoPort } = host.vars;
    const deploy = { name: deployUser, shell: '/bin/bash', home: `/home/${deployUser}` };
    return [
      apt.packages({ names: packages }),
      users.user(deploy),
      users.authorizedKeys({ user: deploy, keys: deployKeys }),
      files.directory({ path: '/srv/demo/releases/1', mode: '0755' }),
      files.link({ path: '/srv/demo/current', target: '/srv/demo/releases/1' }),
      files.file({ path: '/srv/demo/releases/1/index.html', content: `<h1>${host.name}</h1>\n`, mode: '0644' }),
      files.line({ path: '/etc/default/demo', line: `PORT=${demoPort}`, match: '^PORT=', create: true, notify: handler('restart demo') }),
      systemd.unitFile({
        name: 'demo',
        content: unit(),
        // The unit must at least name a command before it replaces the old one.
        validate: 'grep -q "^ExecStart=" %s',
        notify: handler('restart demo'),
      }),
      systemd.service({ name: 'demo', enabled: true, state: 'started', daemonReload: true }),
      shell({ name: 'record first provisioning', command: sh`date -u +%FT%TZ > /srv/demo/provisioned-at`, creates: '/srv/demo/provisioned-at', writes: ['/srv/demo/provisioned-at'] }),
    ];
  },
  handlers: {
    'restart demo': () => systemd.service({ name: 'demo', state: 'restarted', daemonReload: true }),
  },
});

function unit(): string {
  return [
    '[Unit]',
    'Description=tackle demo web server',
    'After=network.target',
    '',
    '[Service]',
    'EnvironmentFile=/etc/default/demo',
    'WorkingDirectory=/srv/demo/current',
    'ExecStart=/usr/bin/python3 -m http.server ${PORT}',
    'Restart=on-failure',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export default baseline;

await runIfMain(import.meta, baseline);
