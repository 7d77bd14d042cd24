import WebSocket from 'ws';
import { EdgelogClientError } from './errors.js';

/** How long opening a connection may take (TCP connect and the WebSocket handshake) before it fails. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** How long a closing client waits for the gateway's close frame before it cuts the socket. */
export const CLOSE_TIMEOUT_MS = 2_000;

/** A frame from the gateway, as JSON gave it; each handler checks the fields it reads. */
export type GatewayFrame = Record<string, unknown> & { type?: unknown };

export interface ConnectionHandlers {
  onFrame: (frame: GatewayFrame) => void;
  /** The connection closed; `error` says why when it was not this side's close(). */
  onClose: (error: EdgelogClientError) => void;
}

/**
 * One WebSocket to the gateway carrying JSON text frames: opening with a timeout and a clear
 * error, sending, and closing with a bounded wait. Shared by the consumer and the producer.
 */
export class Connection {
  /** Resolves once the WebSocket is open; rejects with GATEWAY_UNREACHABLE (its `cause` holds the system error, e.g. ECONNREFUSED). */
  readonly opened: Promise<void>;
  private readonly ws: WebSocket;
  private readonly closed: Promise<void>;
  private closedByUs = false;

  constructor(
    readonly url: string,
    handlers: ConnectionHandlers,
    opts: { timeoutMs?: number; token?: string } = {},
  ) {
    const ws = new WebSocket(url, {
      handshakeTimeout: opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      perMessageDeflate: false,
      ...(opts.token === undefined || opts.token === '' ? {} : { headers: { authorization: `Bearer ${opts.token}` } }),
    });
    this.ws = ws;
    let wasOpen = false;
    let lastError: (Error & { code?: string }) | undefined;
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => {
        wasOpen = true;
        resolve();
      });
      ws.on('error', (error) => {
        lastError = error;
        if (!wasOpen) reject(unreachable(url, error));
      });
    });
    // Callers learn of a failed open from `opened`; this keeps an unawaited one from being an unhandled rejection.
    this.opened.catch(() => {});
    ws.on('message', (data, isBinary) => {
      let frame: unknown;
      try {
        frame = isBinary ? undefined : JSON.parse(data.toString());
      } catch {
        frame = undefined;
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
        if (!this.closedByUs) handlers.onClose(new EdgelogClientError('PROTOCOL_ERROR', `the gateway at ${url} sent a frame that is not a JSON object; is this an edgelog gateway of a matching version?`));
        this.terminate();
        return;
      }
      if (!this.closedByUs) handlers.onFrame(frame as GatewayFrame);
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        resolve();
        if (wasOpen && !this.closedByUs) handlers.onClose(closeReason(url, code, reason.toString(), lastError));
      }),
    );
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame; false when the connection is not open (its close handler has run or will run). */
  send(frame: object | string): boolean {
    if (!this.isOpen) return false;
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    return true;
  }

  /** Closes from this side (no onClose call) and waits for the close handshake, at most CLOSE_TIMEOUT_MS. */
  async close(code = 1000, reason = ''): Promise<void> {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    } else if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(code, reason);
    }
    const timer = setTimeout(() => this.ws.terminate(), CLOSE_TIMEOUT_MS);
    await this.closed;
    clearTimeout(timer);
  }

  /** Cuts the socket at once (no onClose call). */
  terminate(): void {
    this.closedByUs = true;
    this.ws.terminate();
  }
}

function unreachable(url: string, error: Error & { code?: string }): EdgelogClientError {
  const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
  if (status !== undefined) {
    const path = new URL(url).pathname;
    return new EdgelogClientError('GATEWAY_UNREACHABLE', `the server at ${url} answered HTTP ${status} instead of opening a WebSocket: is it an edgelog gateway with ${path}, and is the URL its HTTP port?`, { cause: error });
  }
  const why = error.code ?? error.message;
  return new EdgelogClientError('GATEWAY_UNREACHABLE', `cannot reach the gateway at ${url} (${why}): is it running, and is that its HTTP port?`, { cause: error });
}

/** The gateway's close codes for a refused admin token and a refused request (docs/api.md, "Admin token"). */
const CLOSE_AUTH_REQUIRED = 4401;
const CLOSE_NOT_AUTHORIZED = 4403;

/** Why the gateway (or the network) closed a connection, as the error the client fails with. */
function closeReason(url: string, code: number, reason: string, error: Error | undefined): EdgelogClientError {
  const said = reason === '' ? '' : `: ${reason}`;
  if (code === 1001) return new EdgelogClientError('GATEWAY_CLOSING', `the gateway at ${url} closed the connection because it is shutting down${said}`);
  if (code === CLOSE_AUTH_REQUIRED) return new EdgelogClientError('AUTH_FAILED', `the gateway at ${url} wants its admin token${said}`);
  if (code === 1008 || code === CLOSE_NOT_AUTHORIZED) return new EdgelogClientError('NOT_AUTHORIZED', `the gateway at ${url} refused the connection${said}`);
  const detail = error ? ` (${(error as { code?: string }).code ?? error.message})` : '';
  return new EdgelogClientError('CONNECTION_LOST', `the connection to the gateway at ${url} was lost (close code ${code}${said})${detail}`, error ? { cause: error } : undefined);
}
