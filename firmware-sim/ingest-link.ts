import WebSocket from 'ws';
import type { Link, LinkEvents, Outgoing, SendOutcome } from './link.js';
import { MAX_INFLIGHT, type FleetConfig } from './options.js';

/** Close codes that are an ordinary end, not an error to count (RFC 6455 §7.4.1): normal, going away, none given. */
const ORDINARY_CLOSE_CODES = new Set([1000, 1001, 1005]);
/** 1008 follows an AUTH_FAILED error frame, which is counted already. */
const AUTH_CLOSE_CODE = 1008;

/** The answers of WebSocket ingest a device reads (docs/ws-ingest.md). */
interface Answer {
  type?: unknown;
  id?: unknown;
  code?: unknown;
  retryable?: unknown;
  limits?: { maxReadingsPerFrame?: unknown };
  results?: unknown;
}

interface SentFrame {
  readonly id: number;
  readonly count: number;
  readonly done: (index: number, outcome: SendOutcome) => void;
}

/**
 * A device's connection to the gateway's WebSocket ingest (`ws://HOST:PORT/ingest`): an auth frame
 * with its id and token, then publish frames of one reading or a batch. The gateway answers every
 * frame in order, so answers are matched to frames first in, first out (and checked by id).
 */
export function openIngestLink(config: FleetConfig, id: string, events: LinkEvents): Link {
  let ended = false;
  let open = false;
  let alive = true;
  let nextId = 1;
  let maxReadingsPerFrame = MAX_INFLIGHT;
  const sent: SentFrame[] = [];
  const ws = new WebSocket(config.gateway, { handshakeTimeout: config.connectTimeoutMs });
  // The handshake timeout covers the upgrade; this covers the auth answer too.
  const connectTimer = setTimeout(() => fail('CONNECT_TIMEOUT'), config.connectTimeoutMs);
  let pingTimer: NodeJS.Timeout | undefined;

  const stop = (): void => {
    ended = true;
    clearTimeout(connectTimer);
    clearInterval(pingTimer);
  };
  const fail = (code: string): void => {
    if (ended) return;
    events.error(code);
    stop();
    ws.terminate();
    events.closed(code);
  };

  ws.on('open', () => {
    const token = config.token?.replaceAll('{deviceId}', id);
    ws.send(JSON.stringify({ type: 'auth', deviceId: id, ...(token === undefined ? {} : { token }) }));
  });
  ws.on('message', (data, isBinary) => {
    if (ended) return;
    let answer: Answer;
    try {
      answer = JSON.parse(isBinary ? '' : data.toString()) as Answer;
    } catch {
      return fail('PROTOCOL_ERROR');
    }
    if (!open) {
      if (answer.type === 'auth-ok') {
        open = true;
        clearTimeout(connectTimer);
        const limit = answer.limits?.maxReadingsPerFrame;
        if (typeof limit === 'number' && limit >= 1) maxReadingsPerFrame = Math.min(limit, MAX_INFLIGHT);
        if (config.keepaliveS > 0) pingTimer = setInterval(ping, config.keepaliveS * 1000);
        events.open();
      } else {
        events.error(typeof answer.code === 'string' ? answer.code : 'PROTOCOL_ERROR'); // AUTH_FAILED; the gateway closes
      }
      return;
    }
    const frame = sent.shift();
    if (frame === undefined || (answer.id !== undefined && answer.id !== frame.id)) return fail('PROTOCOL_ERROR');
    settle(frame, answer);
  });
  ws.on('pong', () => (alive = true));
  ws.on('error', (error: Error & { code?: string }) => {
    if (!ended) events.error(error.code ?? error.message);
  });
  ws.on('close', (code) => {
    if (ended) return;
    if (!ORDINARY_CLOSE_CODES.has(code) && code !== AUTH_CLOSE_CODE) events.error(`WS_CLOSE_${code}`);
    stop();
    events.closed(`closed with ${code}`);
  });

  /** A dead link (no pong since the last ping) is cut, as MQTT's keep-alive does. */
  function ping(): void {
    if (!alive) return fail('KEEPALIVE_TIMEOUT');
    alive = false;
    ws.ping();
  }

  function settle(frame: SentFrame, answer: Answer): void {
    const results = Array.isArray(answer.results) ? (answer.results as unknown[]) : undefined;
    for (let i = 0; i < frame.count; i++) {
      if (ended) return; // a callback may have ended the link
      frame.done(i, outcomeOf(answer, results?.[i]));
    }
  }

  return {
    send(items: readonly Outgoing[], done: (index: number, outcome: SendOutcome) => void): void {
      if (ended || !open) return;
      for (let start = 0; start < items.length; start += maxReadingsPerFrame) {
        const chunk = items.slice(start, start + maxReadingsPerFrame);
        const frame: SentFrame = { id: nextId++, count: chunk.length, done: (i, outcome) => done(start + i, outcome) };
        sent.push(frame);
        ws.send(publishFrame(frame.id, chunk));
      }
    },
    async end(graceful: boolean, timeoutMs: number): Promise<void> {
      const wasOpen = open && !ended;
      stop();
      if (!graceful || !wasOpen || ws.readyState !== WebSocket.OPEN) {
        ws.terminate();
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, timeoutMs);
        ws.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        ws.close(1000, 'done');
      });
    },
  };
}

/** How one reading of an answered frame ended: its entry in `results`, or the whole frame's answer. */
function outcomeOf(answer: Answer, result: unknown): SendOutcome {
  if (typeof result === 'object' && result !== null) {
    const r = result as { error?: { code?: unknown; retryable?: unknown }; deadLetter?: unknown };
    if (r.error !== undefined) return { kind: 'refused', code: String(r.error.code), retryable: r.error.retryable === true };
    return typeof r.deadLetter === 'string' ? { kind: 'acked', deadLetter: r.deadLetter } : { kind: 'acked' };
  }
  if (answer.type === 'ack') return { kind: 'acked' };
  // An error frame without results: nothing of the frame was stored.
  return { kind: 'refused', code: typeof answer.code === 'string' ? answer.code : 'PROTOCOL_ERROR', retryable: answer.retryable === true };
}

/**
 * The publish frame's text, built by hand: a json payload is the device's own compact JSON
 * object text, spliced in as is (no parse and re-serialize per reading); other bytes go as base64.
 */
function publishFrame(id: number, items: readonly Outgoing[]): string {
  const reading = (item: Outgoing): string =>
    `{"stream":${JSON.stringify(item.stream)},${item.json ? `"payload":${item.payload.toString('utf8')}` : `"payloadBase64":"${item.payload.toString('base64')}"`}}`;
  if (items.length === 1) return `{"type":"publish","id":${id},${reading(items[0]!).slice(1)}`;
  return `{"type":"publish","id":${id},"readings":[${items.map(reading).join(',')}]}`;
}
