import { Buffer } from 'node:buffer';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { secret, sh } from '../../../lib/command/command.ts';
import { ContainerConnection, openContainer, wrapCommand } from '../../../lib/connection/container.ts';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { TackleError } from '../../../lib/errors.ts';
import { tempDir } from '../../support/temp-dir.ts';

t.test('the wrapped command: one sh -c word after the way in', async (t) => {
  const cmd = sh`echo ${"it's"} > /tmp/x`;
  t.equal(wrapCommand({ via: 'pct', id: '101' }, cmd).toString(), `pct exec 101 -- sh -c 'echo '\\''it'\\''\\'\\'''\\''s'\\'' > /tmp/x'`);
  t.equal(wrapCommand({ via: 'docker', id: 'web' }, sh`true`).toString(), "docker exec -i web sh -c 'true'");
  t.equal(wrapCommand({ via: { wrap: ['chroot', '/srv/my root'] } }, sh`true`).toString(), "chroot '/srv/my root' sh -c 'true'");
  const withSecret = wrapCommand({ via: 'docker', id: 'db' }, sh`psql -c ${secret("pa'ss")}`);
  t.equal(withSecret.toString(), "docker exec -i db sh -c 'psql -c ***'", 'secrets stay masked');
  t.notOk(withSecret.toString().includes('pa'));
});

t.test('a container with an unusable spec is refused at once', async (t) => {
  t.throws(() => new ContainerConnection('ct', new LocalConnection('p'), { via: 'pct', id: 'x' }), TypeError);
});

// Real processes: the "parent" is this machine; the way in is `env` (a wrapper that runs its
// arguments), or fake `pct`/`docker` programs that check their arguments and run the rest.
t.test('exec, exit codes, stdin, put and get through a wrapper', async (t) => {
  const dir = tempDir('ct');
  const ct = await openContainer(new LocalConnection('parent'), 'nested', { via: { wrap: ['env', 'TACKLE_INSIDE=yes'] } });
  t.equal(ct.host, 'nested');
  const r = await ct.exec(sh`echo "$TACKLE_INSIDE"; cd /; pwd; exit 3`);
  t.equal(r.stdout, 'yes\n/\n', 'the inner shell reads the whole command');
  t.equal(r.exitCode, 3, 'the exit code comes through');
  t.equal(r.command.toString(), 'echo "$TACKLE_INSIDE"; cd /; pwd; exit 3', 'the result names the command, not the wrapper');
  t.equal((await ct.exec(sh`cat | tr a-z A-Z`, { stdin: 'piped' })).stdout, 'PIPED');
  t.equal((await ct.exec(sh`printf '%s|' ${"it's"} ${'$HOME'} ${'a b'}`)).stdout, "it's|$HOME|a b|", 'quoting survives the extra shell');
  const bytes = Buffer.from([0, 1, 2, 255, 10, 13, 39]);
  await ct.put(join(dir, 'bin'), bytes, { mode: '0600' });
  t.same(await readFile(join(dir, 'bin')), bytes, 'put writes the exact bytes');
  t.same(await ct.get(join(dir, 'bin')), bytes, 'get reads them back');
  t.ok(ct.stats().commands >= 4, 'stats are the parent connection\'s');
});

t.test('pct and docker argument shapes, with fake programs on PATH', async (t) => {
  const bin = tempDir('ct-bin');
  await writeFile(join(bin, 'pct'), '#!/bin/sh\n[ "$1" = exec ] && [ "$3" = -- ] || { echo "bad pct call: $*" >&2; exit 99; }\nid=$2; shift 3\nexec env CT="pct:$id" "$@"\n');
  await writeFile(join(bin, 'docker'), '#!/bin/sh\n[ "$1" = exec ] && [ "$2" = -i ] || { echo "bad docker call: $*" >&2; exit 99; }\nid=$3; shift 3\nexec env CT="docker:$id" "$@"\n');
  await chmod(join(bin, 'pct'), 0o755);
  await chmod(join(bin, 'docker'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  t.teardown(() => {
    process.env.PATH = path;
  });
  const pct = await openContainer(new LocalConnection('pve'), 'ct101', { via: 'pct', id: '101' });
  t.equal((await pct.exec(sh`echo "$CT"; cat`, { stdin: 'in' })).stdout, 'pct:101\nin');
  const docker = await openContainer(new LocalConnection('dock'), 'web', { via: 'docker', id: 'web' });
  t.equal((await docker.exec(sh`echo "$CT"`)).stdout, 'docker:web\n');
});

t.test('a container that cannot be entered is a connect error, and the parent is closed', async (t) => {
  let closed = false;
  const parent = new LocalConnection('pve');
  parent.close = async () => {
    closed = true;
  };
  const err = await openContainer(parent, 'ct9', { via: { wrap: ['sh', '-c', 'echo "no such container" >&2; exit 1', 'x'] } }).catch((e: unknown) => e);
  t.type(err, TackleError);
  t.match(err, { phase: 'connect', host: 'ct9', reason: /cannot enter container \(sh -c .*\) on pve: exit code 1/, stderrTail: 'no such container' });
  t.ok(closed);
});
