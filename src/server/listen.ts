import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';
import { EdgelogError } from '../errors.js';

/**
 * Starts `server` listening and resolves with the bound port. A port in use or a privileged one
 * becomes LISTEN_FAILED naming the listener, the address and the way out, not a raw EADDRINUSE.
 */
export async function listen(server: Server, port: number, host: string, what: string, option: string): Promise<number> {
  try {
    server.listen(port, host);
    await once(server, 'listening');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EADDRINUSE' ? 'the port is in use by another program' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : String(error);
    throw new EdgelogError('LISTEN_FAILED', `cannot listen for ${what} on ${host}:${port}: ${why}; choose another with ${option} (0 picks a free port)`, { cause: error });
  }
  return (server.address() as AddressInfo).port;
}

/**
 * Stops a server accepting connections at once; resolves when its last open connection has
 * ended too (closing those is the caller's job, so await it after closing them).
 */
export function stopListening(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
