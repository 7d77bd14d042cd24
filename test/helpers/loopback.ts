import { createConnection, createServer } from 'node:net';
import { userInfo } from 'node:os';

// No vitest here: bench/lib/brokers.ts starts Mosquitto the same way and imports these too.

/** A free TCP port on 127.0.0.1, for Mosquitto, which needs a number in its config and cannot report port 0 back. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export async function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Debian's Mosquitto, the reference broker of tests and benchmarks. */
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/**
 * A Mosquitto config listening on 127.0.0.1:port. max_queued_messages is unlimited because 2.0.11
 * silently drops QoS 1 messages to a slow subscriber past it (DESIGN "Traps").
 */
export function mosquittoConfig(port: number, extra: readonly string[]): string {
  return [
    `listener ${port} 127.0.0.1`,
    // Started as root, Mosquitto would drop to user 'mosquitto', which cannot write our 0700 temp folders.
    `user ${userInfo().username}`,
    'allow_anonymous true',
    'max_queued_messages 100000000',
    'max_inflight_messages 0',
    'max_connections -1',
    'log_dest stderr',
    'log_type error',
    ...extra,
    '',
  ].join('\n');
}
