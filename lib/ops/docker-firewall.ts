// ufw.dockerUser: the ufw policy applied to Docker's published ports. Docker DNATs a published
// port in the nat table and forwards the packet to the container, so ufw's INPUT rules never see
// it: `-p 5432:5432` is open to the internet whatever ufw says. Docker's documented hook for
// this is the DOCKER-USER chain, which it jumps to first for forwarded traffic and never
// flushes. The other fix, `"ip": "127.0.0.1"` in daemon.json, does not reach Compose: networks
// Compose creates get their own binding address (moby#18237, docker/compose#2999), and a
// deliberately public port (`0.0.0.0:443`) would still pass ufw by. So tackle mirrors ufw's rules
// into DOCKER-USER, from ufw's own after.init hook, so they come and go with ufw (boot, reload,
// disable) and follow every `ufw.rules` change the next time this step runs.
import { sh } from '../command/command.ts';
import { defineOperation, type Change, type CommonOptions, type Operation } from './operation.ts';
import { DOCKER_USER_TAG, dockerUserGuard } from '../facts/docker.ts';
import { pathInfo } from '../facts/files.ts';
import { ufwState, type UfwRule } from '../facts/ufw.ts';
import { files } from './files.ts';

/** ufw's hook, run by ufw-init with `start` after it loads its rules and with `stop`/`flush-all`. */
export const UFW_AFTER_INIT = '/etc/ufw/after.init';
/** The chain of mirrored rules; DOCKER-USER jumps to it for traffic bound for a Docker bridge. */
const CHAIN = 'TACKLE-UFW-DOCKER';

export type DockerUserOptions = CommonOptions;

/**
 * The iptables arguments (after `-A CHAIN`) mirroring one ufw rule for forwarded traffic, matched
 * on the port the client asked for (`--ctorigdstport`: after Docker's DNAT the destination port
 * is the container's). Empty for rules that do not concern new inbound connections (outgoing,
 * routed, app profiles whose ports only ufw knows, IPv6-only).
 *
 * @example mirrorRule(parseTuple('allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in', 'v4'))
 * // [['-p', 'tcp', '-m', 'conntrack', '--ctorigdstport', '80', '-j', 'RETURN'], ['-p', 'tcp', … '443', …]]
 */
export function mirrorRule(r: Omit<UfwRule, 'comment'>): string[][] {
  if (r.route || r.direction !== 'in' || r.dapp || r.sapp || !r.families.includes('v4')) return [];
  const target = r.action === 'allow' || r.action === 'limit' ? 'RETURN' : 'DROP';
  const common = [...(r.interfaceIn ? ['-i', r.interfaceIn] : []), ...(r.src !== 'any' ? ['-s', r.src] : []), ...(r.dst !== 'any' ? ['-m', 'conntrack', '--ctorigdst', r.dst] : [])];
  const protos = r.proto === 'any' ? (r.dport === 'any' ? ['any'] : ['tcp', 'udp']) : [r.proto];
  const ports = r.dport === 'any' ? [undefined] : r.dport.split(',');
  return protos.flatMap((proto) =>
    ports.map((port) => [...common, ...(proto === 'any' ? [] : ['-p', proto]), ...(port === undefined ? [] : ['-m', 'conntrack', '--ctorigdstport', port]), '-j', target]),
  );
}

/**
 * The after.init script for ufw's current rules: on `start`, DOCKER-USER sends traffic bound for
 * Docker's bridges (`docker0`, Compose's `br-*`) through {@link CHAIN}, which lets replies and
 * the containers' own traffic pass, then applies the mirrored ufw rules in ufw's order, then
 * drops everything else (ufw's default deny). On `stop` it removes all of it again.
 *
 * @example dockerUserScript([]) // a script whose chain drops every new connection from outside
 */
export function dockerUserScript(rules: readonly Omit<UfwRule, 'comment'>[]): string {
  const quote = (word: string) => (/^[A-Za-z0-9_.,:/+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);
  const mirrored = rules.flatMap(mirrorRule).map((args) => `  iptables -w -A ${CHAIN} ${args.map(quote).join(' ')}`);
  return `#!/bin/sh
# Written by tackle (ufw.dockerUser) from ufw's rules; run that step again after changing them.
# ufw-init runs this after loading its rules (start) and when stopping. Docker forwards published
# ports past ufw's INPUT rules; this applies ufw's policy to them in DOCKER-USER.
PATH=/usr/sbin:/sbin:/usr/bin:/bin
remove() {
  iptables -w -S DOCKER-USER 2>/dev/null | grep -e '${DOCKER_USER_TAG}' | sed 's/^-A /-D /' | while read -r rule; do
    iptables -w $rule
  done
  iptables -w -F ${CHAIN} 2>/dev/null || :
  iptables -w -X ${CHAIN} 2>/dev/null || :
}
case "$1" in
start)
  set -e
  remove
  iptables -w -N DOCKER-USER 2>/dev/null || true
  iptables -w -N ${CHAIN}
  iptables -w -A ${CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
  iptables -w -A ${CHAIN} -i docker0 -j RETURN
  iptables -w -A ${CHAIN} -i br-+ -j RETURN
${mirrored.join('\n')}${mirrored.length ? '\n' : ''}  iptables -w -A ${CHAIN} -j DROP
  iptables -w -I DOCKER-USER 1 -o docker0 -m comment --comment ${DOCKER_USER_TAG} -j ${CHAIN}
  iptables -w -I DOCKER-USER 2 -o br-+ -m comment --comment ${DOCKER_USER_TAG} -j ${CHAIN}
  ;;
stop|flush-all)
  remove
  ;;
esac
exit 0
`;
}

/**
 * Applies the ufw policy to Docker's published ports: writes ufw's after.init hook (see
 * `dockerUserScript`) from ufw's current rules, and reloads ufw when it runs so the rules
 * are live. Also reloads when the hook is current but its rules are not loaded. Run it after
 * `ufw.rules`, with ufw installed (the hook lives in /etc/ufw); a dry run before ufw is installed
 * plans the hook with no rules to mirror.
 *
 * @example
 * await host.run(ufw.rules({ rules, purge: true }));
 * await host.run(ufw.enabled());
 * await host.run(ufw.dockerUser());
 */
export function dockerUser(options: DockerUserOptions = {}): Operation {
  return defineOperation({
    name: 'ufw.dockerUser',
    // The hook's content comes from ufw's rules: its files.file is built when planning, from this fact.
    facts: { hook: pathInfo(UFW_AFTER_INIT), ufw: ufwState, guard: dockerUserGuard },
    options,
    plan: ({ ufw, guard }, part): Change | undefined => {
      // Missing ufw: a dry run before the step that installs it; plan the write, the reload waits for a real run.
      const rules = ufw.kind === 'ufw' ? ufw.rules : [];
      const write = part(files.file({ path: UFW_AFTER_INIT, content: dockerUserScript(rules), mode: '0750' }));
      const active = ufw.kind === 'ufw' && ufw.active;
      if (!write && (!active || guard.loaded)) return undefined;
      const reload = active ? [{ command: sh`ufw reload` }] : [];
      const why = write ? `write ${UFW_AFTER_INIT} mirroring ${rules.length} ufw rule(s) into DOCKER-USER` : `load the DOCKER-USER rules of ${UFW_AFTER_INIT}`;
      return {
        summary: `${why}${active ? ' and reload ufw' : ' (ufw is not running: they load when it starts)'}`,
        actions: [...(write?.actions ?? []), ...reload],
        ...(write?.checks ? { checks: write.checks } : {}),
        ...(write?.diff ? { diff: write.diff } : {}),
        // A reload runs the hook: its rules are loaded after it.
        effects: { facts: active ? { [dockerUserGuard.key]: { loaded: true } } : {}, writes: write ? [UFW_AFTER_INIT] : [] },
      };
    },
  });
}
