import t from 'tap';
import { containerSpecProblem } from '../../../lib/inventory/container.ts';

t.test('spec problems are named', async (t) => {
  t.equal(containerSpecProblem({ via: 'pct', id: '101' }), undefined);
  t.match(containerSpecProblem({ via: 'pct', id: 'web' }), /numeric VMID/);
  t.match(containerSpecProblem({ via: 'pct' }), /numeric VMID/);
  t.match(containerSpecProblem({ via: 'docker', id: '-rm' }), /container name or id/);
  t.equal(containerSpecProblem({ via: 'docker', id: 'app_web.1' }), undefined);
  t.match(containerSpecProblem({ via: { wrap: [] } }), /non-empty list/);
  t.match(containerSpecProblem({ via: { wrap: ['chroot', '/x'] }, id: '1' }), /id is not used with wrap/);
  t.match(containerSpecProblem({ via: 'lxc' as never }), /via must be/);
});
