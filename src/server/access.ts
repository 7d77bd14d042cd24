/**
 * Who may use the gateway's operator endpoints: the admin API (/api), metrics (/metrics), the
 * dashboard's live data, and the log's application endpoints (/consume, /produce). Devices'
 * endpoints (/mqtt, /ingest) authenticate devices instead (devices/credentials.ts).
 *
 * With an admin token configured, every request needs it, whatever its address: a proxy on the
 * same machine makes every caller look local. Without one, only this machine's loopback is
 * served (as Mosquitto 2 does without a password file). Either way a request a web page makes
 * from another origin is refused: a browser sends cross-site WebSocket handshakes and simple
 * POSTs without asking, and a page whose name resolves to 127.0.0.1 (DNS rebinding) names
 * itself in Host.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { EdgelogError } from '../errors.js';
import type { AuthThrottle } from '../ingest/auth-throttle.js';

/**
 * A browser cannot set headers on a WebSocket handshake, so the dashboard offers the token as a
 * subprotocol `bearer.<base64url(token)>` next to the protocol it speaks (as Kubernetes does).
 */
export const TOKEN_SUBPROTOCOL_PREFIX = 'bearer.';

/** WebSocket close codes of a refusal (4000-4999 are the application's): like HTTP 401 and 403. */
export const CLOSE_AUTH_REQUIRED = 4401;
export const CLOSE_NOT_AUTHORIZED = 4403;

/** Checks requests to the operator endpoints against the admin token. */
export class AdminAccess {
  private readonly tokenDigest: Buffer | null;
  private readonly throttle: AuthThrottle;
  private readonly logger: Logger;

  constructor(opts: { token: string; throttle: AuthThrottle; logger: Logger }) {
    this.tokenDigest = opts.token === '' ? null : digest(opts.token);
    this.throttle = opts.throttle;
    this.logger = opts.logger.child({ component: 'access' });
  }

  /** Whether an admin token is configured (the dashboard then asks for it). */
  get tokenRequired(): boolean {
    return this.tokenDigest !== null;
  }

  /** Why `req` may not use a protected endpoint (AUTH_FAILED or NOT_AUTHORIZED), or null when it may. */
  refusal(req: IncomingMessage): EdgelogError | null {
    const crossSite = crossSiteOrigin(req);
    if (crossSite !== null) {
      return new EdgelogError('NOT_AUTHORIZED', `a web page from ${JSON.stringify(crossSite.slice(0, 80))} may not use the gateway's operator endpoints; open the dashboard from the gateway itself`);
    }
    if (this.tokenDigest === null) return loopbackRefusal(req);
    const presented = presentedToken(req);
    if (presented === null) {
      return new EdgelogError('AUTH_FAILED', "this endpoint needs the gateway's admin token: send the header 'Authorization: Bearer TOKEN' (the token is config key admin.token or EDGELOG_ADMIN_TOKEN on the gateway; edgelog commands take --token or EDGELOG_ADMIN_TOKEN)");
    }
    const source = req.socket.remoteAddress ?? '?';
    if (!this.throttle.mayTry(source)) {
      return new EdgelogError('AUTH_FAILED', `too many wrong admin tokens from ${source}: wait a few seconds before trying again`);
    }
    if (!timingSafeEqual(digest(presented), this.tokenDigest)) {
      if (this.throttle.failed(source)) this.logger.warn({ source }, 'wrong admin tokens: throttling this source');
      return new EdgelogError('AUTH_FAILED', 'the admin token is wrong: use the value of config key admin.token (or EDGELOG_ADMIN_TOKEN) of this gateway');
    }
    return null;
  }
}

/** The token of `Authorization: Bearer …`, or of a `bearer.…` WebSocket subprotocol, or null. */
function presentedToken(req: IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer +(\S+)\s*$/i.exec(header);
    return match ? match[1]! : null;
  }
  const protocols = req.headers['sec-websocket-protocol'];
  if (typeof protocols === 'string') {
    for (const p of protocols.split(',')) {
      const name = p.trim();
      if (name.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) return Buffer.from(name.slice(TOKEN_SUBPROTOCOL_PREFIX.length), 'base64url').toString('utf8');
    }
  }
  return null;
}

/** Equal-length digests, so the comparison takes the same time whatever was presented. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** The Origin of a browser request made from another site than the one in Host, or null. */
function crossSiteOrigin(req: IncomingMessage): string | null {
  const origin = req.headers.origin;
  if (origin === undefined) return null;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return origin;
  }
  return originHost.toLowerCase() === (req.headers.host ?? '').toLowerCase() ? null : origin;
}

function loopbackRefusal(req: IncomingMessage): EdgelogError | null {
  if (!isLoopbackRequest(req)) {
    return new EdgelogError(
      'NOT_AUTHORIZED',
      `without an admin token the gateway answers this machine's loopback only (this request came from ${req.socket.remoteAddress ?? 'an unknown address'}); set config key admin.token (or EDGELOG_ADMIN_TOKEN) to allow other machines with the token`,
    );
  }
  // DNS rebinding: a page whose name resolves to 127.0.0.1 talks to us from loopback with its
  // own name in Host. A loopback name in Host means the caller meant this machine.
  const host = req.headers.host;
  if (host !== undefined && !isLoopbackHost(host)) {
    return new EdgelogError('NOT_AUTHORIZED', `without an admin token the gateway answers requests addressed to its loopback only (localhost, 127.0.0.1 or [::1]), not to host ${JSON.stringify(host.slice(0, 80))}`);
  }
  return null;
}

/** Whether a request comes from this machine. */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  const address = req.socket.remoteAddress ?? '';
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Whether a Host header names this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!).toLowerCase();
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
