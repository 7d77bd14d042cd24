import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServerNode, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EdgelogError } from '../errors.js';
import { CLOSE_AUTH_REQUIRED, CLOSE_NOT_AUTHORIZED, TOKEN_SUBPROTOCOL_PREFIX } from './access.js';
import { sendError } from './http-json.js';
import { listen, stopListening, tlsServerOptions } from './listen.js';

/** How long a WebSocket client has to answer the close frame at shutdown before its socket is cut. */
const CLOSE_GRACE_MS = 1000;
/**
 * Bounds on a client that sends its request slowly (slowloris). Node's defaults (60 s for the
 * headers, 300 s for the whole request, checked only every 30 s) let one source hold a socket and
 * its parser for up to 90 s per connection; the gateway's requests are small (JSON bodies of a few
 * KiB, WebSocket handshakes), so a well-behaved client needs a fraction of these. Upgraded
 * WebSockets are no longer requests and are not affected.
 */
export const HEADERS_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often Node checks those timeouts: each can be overrun by up to this much. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;
const REQUEST_TIMEOUTS = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS };

/** Serves one accepted WebSocket connection. */
export type WebSocketHandler = (ws: WebSocket, req: IncomingMessage) => void;

/** Why a request may not use a route (an operator endpoint's admin access check), or null when it may. */
export type AccessCheck = (req: IncomingMessage) => EdgelogError | null;

export interface WebSocketRoute {
  /** The URL path, e.g. `/mqtt`. */
  path: string;
  handler: WebSocketHandler;
  /** Largest message accepted; a larger one closes the connection with 1009 (ws's maxPayload). */
  maxPayloadBytes: number;
  /** Picks the subprotocol to answer (e.g. `mqtt`); default: the first one offered that does not carry a token, if any. */
  handleProtocols?: (protocols: Set<string>) => string | false;
  /** Checked before the handler; a refused connection is closed with 4401 or 4403 and the reason. */
  access?: AccessCheck;
}

/** Answers one plain HTTP request; it must always end the response. */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HttpRoute {
  /** A path prefix, e.g. `/api`: it serves the path itself and everything under `prefix/`. */
  prefix: string;
  /** Serve the prefix itself only, nothing under it (the dashboard's `/`). */
  exact?: boolean;
  handler: HttpHandler;
  /** Checked before the handler; a refused request is answered 401 or 403 with the reason as JSON. */
  access?: AccessCheck;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** PEM certificate, key and optional client CA: serves the same routes over HTTPS on httpsPort. */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer; httpsPort: number };
  routes: WebSocketRoute[];
  /** Plain HTTP routes by path prefix; any other request gets a 404 naming the endpoints. */
  httpRoutes?: HttpRoute[];
  logger: Logger;
}

/**
 * The gateway's one HTTP port (DESIGN.md "Defaults"): WebSocket endpoints by path today, the
 * admin API, metrics and dashboard as their issues land. With TLS configured the same routes are
 * served over HTTPS/WSS on a second port.
 */
export class HttpServer {
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly servers: HttpServerNode[],
    private readonly wss: Map<string, WebSocketServer>,
    /** Bound ports: HTTP, then HTTPS when TLS is on. */
    readonly ports: { http: number; https: number | null },
  ) {}

  static async start(opts: HttpServerOptions): Promise<HttpServer> {
    const logger = opts.logger.child({ component: 'http' });
    const wss = new Map<string, WebSocketServer>();
    for (const route of opts.routes) {
      const server = new WebSocketServer({
        noServer: true,
        maxPayload: route.maxPayloadBytes,
        handleProtocols: route.handleProtocols ?? firstProtocolWithoutToken,
      });
      const access = route.access;
      server.on(
        'connection',
        access === undefined
          ? route.handler
          : (ws: WebSocket, req: IncomingMessage) => {
              // Refused after the upgrade, not with an HTTP status: a browser shows a WebSocket's
              // close code and reason to the page, never a failed handshake's status.
              const refusal = access(req);
              if (refusal === null) return route.handler(ws, req);
              ws.close(refusal.code === 'AUTH_FAILED' ? CLOSE_AUTH_REQUIRED : CLOSE_NOT_AUTHORIZED, closeReason(refusal.message));
            },
      );
      wss.set(route.path, server);
    }
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = pathOf(req);
      const server = wss.get(path);
      if (!server) {
        socket.end(`HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nno WebSocket endpoint at ${path}; endpoints: ${[...wss.keys()].join(', ')}\n`);
        return;
      }
      server.handleUpgrade(req, socket, head, (ws) => {
        // ws emits 'error' for protocol violations (a frame over maxPayload: 1009, invalid
        // UTF-8: 1007) and closes the socket itself; unheard, that event would end the process.
        ws.on('error', (error) => logger.debug({ path, reason: error.message }, 'WebSocket closed on a protocol error'));
        server.emit('connection', ws, req);
      });
    };
    const httpRoutes = opts.httpRoutes ?? [];
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      const path = pathOf(req);
      const route = httpRoutes.find((r) => path === r.prefix || (r.exact !== true && path.startsWith(`${r.prefix}/`)));
      if (route) {
        const refusal = route.access?.(req) ?? null;
        if (refusal !== null) return sendError(res, refusal);
        try {
          route.handler(req, res);
        } catch (error) {
          // A handler's bug must answer this request, not end the process.
          logger.error({ err: error, path }, 'HTTP handler failed');
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end('edgelog: the gateway failed to handle this request (a bug; it logged the cause)\n');
        }
        return;
      }
      const http = httpRoutes.length > 0 ? `; HTTP endpoints: ${httpRoutes.map((r) => r.prefix).join(', ')}` : '';
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`edgelog: nothing at ${path}. WebSocket endpoints: ${[...wss.keys()].join(', ')}${http}\n`);
    };
    const servers: HttpServerNode[] = [];
    const close = async () => {
      for (const s of wss.values()) s.close();
      await Promise.all(servers.map(stopListening));
    };
    try {
      const http = createHttpServer(REQUEST_TIMEOUTS, onRequest);
      http.on('upgrade', onUpgrade);
      servers.push(http);
      const httpPort = await listen(http, opts.port, opts.host, 'HTTP', '--http-port');
      let httpsPort: number | null = null;
      if (opts.tls) {
        const https = createHttpsServer({ ...REQUEST_TIMEOUTS, ...tlsServerOptions(opts.tls) }, onRequest);
        https.on('upgrade', onUpgrade);
        servers.push(https);
        httpsPort = await listen(https, opts.tls.httpsPort, opts.host, 'HTTPS', "config key 'tls.httpsPort'");
      }
      logger.info({ host: opts.host, port: httpPort, httpsPort, endpoints: [...wss.keys()] }, 'HTTP listening');
      return new HttpServer(servers, wss, { http: httpPort, https: httpsPort });
    } catch (error) {
      await close();
      throw error;
    }
  }

  /** Stops accepting connections; open ones go on until {@link close}. */
  stopAccepting(): void {
    for (const server of this.servers) server.close();
  }

  /** Stops listening and closes every connection: WebSockets with 1001 (going away), cut after a grace second. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = Promise.all(this.servers.map(stopListening));
      for (const server of this.wss.values()) {
        for (const ws of server.clients) {
          ws.close(1001, 'gateway shutting down');
          setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
        }
        server.close();
      }
      for (const server of this.servers) server.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }
}

/** ws's default would answer a `bearer.…` token subprotocol back, which says nothing and echoes the secret. */
function firstProtocolWithoutToken(protocols: Set<string>): string | false {
  for (const p of protocols) if (!p.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) return p;
  return false;
}

/** A close frame's reason holds at most 123 bytes (RFC 6455 §5.5): cut at a character boundary. */
function closeReason(message: string): string {
  let reason = message;
  while (Buffer.byteLength(reason) > 123) reason = reason.slice(0, -1);
  return reason;
}

/**
 * The request's path, dot segments resolved. A request target that is not a valid URL (`//[`)
 * would make `new URL` throw inside the request listener and end the process: it keeps its raw
 * path, which matches no route.
 */
export function pathOf(req: IncomingMessage): string {
  const target = req.url ?? '/';
  try {
    return new URL(target, 'http://gateway').pathname;
  } catch {
    return target.split('?')[0] ?? target;
  }
}
