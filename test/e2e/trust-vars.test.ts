// Issue 8 item 6: bad vars are refused before any host changes. tasks/provision.ts through the
// CLI on two fresh lab hosts, with vars that do not fit the operations they feed: every problem of
// every host is listed at once, the exit code is 1, and the hosts prove tackle never logged in
// (sshd's journal) and nothing on them changed. Misspelt inventory vars get a warning naming the
// var they were probably meant to be.
import t, { type Test } from 'tap';
import { withLab } from '../../lab/lab.ts';
import { labInventory, runTaskCli } from './support/cli.ts';

const lab = await withLab(t, 2);
const names = lab.hosts.map((h) => h.name);
const MARKER = '/run/trust-vars-marker';

// One oracle session per host and check: how many logins sshd has accepted (this session's own
// included), and what would show a change: files under the trees provision writes to, newer than
// the marker, the deploy user, the time zone.
const PROBE = `journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey'; find /etc /home /usr /var/lib/dpkg /swapfile -newer ${MARKER} 2>/dev/null; id deploy 2>&1; cat /etc/timezone`;
async function probe(name: string): Promise<{ logins: number; state: string }> {
  const [count = '', ...state] = (await lab.ssh(name, PROBE)).stdout.split('\n');
  return { logins: Number(count), state: state.join('\n') };
}
const before = new Map<string, { logins: number; state: string }>();
for (const name of names) {
  await lab.ssh(name, `touch ${MARKER} && sleep 1`);
  before.set(name, await probe(name));
}

/** Asserts sshd accepted no login since the last probe but the next probe's own, and nothing changed. */
async function untouched(t: Test): Promise<void> {
  for (const name of names) {
    const was = before.get(name)!;
    const now = await probe(name);
    t.equal(now.logins, was.logins + 1, `${name}: sshd accepted no login but the oracle's own`);
    t.equal(now.state, was.state, `${name}: nothing changed on the host`);
    before.set(name, now);
  }
}

const site = (upstream: string) => JSON.stringify([{ name: 'app', serverNames: ['app.example.com'], upstreams: [upstream] }]);

t.test('an upstream that is not host:port is refused before any connection', async (t) => {
  const inventory = await labInventory(lab);
  const r = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--var', `sites=${site('not a host')}`]);
  t.equal(r.code, 1, 'exit 1: refused before any host was contacted', { stdout: r.stdout.slice(-2000), stderr: r.stderr });
  for (const name of names) t.match(r.stderr, `host ${name}: var sites[0].upstreams[0] must be`, `${name}'s bad upstream is named`);
  t.equal(r.report, undefined, 'no run happened, so no report');
  await untouched(t);
});

t.test('a port outside 1-65535 in an upstream is refused before any connection', async (t) => {
  const inventory = await labInventory(lab);
  const r = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--var', `sites=${site('127.0.0.1:99999')}`]);
  t.equal(r.code, 1, 'exit 1', { stdout: r.stdout.slice(-2000), stderr: r.stderr });
  for (const name of names) t.match(r.stderr, new RegExp(`host ${name}: var sites\\[0\\]\\.upstreams\\[0\\] must be .*"127\\.0\\.0\\.1:99999"`));
  await untouched(t);
});

t.test('every bad var of every host is listed at once; misspelt vars are warned about with a suggestion', async (t) => {
  const inventory = await labInventory(lab, {
    lab1: {
      vars: {
        timezone: 'Mars/Olympus_Mons',
        deployUser: 'Deploy User',
        swapMb: -512,
        openPorts: [{ port: 70000 }],
        acme: { email: 'ops-at-example.com' },
        // Misspelt: provision declares swapMb and timezone.
        swapMB: 512,
        timeZone: 'Europe/Berlin',
        // Used by the backup scripts, not by provision: no warning.
        backup: { databases: ['app'], remote: { bucket: 'b' } },
      },
    },
    lab2: {
      vars: {
        hostname: '-web-',
        trusted: ['10.0.0.300'],
        fail2ban: { bantime: 'forever' },
        autoReboot: { enabled: true, time: '25:00' },
        sites: [{ name: 'app', serverNames: ['app example.com'], upstreams: ['127.0.0.1:3000'], rateLimit: { rate: 'fast' } }],
      },
    },
  });
  const r = await runTaskCli('tasks/provision.ts', ['--inventory', inventory]);
  t.equal(r.code, 1, 'exit 1', { stdout: r.stdout.slice(-2000), stderr: r.stderr });
  const expected = [
    'host lab1: var timezone must be',
    'host lab1: var deployUser must be',
    'host lab1: var swapMb must be',
    'host lab1: var openPorts[0].port must be',
    'host lab1: var acme.email must be',
    'host lab2: var hostname must be',
    'host lab2: var trusted[0] must be',
    'host lab2: var fail2ban.bantime must be',
    'host lab2: var autoReboot.time must be',
    'host lab2: var sites[0].serverNames[0] must be',
    'host lab2: var sites[0].rateLimit.rate must be',
  ];
  for (const line of expected) t.ok(r.stderr.includes(line), `listed: ${line}`, { stderr: r.stderr });
  t.match(r.stderr, /warning: .*swapMB.*lab1.*did you mean swapMb\?/, 'swapMB: did you mean swapMb');
  t.match(r.stderr, /warning: .*timeZone.*lab1.*did you mean timezone\?/, 'timeZone: did you mean timezone');
  t.notMatch(r.stderr, /warning: .*\bbackup\b/, 'a var other tasks use (backup) is not warned about');
  await untouched(t);
});

t.test('warnings do not fail a run: a dry-run with misspelt vars plans on the defaults and says so', async (t) => {
  const inventory = await labInventory(lab, { lab1: { vars: { swapMB: 512, backup: { databases: ['app'], remote: { bucket: 'b' } } } } });
  const r = await runTaskCli('tasks/provision.ts', ['--inventory', inventory, '--dry-run', '--var', 'timeZone="Europe/Berlin"', '--var', 'colour=red']);
  t.equal(r.code, 0, 'exit 0', { stdout: r.stdout.slice(-2000), stderr: r.stderr });
  t.match(r.stderr, /warning: var swapMB \(host lab1\) is not a var of task provision; did you mean swapMb\?/);
  t.match(r.stderr, /warning: var timeZone \(hosts lab1, lab2\) is not a var of task provision; did you mean timezone\?/);
  t.match(r.stderr, /warning: var colour \(hosts lab1, lab2\) is not a var of task provision\n/, 'a command-line var the task does not take is named even without a near miss');
  t.notMatch(r.stderr, /backup/);
  for (const h of r.report?.hosts ?? []) {
    t.ok(h.steps.some((s) => s.name === 'server.timezone Etc/UTC'), `${h.name}: planned on the default time zone, as the warning says`);
  }
  t.equal(r.report?.hosts.length, 2);
});
