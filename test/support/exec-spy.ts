import type { Command } from '../../lib/command/command.ts';
import type { Connection } from '../../lib/connection/connection.ts';

/**
 * The same connection, telling `seen` of each command before it runs: how tests count what a
 * run sends (fact batches, commands) without a fake in its place.
 *
 * @example const conn = execSpy(await openConnection(h, inv, ctx), (c) => log.push(c.toString()));
 */
export function execSpy(conn: Connection, seen: (command: Command) => void): Connection {
  const exec: Connection['exec'] = (command, opts) => {
    seen(command);
    return conn.exec(command, opts);
  };
  return new Proxy(conn, {
    get: (target, key) => {
      if (key === 'exec') return exec;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
