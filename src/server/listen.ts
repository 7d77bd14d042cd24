import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';
import type { TlsOptions } from 'node:tls';
import { EdgelogError } from '../errors.js';

/**
 * The oldest TLS version the gateway's listeners speak: TLS 1.0 and 1.1 are deprecated (RFC 8996)
 * and get a protocol_version alert. Set explicitly: Node's default minimum is 1.2, but
 * `--tls-min-v1.0` in NODE_OPTIONS (for some legacy client on the same machine) lowers it for
 * every server that relies on it.
 */
export const TLS_MIN_VERSION = 'TLSv1.2';
/**
 * How long a client has to finish its TLS handshake. Node's default is 120 s: a source that opens
 * connections and sends half a ClientHello would hold each socket twelve times as long as the
 * plaintext listeners allow a silent client (MQTT's connect timeout, HTTP's headers timeout: 10 s).
 * A handshake takes a few round trips, well under a second even on a poor link.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Options of every TLS listener (MQTT over TLS, HTTPS): the certificate, the policy above, and with
 * a client CA, client certificates asked for but not required, so that devices with a password can
 * use the TLS listeners too (the MQTT ingest trusts a certificate only if it verified).
 */
export function tlsServerOptions(tls: { cert: Buffer; key: Buffer; ca?: Buffer }): TlsOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: TLS_MIN_VERSION,
    handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}),
  };
}

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
