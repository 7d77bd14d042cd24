import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS, type AuthThrottle } from './auth-throttle.js';
import type { DeviceDirectory, Intake } from './intake.js';
import { AuthRefusal, IngestConnection, type ConnectionHost } from './ws-connection.js';
import { AUTH_FRAME_SHAPE, type AuthFrame } from './ws-frames.js';

/** What WebSocket ingest authentication needs of the device registry (devices/registry.ts). */
export interface TokenVerifier extends DeviceDirectory {
  verifyToken(id: string, secret: string | Buffer): Promise<boolean>;
}

export interface WsIngestOptions {
  intake: Intake;
  devices: TokenVerifier;
  /** Accept clients without a token (no registry configured, or allowAnonymous), as MQTT ingest does. */
  allowAnonymous: boolean;
  /** Failed logins per source address, shared with MQTT ingest. */
  authThrottle: AuthThrottle;
  logger: Logger;
  /** The log's maxMessageBytes for new topics: sets the largest frame (see {@link wsIngestFrameBytesMax}). */
  maxMessageBytes: number;
  authTimeoutMs?: number;
}

/** How long a client has to send its auth frame; a socket that says nothing must not hold a slot. */
export const AUTH_TIMEOUT_MS = 10_000;
/** Room for a frame's JSON around the base64 of its largest reading. */
const FRAME_SLACK_BYTES = 64 * 1024;
/** A frame may carry this many readings of the largest size (maxMessageBytes), base64-encoded... */
const FRAME_BATCH_ALLOWANCE = 4;
/** ...but is never larger than this (unless one reading needs more): ws holds a frame whole in memory while it arrives. */
const FRAME_BYTES_CAP = 16 * 1024 * 1024;

/**
 * The largest WebSocket message accepted on /ingest (the route's maxPayloadBytes; a larger one
 * closes the connection with 1009): a batch of {@link FRAME_BATCH_ALLOWANCE} readings of
 * `maxMessageBytes` in base64, capped at 16 MiB, and never less than one such reading.
 * 5.6 MiB with the default 1 MiB records.
 */
export function wsIngestFrameBytesMax(maxMessageBytes: number): number {
  const oneReading = Math.ceil(maxMessageBytes / 3) * 4 + FRAME_SLACK_BYTES;
  return Math.max(oneReading, Math.min(FRAME_BATCH_ALLOWANCE * oneReading, FRAME_BYTES_CAP));
}

export interface WsIngestStats {
  /** Open connections, authenticated or not. */
  connections: number;
  /** Times a connection's socket was paused because it had too much unsettled work. */
  pauses: number;
  /** The most readings one connection had submitted and unsettled at once (bounded by MAX_PENDING_READINGS plus one frame). */
  pendingReadingsMax: number;
}

/**
 * WebSocket ingest at `/ingest` (docs/ws-ingest.md): JSON frames carrying one reading or a batch,
 * each answered once every reading of it is durable in the log (or refused), in frame order. One
 * connection is one device and one intake session, so a device's readings keep their order.
 */
export class WsIngest implements ConnectionHost {
  readonly maxFrameBytes: number;
  readonly logger: Logger;
  readonly authTimeoutMs: number;
  readonly intake: Intake;
  private readonly counts: WsIngestStats = { connections: 0, pauses: 0, pendingReadingsMax: 0 };

  constructor(readonly opts: WsIngestOptions) {
    this.maxFrameBytes = wsIngestFrameBytesMax(opts.maxMessageBytes);
    this.logger = opts.logger.child({ component: 'ws-ingest' });
    this.authTimeoutMs = opts.authTimeoutMs ?? AUTH_TIMEOUT_MS;
    this.intake = opts.intake;
  }

  /** Serves one accepted WebSocket on /ingest (the HttpServer route handler). */
  handle(ws: WebSocket, req: IncomingMessage): void {
    const address = req.socket.remoteAddress ?? '?';
    new IngestConnection(this, ws, address, `${address}:${req.socket.remotePort ?? '?'}`);
  }

  stats(): WsIngestStats {
    return { ...this.counts };
  }

  /** @internal */
  count(event: 'open' | 'close' | 'pause'): void {
    if (event === 'open') this.counts.connections += 1;
    else if (event === 'close') this.counts.connections -= 1;
    else this.counts.pauses += 1;
  }

  /** @internal */
  notePending(readings: number): void {
    if (readings > this.counts.pendingReadingsMax) this.counts.pendingReadingsMax = readings;
  }

  /**
   * The identity of a connection, by the same policy as MQTT ingest: a registered device must
   * present its token; without a token a client is anonymous (identity null) where the gateway
   * accepts anonymous clients; a source with too many failed logins is refused without a check
   * for a while. Throws an {@link AuthRefusal}.
   */
  async authenticate(frame: AuthFrame, address: string): Promise<string | null> {
    const { authThrottle } = this.opts;
    const attempt = await authThrottle.begin(address);
    if (attempt === null) {
      throw new AuthRefusal(`too many failed logins from ${address}: one more is allowed every ${AUTH_FAILURE_INTERVAL_MS / 1000} s`, 'throttled', true);
    }
    let identity: string | null;
    try {
      identity = await this.checkCredentials(frame);
    } catch (error) {
      // Anything but a clean check counts as a failure: the attempt was counted as one from the start.
      if (attempt.failed()) {
        this.logger.warn({ address, failures: AUTH_FAILURE_BURST }, 'too many failed logins: refusing this source without checking for a while');
      }
      throw error;
    }
    attempt.succeeded();
    return identity;
  }

  private async checkCredentials(frame: AuthFrame): Promise<string | null> {
    const { deviceId, token } = frame;
    const { devices, allowAnonymous } = this.opts;
    // The same words for an unknown id and a wrong token, so a client cannot probe which ids exist.
    const notAccepted = `device id or token not accepted (unknown device or wrong token); the auth frame is ${AUTH_FRAME_SHAPE}`;
    if (devices.get(deviceId)) {
      if (token === undefined) {
        if (allowAnonymous) throw new AuthRefusal(`device '${deviceId}' is registered: its auth frame must carry its token`, 'registered device without a token');
        throw new AuthRefusal(`this gateway requires a token: the auth frame is ${AUTH_FRAME_SHAPE}`, 'no token');
      }
      if (await devices.verifyToken(deviceId, token)) return deviceId;
      throw new AuthRefusal(notAccepted, 'wrong token');
    }
    if (allowAnonymous) return null;
    if (token === undefined) throw new AuthRefusal(`this gateway requires a token: the auth frame is ${AUTH_FRAME_SHAPE}`, 'no token');
    // As long as a real check takes (devices/registry.ts), so timing does not tell which ids exist either.
    await devices.verifyToken(deviceId, token);
    throw new AuthRefusal(notAccepted, 'unknown device');
  }
}
