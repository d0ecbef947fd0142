import t from 'tap';
import { fail2banHost, parseFail2banHost } from '../../../lib/facts/fail2ban.ts';

t.test('fail2banHost: captured on lab hosts (Debian 12: journal only)', async (t) => {
  t.same(parseFail2banHost({ stdout: 'installed no\nauthlog no\njournal yes\n', stderr: '', exitCode: 0 }), { installed: false, authLog: false, journal: true }, 'fresh');
  t.same(parseFail2banHost({ stdout: 'installed yes\nauthlog no\njournal yes\n', stderr: '', exitCode: 0 }), { installed: true, authLog: false, journal: true }, 'after the package');
  // A host with rsyslog (Debian 11, or rsyslog installed).
  t.same(parseFail2banHost({ stdout: 'installed yes\nauthlog yes\njournal yes\n', stderr: '', exitCode: 0 }), { installed: true, authLog: true, journal: true });
  t.throws(() => parseFail2banHost({ stdout: 'installed yes\n', stderr: 'sh: 2: test: not found', exitCode: 0 }), /no "authlog"/);
  t.equal(fail2banHost.key, 'fail2ban.host');
});
