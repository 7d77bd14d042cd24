import type { IncomingMessage } from 'node:http';

/**
 * Whether a request comes from this machine. Until the admin token (issue 7) protects them, the
 * endpoints that read or write the log for applications (/consume, /produce, /api) serve loopback only.
 */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  const address = req.socket.remoteAddress ?? '';
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}
