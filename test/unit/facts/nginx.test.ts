import t from 'tap';
import { LocalConnection } from '../../../lib/connection/local.ts';
import { gatherFacts } from '../../../lib/facts/gather.ts';
import { nginxInstall, parseNginxInstall, sitePaths } from '../../../lib/facts/nginx.ts';

const out = (stdout: string, exitCode = 0, stderr = '') => ({ stdout, stderr, exitCode });

t.test('nginx -v, captured from lab hosts (Debian 12) with and without nginx', async (t) => {
  t.same(parseNginxInstall(out('nginx version: nginx/1.22.1\n')), { kind: 'installed', version: '1.22.1' });
  t.same(parseNginxInstall(out('missing\n')), { kind: 'missing' });
  // Ubuntu's build adds the distribution (written from Ubuntu 22.04's nginx, not captured here).
  t.same(parseNginxInstall(out('nginx version: nginx/1.18.0 (Ubuntu)\n')), { kind: 'installed', version: '1.18.0' });
  t.throws(() => parseNginxInstall(out('Segmentation fault\n')), /unexpected nginx -v output/);
  t.throws(() => parseNginxInstall(out('', 127, 'sh: nginx: not found')), /nginx -v failed \(exit 127\)/);
});

t.test('the fact script on this machine (no nginx)', async (t) => {
  t.same(await gatherFacts(new LocalConnection('local'), [nginxInstall]), [{ kind: 'missing' }]);
});

t.test('site paths follow Debian', async (t) => {
  t.same(sitePaths('app'), { available: '/etc/nginx/sites-available/app', enabled: '/etc/nginx/sites-enabled/app' });
});
