/**
 * Live updates for the dashboard at `/api/live` (docs/api.md): a WebSocket that receives the
 * overview (overview.ts) at once and then every second, without the page asking.
 */
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import type { AccessCheck, WebSocketRoute } from './http-server.js';
import type { OverviewBuilder } from './overview.js';

export const LIVE_PATH = '/api/live';
/** The subprotocol the dashboard speaks (next to its token, see access.ts). */
export const LIVE_PROTOCOL = 'edgelog.live.v1';
/** How often an overview is pushed. */
export const LIVE_INTERVAL_MS = 1000;
/** Dashboards open at once: each costs one overview's JSON a second. Past it a page is told to try later. */
export const MAX_LIVE_CLIENTS = 32;
/**
 * A page that reads slower than we send (a phone on a weak link) skips frames while it holds
 * this much unsent: the next frame has the whole state anyway, so memory stays bounded.
 */
export const MAX_LIVE_BUFFERED_BYTES = 1024 * 1024;
/** The dashboard sends nothing; a frame larger than this is a misuse. */
const MAX_LIVE_FRAME_BYTES = 1024;

/** Pushes overviews to the open dashboards. */
export class LiveService {
  private readonly clients = new Set<WebSocket>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private skippedFrames = 0;
  private readonly logger: Logger;

  constructor(
    private readonly overview: OverviewBuilder,
    logger: Logger,
  ) {
    this.logger = logger.child({ component: 'live' });
  }

  route(access: AccessCheck): WebSocketRoute {
    return { path: LIVE_PATH, handler: (ws) => this.handle(ws), maxPayloadBytes: MAX_LIVE_FRAME_BYTES, access };
  }

  /** Dashboards connected now, and frames skipped for slow ones since start. */
  stats(): { clients: number; skippedFrames: number } {
    return { clients: this.clients.size, skippedFrames: this.skippedFrames };
  }

  private handle(ws: WebSocket): void {
    if (this.closed) return void ws.close(1001, 'gateway shutting down');
    if (this.clients.size >= MAX_LIVE_CLIENTS) {
      return void ws.close(1013, `${MAX_LIVE_CLIENTS} dashboards are open, the most at once; close one or try again later`);
    }
    this.clients.add(ws);
    ws.on('close', () => {
      this.clients.delete(ws);
      if (this.clients.size === 0) this.stopTimer();
    });
    ws.on('message', () => ws.close(1008, 'the live endpoint sends overviews and reads nothing'));
    const frame = this.frame();
    if (frame !== null) this.send([ws], frame);
    this.timer ??= setInterval(() => this.push(), LIVE_INTERVAL_MS);
  }

  private push(): void {
    if (this.clients.size === 0) return;
    const frame = this.frame();
    if (frame !== null) this.send(this.clients, frame);
  }

  private frame(): string | null {
    try {
      return JSON.stringify({ type: 'overview', overview: this.overview.build() });
    } catch (error) {
      // A bug in building the overview must not end the process; the next tick tries again.
      this.logger.error({ err: error }, 'building the overview failed');
      return null;
    }
  }

  private send(clients: Iterable<WebSocket>, frame: string): void {
    for (const ws of clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_LIVE_BUFFERED_BYTES) {
        this.skippedFrames++;
        continue;
      }
      ws.send(frame);
    }
  }

  private stopTimer(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Closes every dashboard connection (1001). Idempotent. */
  close(): void {
    this.closed = true;
    this.stopTimer();
    for (const ws of this.clients) ws.close(1001, 'gateway shutting down');
    this.clients.clear();
  }
}
