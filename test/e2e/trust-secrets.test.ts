// Secrets on the host, tried as an adversary with a shell there would: the sudo password must
// never reach a command (three sudoers setups on one lab host: NOPASSWD, password required, and a
// timestamp cached across SSH channels), and no secret (a shell command's, its env's, a pg_dump
// password, the become password) may show in a process list or in sudo's journal lines, whether
// the command runs directly, through sudo or through a container wrapper.
// Every assertion reads the host: file bytes, `grep -F` over its files and journal, and what a
// watcher sampled from `ps -eo args` and /proc/*/cmdline while slow steps held the secrets.
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { poll } from '../../lab/exec.ts';
import { withLab } from '../../lab/lab.ts';
import { runTaskCli, type CliRun } from './support/cli.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const lab = await withLab(t, 1);
const lab1 = lab.host('lab1');
const unique = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

// Each sudo user gets its own password, so a leak names its setup.
const PW = { nopw: unique('nopw-pass'), ops: unique('ops-pass'), cached: unique('cached-pass') };
const WRONG = unique('wrong-pass');
const TOKEN_CMD = unique('cmd-token');
const TOKEN_ENV = unique('env-token');
const PG_PW = unique('pg-pass');
const CONTENT = 'hello=world\n';
/** The line the watcher writes after each sample of the process lists. */
const SAMPLE = 'tackle-watch-sample';

async function root(command: string, input?: string): Promise<string> {
  const r = await lab.ssh('lab1', command, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`lab1: ${command} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

// The three sudoers setups. Passwords travel on stdin (chpasswd, sudo -S), never in arguments.
await root(`set -e
for u in nopw cached; do
  useradd --create-home --shell /bin/bash "$u"
  install -d -m 0700 -o "$u" -g "$u" "/home/$u/.ssh"
  install -m 0600 -o "$u" -g "$u" /root/.ssh/authorized_keys "/home/$u/.ssh/authorized_keys"
done
cp /root/.ssh/authorized_keys /home/ops/.ssh/authorized_keys
echo 'nopw ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/nopw
printf 'Defaults:cached timestamp_type=global, timestamp_timeout=120\\ncached ALL=(ALL:ALL) ALL\\n' > /etc/sudoers.d/cached
chmod 0440 /etc/sudoers.d/nopw /etc/sudoers.d/cached
visudo -c -q`);
await root('chpasswd', `ops:${PW.ops}\ncached:${PW.cached}\nnopw:${unique('unused')}\n`);
const warm = await lab.ssh('lab1', "sudo -S -p '' -v && sudo -n true && echo cached", { user: 'cached', input: `${PW.cached}\n` });
if (warm.stdout !== 'cached\n') throw new Error(`could not cache cached's sudo timestamp: ${warm.stderr}`);

// The task: one file through each setup; SLOW=1 adds the steps that hold secrets for a while.
const dir = await mkdtemp(join(tmpdir(), 'tackle-secrets-'));
const task = join(dir, 'secrets.mts');
await writeFile(
  task,
  `import { defineTask, files, isMain, loadEnv, postgres, runCli, sh, shell } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
const env = loadEnv({ TOKEN_CMD: { secret: true }, TOKEN_ENV: { secret: true }, PG_PW: { secret: true } }, { env: process.env });
const task = defineTask({ name: 'secrets', async run(host) {
  await host.run(files.file({ path: '/etc/x-' + host.name + '.conf', content: ${JSON.stringify(CONTENT)} }));
  if (process.env.SLOW !== '1') return;
  await host.run(shell({ name: 'slow secret', command: sh\`tok=\${env.TOKEN_CMD}; [ -n "$tok" ] && [ -n "$TOKEN_ENV" ] && sleep 3 && echo "\${env.TOKEN_CMD}" >/dev/null\`, env: { TOKEN_ENV: env.TOKEN_ENV } }));
  await host.run(files.directory({ path: '/var/backups/pg-' + host.name, mode: '0700' }));
  await host.run(postgres.dump({ database: 'app_' + host.name, dir: '/var/backups/pg-' + host.name, via: { kind: 'host', osUser: null }, connection: { host: '127.0.0.1', user: 'bk', password: env.PG_PW } }));
} });
if (isMain(import.meta.url, process.argv)) process.exitCode = await runCli(task, { argv: process.argv.slice(2), cwd: process.cwd(), env: process.env, stdout: process.stdout, stderr: process.stderr });
`,
);

/** A login to lab1 (with a become password, from the environment), or a container entered from another host. */
type Login = { user: string; password?: string } | { parent: { host: string; via: { wrap: string[] } } };

/** An inventory of lab1 as several hosts, one per login. */
async function inventory(hosts: Record<string, Login>): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tackle-inv-')), 'inventory.ts');
  const password = (h: Login | undefined) => (h && 'user' in h ? h.password : undefined);
  const env = Object.keys(hosts).filter((h) => password(hosts[h]) !== undefined);
  const entries = Object.entries(hosts).map(([name, h]) => {
    if ('parent' in h) return `${JSON.stringify(name)}: ${JSON.stringify(h)}`;
    const base = { address: lab1.address, user: h.user, privateKeyPath: lab.privateKeyPath, knownHostsPath: lab.knownHostsPath };
    const become = h.password === undefined ? '' : `, become: { password: env.PW_${name} }`;
    return `${JSON.stringify(name)}: { ...${JSON.stringify(base)}${become} }`;
  });
  await writeFile(
    file,
    `import { defineInventory, loadEnv } from ${JSON.stringify(join(ROOT, 'lib/index.ts'))};
const env = loadEnv({ ${env.map((n) => `PW_${n}: { secret: true }`).join(', ')} }, { env: process.env });
export default defineInventory({ hosts: { ${entries.join(', ')} } });
`,
  );
  return file;
}

const envFor = (hosts: Record<string, Login>, extra: Record<string, string> = {}) => ({
  TOKEN_CMD,
  TOKEN_ENV,
  PG_PW,
  ...Object.fromEntries(Object.entries(hosts).flatMap(([n, h]) => ('user' in h && h.password !== undefined ? [[`PW_${n}`, h.password]] : []))),
  ...extra,
});

/** Which of `secrets` occur in `text` (by name). */
function found(text: string, secrets: Record<string, string>): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => text.includes(v))
    .map(([k]) => k);
}

/** Which of `secrets` the host holds: `grep -F` over every file but /proc, /sys, /dev, and the journal. */
async function onHost(secrets: Record<string, string>, where: 'everywhere' | 'logs'): Promise<string> {
  // The patterns live in /dev/shm (not searched) for the time of the search only.
  const paths = where === 'everywhere' ? '$(ls -d /* | grep -vx -e /proc -e /sys -e /dev)' : '/var/log /root/watch.log';
  return root(
    `cat > /dev/shm/patterns
{ grep -rlsF -D skip -f /dev/shm/patterns ${paths}; journalctl -o verbose --no-pager | grep -F -f /dev/shm/patterns | sed 's/^/journal: /'; } | cut -c1-300 | head -20
rm -f /dev/shm/patterns`,
    Object.values(secrets).join('\n') + '\n',
  );
}

const setups = { nopw: { user: 'nopw', password: PW.nopw }, ops: { user: 'ops', password: PW.ops }, cached: { user: 'cached', password: PW.cached } };

t.test('the sudo password never reaches a command: NOPASSWD, password required, cached timestamp', async (t) => {
  const inv = await inventory(setups);
  const first = await runTaskCli(task, ['--inventory', inv, '--diff'], envFor(setups));
  t.equal(first.code, 0, 'first run exit code', { stdout: first.stdout, stderr: first.stderr });
  for (const name of Object.keys(setups)) {
    const bytes = await root(`base64 -w0 /etc/x-${name}.conf; stat -c ' %a' /etc/x-${name}.conf`);
    t.equal(bytes, `${Buffer.from(CONTENT).toString('base64')} 644\n`, `${name}: the file holds exactly the content, mode 0644`);
  }
  const again = await runTaskCli(task, ['--inventory', inv, '--diff'], envFor(setups));
  t.equal(again.code, 0);
  for (const h of again.report?.hosts ?? []) t.same(h.steps.map((s) => s.status), ['ok'], `${h.name}: the step is ok on the second run`);
  t.equal(again.report?.hosts.length, 3);

  for (const run of [first, again]) {
    t.same(found(run.stdout, PW), [], 'no password in stdout (with --diff)');
    t.same(found(run.stderr, PW), [], 'no password in stderr');
    t.same(found(JSON.stringify(run.report), PW), [], 'no password in the JSON report');
  }
  t.equal(await onHost(PW, 'everywhere'), '', 'no password in any file on the host nor in its journal');
});

t.test('a wrong password fails only that host, with a plain reason', async (t) => {
  const hosts = { ops: { user: 'ops', password: WRONG }, nopw: setups.nopw };
  const r: CliRun = await runTaskCli(task, ['--inventory', await inventory(hosts)], envFor(hosts));
  t.equal(r.code, 2, 'exit code 2', { stdout: r.stdout, stderr: r.stderr });
  const byName = Object.fromEntries((r.report?.hosts ?? []).map((h) => [h.name, h]));
  t.equal(byName.ops?.status, 'failed');
  t.match(byName.ops?.error?.reason, /^sudo refused the password for ops on ops$/);
  t.equal(byName.nopw?.status, 'ok', 'the other host finishes');
  t.match(r.stdout + r.stderr, /sudo refused the password for ops on ops/);
  t.same(found(r.stdout + r.stderr + JSON.stringify(r.report), { WRONG, ...PW }), []);
  t.equal(await onHost({ WRONG }, 'everywhere'), '', 'the wrong password is nowhere on the host');
});

// ct is a container as tackle sees one: its commands go through the parent's connection, wrapped.
const hostsOfSlowRun: Record<string, Login> = { ops: setups.ops, root: { user: 'root' }, ct: { parent: { host: 'root', via: { wrap: ['env', 'TACKLE_CT=1'] } } } };

t.test('secrets stay off command lines: shell command, shell env, pg_dump password, become password', async (t) => {
  await root('DEBIAN_FRONTEND=noninteractive apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y postgresql >/dev/null');
  await root(`cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1`, `CREATE ROLE bk LOGIN SUPERUSER PASSWORD '${PG_PW}';\n`);
  const psql = (sql: string, db = 'postgres') => root(`cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d ${db} -c ${JSON.stringify(sql)}`);
  // pg_dump is quick; to be sampled for sure it must be held. It locks every table it dumps
  // (ACCESS SHARE) and waits for as long as another session holds one exclusively, with
  // PGPASSWORD in its environment all the while. The hosts' runs take turns (they share lab1's
  // run lock), so each host dumps a database of its own whose table is held until the watcher has
  // taken two whole samples while that host's pg_dump waited.
  const dbs = Object.keys(hostsOfSlowRun).map((h) => `app_${h}`);
  for (const db of dbs) {
    await psql(`CREATE DATABASE ${db}`);
    await psql('CREATE TABLE held (id int)', db);
    // `cd /` alone: an `&` after `&&` would background a subshell that keeps this SSH session's output open.
    await root(`cd /; nohup setsid runuser -u postgres -- env PGAPPNAME=hold-${db} psql -X -q -d ${db} -c BEGIN -c 'LOCK TABLE held IN ACCESS EXCLUSIVE MODE' -c 'SELECT pg_sleep(600)' >/dev/null 2>&1 </dev/null &`);
  }
  const granted = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'hold-%' AND l.mode = 'AccessExclusiveLock' AND l.granted";
  await poll(async () => ((await psql(granted)) === `${dbs.length}\n` ? true : undefined), { timeoutMs: 30_000, intervalMs: 200, onTimeout: () => new Error('the lock holders never held their tables') });
  // The watcher samples every process's arguments, both ways an adversary would read them; a line of its own ends each sample.
  await root(`rm -f /root/watch.log /root/watch.stop
nohup setsid sh -c 'while [ ! -e /root/watch.stop ]; do ps -eo args; cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " "; echo; echo ${SAMPLE}; done >> /root/watch.log 2>/dev/null' >/dev/null 2>&1 &`);
  const running = runTaskCli(task, ['--inventory', await inventory(hostsOfSlowRun)], envFor(hostsOfSlowRun, { SLOW: '1' }));
  let ended = false; // a run that fails early must not leave the test waiting for its dumps
  void running.then(() => (ended = true));
  const samples = async () => Number(await root(`grep -cx ${SAMPLE} /root/watch.log || true`));
  // The dumps connect as bk; the lock holders and these queries as postgres.
  const waiting = "SELECT datname FROM pg_stat_activity WHERE usename = 'bk' AND wait_event_type = 'Lock'";
  for (let released = 0; released < dbs.length && !ended; released++) {
    const db = await poll(async () => (ended ? '' : (await psql(waiting)).trim() || undefined), { timeoutMs: 120_000, intervalMs: 200, onTimeout: () => new Error('no dump waited on its lock') });
    if (ended) break;
    const whileWaiting = (await samples()) + 2;
    await poll(async () => ((await samples()) > whileWaiting ? true : undefined), { timeoutMs: 30_000, intervalMs: 100, onTimeout: () => new Error('the watcher stopped sampling') });
    await psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hold-${db}'`);
  }
  const r = await running;
  await root('touch /root/watch.stop; sleep 0.5');
  t.equal(r.code, 0, 'the run succeeded', { stdout: r.stdout, stderr: r.stderr });
  for (const h of r.report?.hosts ?? []) t.same(h.steps.slice(1).map((s) => s.status), ['changed', 'changed', 'changed'], `${h.name}: the slow shell step, the directory, the dump`);
  const seen = await root(`wc -l < /root/watch.log; grep -c "sleep 3" /root/watch.log; grep -cF "sudo -S -p [tackle-sudo-" /root/watch.log; ls /var/backups/pg-*/*.dump | wc -l`);
  const [lines = 0, sawSleep = 0, sawSudo = 0, dumps = 0] = seen.trim().split('\n').map(Number);
  t.ok(lines > 100, `the watcher sampled (${lines} lines)`);
  t.ok(sawSleep > 0, 'the watcher saw the slow step running');
  t.ok(sawSudo > 0, `the watcher saw the session ops entered with its sudo password (${sawSudo} lines)`);
  for (const db of dbs) {
    // Two whole samples while it waited, each showing it in ps's list and in /proc: four lines at least.
    const sawDump = Number(await root(`grep -cF -- "pg_dump -h 127.0.0.1 -U bk -Fc -d ${db}" /root/watch.log || true`));
    t.ok(sawDump >= 4, `the watcher saw the pg_dump of ${db} running, PGPASSWORD in its environment (${sawDump} lines)`);
  }
  t.equal(dumps, 3, 'every host wrote its dump');
  const secrets = { TOKEN_CMD, TOKEN_ENV, PG_PW, ...PW };
  t.same(found(r.stdout + r.stderr + JSON.stringify(r.report), secrets), [], 'no secret in the output or report');
  t.equal(await onHost(secrets, 'logs'), '', 'no secret in the sampled process lists, /var/log or the journal');
  const sudoLines = await root('journalctl --no-pager -o cat _COMM=sudo | grep -c COMMAND= || true');
  t.ok(Number(sudoLines) > 0, 'sudo did log its commands (the check above read them)');
});
