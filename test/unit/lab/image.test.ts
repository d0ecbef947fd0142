import t from 'tap';
import { imageDir, imageStamp } from '../../../lab/image.ts';

const mirrors = { main: 'http://deb.debian.org/debian', security: 'http://deb.debian.org/debian-security' };

t.test('a suite beside bookworm left the bookworm image stamp (and so every cached image) as it was', async (t) => {
  // The stamp of the bookworm images built before suites existed, from these mirrors.
  t.equal(imageStamp('bookworm', mirrors), '1 23487a09cd0a7cac935d5a979c45b2073e7ba503201fd8d7fe795183b457decc\n');
  t.not(imageStamp('trixie', mirrors), imageStamp('bookworm', mirrors), 'each suite its own stamp');
});

t.test('each suite is cached in its own directory, beside bookworm', async (t) => {
  const saved = process.env.TACKLE_LAB_CACHE;
  t.teardown(() => {
    if (saved === undefined) delete process.env.TACKLE_LAB_CACHE;
    else process.env.TACKLE_LAB_CACHE = saved;
  });
  delete process.env.TACKLE_LAB_CACHE;
  t.same([imageDir('bookworm'), imageDir('trixie')], ['/var/cache/tackle-lab/bookworm', '/var/cache/tackle-lab/trixie']);
  process.env.TACKLE_LAB_CACHE = '/srv/cache/debian12';
  t.same([imageDir('bookworm'), imageDir('trixie')], ['/srv/cache/debian12', '/srv/cache/trixie']);
});
