import t from 'tap';
import { parseDockerPorts, parsePsLine } from '../../../lib/facts/docker.ts';

// `docker ps --format '{{.Names}}\t{{.Ports}}'` lines as docker.io 20.10 prints them on Debian 12.
t.test('parsePsLine: published ports with their addresses; exposed-only ports are not published', async (t) => {
  t.same(parsePsLine('pg\t0.0.0.0:5432->5432/tcp, :::5432->5432/tcp'), [
    { container: 'pg', address: '0.0.0.0', hostPort: 5432, hostPortEnd: 5432, containerPort: 5432, proto: 'tcp' },
    { container: 'pg', address: '::', hostPort: 5432, hostPortEnd: 5432, containerPort: 5432, proto: 'tcp' },
  ]);
  t.same(parsePsLine('db\t127.0.0.1:15432->5432/tcp'), [{ container: 'db', address: '127.0.0.1', hostPort: 15432, hostPortEnd: 15432, containerPort: 5432, proto: 'tcp' }]);
  t.same(parsePsLine('web\t0.0.0.0:8000-8001->8000-8001/udp, [::]:8000-8001->8000-8001/udp').map((p) => [p.address, p.hostPort, p.hostPortEnd, p.proto]), [
    ['0.0.0.0', 8000, 8001, 'udp'],
    ['::', 8000, 8001, 'udp'],
  ]);
  t.same(parsePsLine('box\t5432/tcp'), [], 'exposed, not published');
  t.same(parsePsLine('box\t'), []);
  t.throws(() => parsePsLine('x\t0.0.0.0:abc->1/tcp'), /unexpected docker ps port/);
});

t.test('parseDockerPorts: no docker, a stopped daemon, ports with the guard and ufw state', async (t) => {
  t.same(parseDockerPorts({ stdout: 'missing\n', stderr: '', exitCode: 0 }), { kind: 'missing' });
  t.same(parseDockerPorts({ stdout: 'docker\nunavailable Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n', stderr: '', exitCode: 0 }), {
    kind: 'unavailable',
    reason: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
  });
  const out = ['docker', 'pg\t0.0.0.0:5432->5432/tcp, :::5432->5432/tcp', 'box\t', '--- guard', '2', '--- ufw', 'ufw', 'status Status: active', 'IPV6=yes', 'DEFAULT_INPUT_POLICY="DROP"', 'v4 limit tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', ''].join('\n');
  const r = parseDockerPorts({ stdout: out, stderr: '', exitCode: 0 });
  if (r.kind !== 'docker') throw new Error('expected docker');
  t.same(r.published.map((p) => `${p.container} ${p.address}:${p.hostPort}`), ['pg 0.0.0.0:5432', 'pg :::5432']);
  t.equal(r.guarded, true);
  t.equal(r.ufw.kind === 'ufw' && r.ufw.active && r.ufw.rules[0]?.dport, '22');
  const notRoot = parseDockerPorts({ stdout: ['docker', '--- guard', '0', '--- ufw', 'ufw', 'status ERROR: You need to be root to run this script', ''].join('\n'), stderr: '', exitCode: 0 });
  t.match(notRoot, { kind: 'docker', published: [], guarded: false, ufw: { kind: 'unavailable', reason: /ufw status said/ } }, 'ufw unreadable: still a docker report');
  t.throws(() => parseDockerPorts({ stdout: 'docker\npg\t\n', stderr: '', exitCode: 0 }), /unexpected output/);
});
