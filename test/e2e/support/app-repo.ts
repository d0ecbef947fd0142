// A tiny HTTP app in a git repository served over git's dumb HTTP protocol on the lab bridge,
// and the systemd unit that runs it from /srv/app/current on lab hosts: what the deploy tests
// deploy, roll back and probe.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { run } from '../../../lab/exec.ts';
import type { Lab } from '../../../lab/lab.ts';
import { tempDir } from '../../support/temp-dir.ts';

/** How a release behaves: healthy, answering 500 on /health, or exiting at once (its unit fails). */
export type AppState = 'ok' | 'broken' | 'crash';

// START_DELAY (seconds, from the unit's environment) makes a release slow to start listening,
// as real apps are: a restart then leaves a gap that a proxy in front sees.
const SERVER = `import http.server, os, pathlib, sys, time
here = pathlib.Path(__file__).resolve().parent
name = (here / 'NAME').read_text().strip()
state = (here / 'HEALTH').read_text().strip()
if state == 'crash':
    sys.exit('this release cannot start')
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = ((200, 'ok') if state == 'ok' else (500, 'broken')) if self.path == '/health' else (200, name)
        self.send_response(code)
        self.send_header('Content-Type', 'text/plain')
        self.end_headers()
        self.wfile.write((body + '\\n').encode())
    def log_message(self, *args):
        pass
time.sleep(float(os.environ.get('START_DELAY', '0')))
http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), Handler).serve_forever()
`;

/** The app's unit; `Restart=on-failure` makes a crashing release hit systemd's start limit and end `failed`. */
export const APP_UNIT = '[Unit]\nDescription=tiny app\n[Service]\nEnvironment=PORT=8000\nExecStart=/usr/bin/python3 /srv/app/current/server.py\nRestart=on-failure\n';

/**
 * Makes a repository with one annotated tag per release (each page answers `release TAG`),
 * serves it on the lab bridge until the test ends, and resolves with its URL.
 */
export async function serveAppRepo(t: { teardown(fn: () => unknown): void }, lab: Lab, releases: ReadonlyArray<readonly [tag: string, state: AppState]>): Promise<string> {
  const dir = tempDir('deploy-repo');
  const work = join(dir, 'work');
  const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-C', cwd, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { stdio: 'pipe' }).toString();
  execFileSync('git', ['init', '-q', '-b', 'main', work]);
  for (const [tag, state] of releases) {
    await writeFile(join(work, 'server.py'), SERVER);
    await writeFile(join(work, 'NAME'), `release ${tag}\n`);
    await writeFile(join(work, 'HEALTH'), `${state}\n`);
    git(work, 'add', '.');
    git(work, 'commit', '-q', '-m', `release ${tag}`);
    git(work, 'tag', '-a', tag, '-m', tag);
  }
  const bare = join(dir, 'app.git');
  execFileSync('git', ['clone', '-q', '--bare', work, bare]);
  git(bare, 'update-server-info');
  const server = createServer((req, res) => {
    const path = normalize(join(dir, decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')));
    if (!path.startsWith(`${dir}/`)) return res.writeHead(403).end();
    stat(path).then(
      (s) => (s.isFile() ? createReadStream(path).pipe(res.writeHead(200)) : res.writeHead(404).end()),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, lab.bridgeAddress, r));
  t.teardown(() => server.close());
  return `http://${lab.bridgeAddress}:${(server.address() as AddressInfo).port}/app.git`;
}

/** Installs {@link APP_UNIT} as app.service on each host. */
export async function installAppUnit(lab: Lab, hosts: readonly string[]): Promise<void> {
  await Promise.all(hosts.map((n) => lab.ssh(n, 'cat > /etc/systemd/system/app.service && systemctl daemon-reload', { input: APP_UNIT })));
}

/** What a host shows of the app: the page its service answers (from this machine), the live release id, the records. */
export function appOnHost(lab: Lab) {
  return {
    page: async (host: string) => (await run('curl', ['-s', '--max-time', '5', `http://${lab.host(host).address}:8000/`])).stdout,
    live: async (host: string) => (await lab.ssh(host, 'readlink /srv/app/current')).stdout.trim().replace(/^releases\//, ''),
    records: async (host: string) =>
      (await lab.ssh(host, 'cat /srv/app/releases.jsonl')).stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, string>),
  };
}
