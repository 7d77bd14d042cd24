/**
 * The HTTP port under hostile input (issue 8, "Hostile and broken input"): oversize frames,
 * garbage and frames before auth on every WebSocket endpoint, a connection flood, and HTTP
 * requests that are too large, not URLs, or sent slowly, each while a well-behaved MQTT canary
 * device keeps publishing. Per-endpoint frame validation (test/ingest/ws-ingest.test.ts,
 * test/server/consume.test.ts) and admin tokens (test/server/access.test.ts) are not repeated.
 */
import WebSocket from 'ws';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HEADERS_TIMEOUT_MS } from '../../src/server/http-server.js';
import { inPool, randomBytes, RawSocket, seededRandom, underAttack } from './hostile-helpers.js';

/** Every WebSocket endpoint of the gateway (DESIGN.md "Defaults"). */
const ENDPOINTS = ['/ingest', '/consume', '/produce', '/mqtt', '/api/live'] as const;
/** Connection kinds of edgelog_connections the WebSocket endpoints open. */
const WS_KINDS = ['ws', 'consumers', 'producers', 'dashboards'];
/** Small records, so /ingest and /produce allow frames of about 280 KiB and /mqtt packets of 68 KiB. */
const OVERRIDES = { 'log.topicDefaults.maxMessageBytes': '4096' };
/** Over every endpoint's limit with those records (/consume allows 1 MiB, the most). */
const OVERSIZE_FRAME_BYTES = 1024 * 1024 + 1;
/** How long a hostile client waits for the gateway to answer or close before it gives up. */
const ANSWER_WAIT_MS = 2_000;
/** Slack on top of a timeout the gateway applies, for a loaded two-core machine. */
const TIMEOUT_SLACK_MS = 5_000;

interface Watched {
  ws: WebSocket;
  /** Text frames the gateway sent. */
  answers: string[];
  /** The close code, once closed. */
  code: number | null;
  opened: Promise<boolean>;
  closed: Promise<void>;
}

/** A raw `ws` client that records what the gateway answers and how it closes; terminated when the test finishes. */
function watch(port: number, path: string): Watched {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  onTestFinished(() => ws.terminate());
  const watched: Watched = {
    ws,
    answers: [],
    code: null,
    opened: new Promise((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('error', () => resolve(false));
    }),
    closed: new Promise((resolve) => ws.once('close', (code) => ((watched.code = code), resolve()))),
  };
  ws.on('error', () => {}); // the close event says what happened
  ws.on('message', (data, isBinary) => void (isBinary || watched.answers.push(data.toString())));
  return watched;
}

/** Waits until `w` is closed or `timeoutMs` passes. */
async function closedWithin(w: Watched, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([w.closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}

describe('WebSocket and HTTP under hostile input', () => {
  it('closes a frame over the limit with 1009 on every WebSocket endpoint', async () => {
    const oversize = Buffer.alloc(OVERSIZE_FRAME_BYTES, 0x7b);
    const { result } = await underAttack(
      'ws oversize frames',
      (gateway) =>
        Promise.all(
          ENDPOINTS.map(async (path) => {
            // Three at once per endpoint: the limit holds per connection, not by luck of timing.
            const clients = await Promise.all(
              [0, 1, 2].map(async () => {
                const w = watch(gateway.ports.http, path);
                expect(await w.opened, `${path} opens`).toBe(true);
                w.ws.send(oversize);
                await closedWithin(w, 10_000);
                return w.code;
              }),
            );
            return [path, clients] as const;
          }),
        ),
      { overrides: OVERRIDES, kinds: WS_KINDS },
    );
    expect(Object.fromEntries(result)).toEqual(Object.fromEntries(ENDPOINTS.map((p) => [p, [1009, 1009, 1009]])));
  });

  it('refuses invalid JSON, binary garbage and frames before auth on every endpoint, each on its own connection', async () => {
    const random = seededRandom(0x5eed_0101);
    // The same garbage for every endpoint: what comes before a join, an auth or a CONNECT.
    const sequences = Array.from({ length: 20 }, () => [
      { data: '{"type":"publish","stream":"t","payload":1', binary: false }, // cut short
      { data: JSON.stringify([1, { type: 'auth' }, null]), binary: false }, // JSON of the wrong shape
      { data: '{"type":"publish","id":1,"stream":"t","payload":{"v":1}}', binary: false }, // a publish before auth
      { data: randomBytes(random, 1 + Math.floor(random() * 4096)), binary: true },
      { data: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), binary: false }, // text that is not UTF-8: 1007
    ]);
    const { result } = await underAttack(
      'ws garbage frames',
      (gateway) =>
        Promise.all(
          ENDPOINTS.map(async (path) => {
            const watched = await inPool(sequences.length, 10, async (i) => {
              const w = watch(gateway.ports.http, path);
              if (!(await w.opened)) return w;
              for (const frame of sequences[i]!) if (w.ws.readyState === WebSocket.OPEN) w.ws.send(frame.data, { binary: frame.binary });
              await closedWithin(w, ANSWER_WAIT_MS);
              return w;
            });
            return [path, watched] as const;
          }),
        ),
      { overrides: OVERRIDES, kinds: WS_KINDS },
    );
    const byPath = Object.fromEntries(result);
    const codes = (path: string) => new Set(byPath[path]!.map((w) => w.code));
    const errorAnswers = (path: string) => byPath[path]!.filter((w) => w.answers.some((a) => (JSON.parse(a) as { type?: string }).type === 'error')).length;
    // /ingest: the first frame must be auth: an AUTH_FAILED error frame, then 1008.
    expect(codes('/ingest')).toEqual(new Set([1008]));
    expect(byPath['/ingest']!.every((w) => w.answers.some((a) => a.includes('AUTH_FAILED')))).toBe(true);
    // /api/live reads nothing: 1008 at the first frame.
    expect(codes('/api/live')).toEqual(new Set([1008]));
    // /mqtt: a text frame or garbage is no CONNECT; the broker drops the connection (no close frame: 1006, or 1005).
    expect([...codes('/mqtt')].every((code) => code !== null)).toBe(true);
    // /consume and /produce answer each bad frame with an error and keep going, until the invalid UTF-8 (1007).
    for (const path of ['/consume', '/produce']) {
      expect(errorAnswers(path), path).toBe(sequences.length);
      expect(codes(path), path).toEqual(new Set([1007]));
    }
  });

  it('survives a flood of 300 WebSocket connections opened and dropped, half without a close frame', async () => {
    await underAttack(
      'ws connection flood',
      (gateway) =>
        inPool(300, 60, async (i) => {
          const w = watch(gateway.ports.http, ENDPOINTS[i % ENDPOINTS.length]!);
          if (!(await w.opened)) throw new Error(`connection ${i} was refused`);
          if (i % 2 === 0) w.ws.terminate();
          else w.ws.close(1000);
          await w.closed;
        }),
      { overrides: OVERRIDES, kinds: WS_KINDS },
    );
  });

  it('answers oversize headers with 431, a WebSocket upgrade to a target that is not a URL with 404, and a bad request line with 400', async () => {
    const upgrade = (target: string) =>
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const requests: Record<string, string> = {
      'oversize headers': `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
      'oversize headers on an upgrade': upgrade('/ingest').replace('\r\n\r\n', `\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`),
      'an upgrade to //[': upgrade('//['),
      'an upgrade to a path with NUL': upgrade('/ingest%00/../x'),
      'a request line of garbage': 'GET\x00 / HTTP/9.9\r\n\r\n',
    };
    const { result } = await underAttack(
      'http malformed requests',
      (gateway) =>
        Promise.all(
          Object.entries(requests).map(async ([name, request]) => {
            const raw = await RawSocket.open(gateway.ports.http);
            raw.write(request);
            await raw.closedWithin(5_000);
            raw.destroy();
            return [name, raw.received.split('\r\n')[0]] as const;
          }),
        ),
      { overrides: OVERRIDES, kinds: WS_KINDS },
    );
    expect(Object.fromEntries(result)).toEqual({
      'oversize headers': 'HTTP/1.1 431 Request Header Fields Too Large',
      'oversize headers on an upgrade': 'HTTP/1.1 431 Request Header Fields Too Large',
      'an upgrade to //[': 'HTTP/1.1 404 Not Found',
      'an upgrade to a path with NUL': 'HTTP/1.1 404 Not Found',
      'a request line of garbage': 'HTTP/1.1 400 Bad Request',
    });
  });

  it(`closes 60 connections that send their headers a byte at a time within the headers timeout (${HEADERS_TIMEOUT_MS} ms)`, async () => {
    const { result } = await underAttack(
      'http slow headers',
      (gateway) =>
        inPool(60, 60, async (i) => {
          const raw = await RawSocket.open(gateway.ports.http);
          // Half plain requests, half WebSocket upgrades: the timeout must cover both.
          raw.write(`GET ${i % 2 === 0 ? '/healthz' : '/ingest'} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
          let sent = 0;
          const trickle = setInterval(() => {
            // One byte every 2 s, bounded, never the blank line that ends the headers.
            if (sent < 100 && raw.write('s')) sent += 1;
          }, 2_000);
          try {
            return await raw.closedWithin(HEADERS_TIMEOUT_MS + TIMEOUT_SLACK_MS);
          } finally {
            clearInterval(trickle);
            raw.destroy();
          }
        }),
      { overrides: OVERRIDES, kinds: WS_KINDS },
    );
    expect(result.filter((closed) => !closed)).toHaveLength(0);
  });
});
