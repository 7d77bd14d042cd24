import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { AUTH_FAILURE_BURST, AuthThrottle } from '../../src/ingest/auth-throttle.js';
import { AdminAccess, CLOSE_AUTH_REQUIRED, CLOSE_NOT_AUTHORIZED, TOKEN_SUBPROTOCOL_PREFIX } from '../../src/server/access.js';
import { LIVE_PATH, LIVE_PROTOCOL } from '../../src/server/live.js';
import { startGateway } from '../helpers/gateway.js';

const TOKEN = 'test-admin-token-0123456789';
const silent = pino({ level: 'silent' });

/** A request as the access check sees it: the peer's address and the headers (node lower-cases names). */
function fakeRequest(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}

function access(token: string): AdminAccess {
  return new AdminAccess({ token, throttle: new AuthThrottle(), logger: silent });
}

const bearerProtocol = (token: string) => `${TOKEN_SUBPROTOCOL_PREFIX}${Buffer.from(token).toString('base64url')}`;

describe('AdminAccess without a token: loopback only', () => {
  const check = access('');

  it('admits loopback with a loopback Host, and refuses other addresses naming the setting that opens them', () => {
    for (const address of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      for (const host of ['localhost:8080', '127.0.0.1', '[::1]:8080']) expect(check.refusal(fakeRequest(address, { host }))).toBeNull();
    }
    const refused = check.refusal(fakeRequest('192.0.2.7', { host: '192.0.2.1:8080' }));
    expect(refused).toMatchObject({ code: 'NOT_AUTHORIZED' });
    expect(refused!.message).toBe(
      "without an admin token the gateway answers this machine's loopback only (this request came from 192.0.2.7); set config key admin.token (or EDGELOG_ADMIN_TOKEN) to allow other machines with the token",
    );
    expect(check.tokenRequired).toBe(false);
  });

  it('refuses a Host that is not loopback (DNS rebinding)', () => {
    expect(check.refusal(fakeRequest('127.0.0.1', { host: 'evil.example:8080' }))?.message).toBe(
      'without an admin token the gateway answers requests addressed to its loopback only (localhost, 127.0.0.1 or [::1]), not to host "evil.example:8080"',
    );
  });

  it("refuses a web page of another origin, admits the dashboard's own", () => {
    const crossSite = check.refusal(fakeRequest('127.0.0.1', { host: '127.0.0.1:8080', origin: 'http://evil.example' }));
    expect(crossSite).toMatchObject({ code: 'NOT_AUTHORIZED', message: expect.stringMatching(/^a web page from "http:\/\/evil\.example" may not use/) });
    expect(check.refusal(fakeRequest('127.0.0.1', { host: '127.0.0.1:8080', origin: 'http://127.0.0.1:9999' }))).not.toBeNull();
    expect(check.refusal(fakeRequest('127.0.0.1', { host: '127.0.0.1:8080', origin: 'null' }))).not.toBeNull();
    expect(check.refusal(fakeRequest('127.0.0.1', { host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080' }))).toBeNull();
  });
});

describe('AdminAccess with a token: every address needs it', () => {
  it('admits the right token from any address, as a Bearer header or a WebSocket subprotocol', () => {
    const check = access(TOKEN);
    expect(check.tokenRequired).toBe(true);
    expect(check.refusal(fakeRequest('192.0.2.7', { host: 'gw.example', authorization: `Bearer ${TOKEN}` }))).toBeNull();
    expect(check.refusal(fakeRequest('192.0.2.7', { host: 'gw.example', 'sec-websocket-protocol': `${LIVE_PROTOCOL}, ${bearerProtocol(TOKEN)}` }))).toBeNull();
  });

  it('refuses a missing or wrong token, loopback included, saying how to send it', () => {
    const check = access(TOKEN);
    const missing = check.refusal(fakeRequest('127.0.0.1', { host: 'localhost' }));
    expect(missing).toMatchObject({ code: 'AUTH_FAILED', message: expect.stringContaining("'Authorization: Bearer TOKEN'") });
    expect(check.refusal(fakeRequest('127.0.0.1', { authorization: 'Basic abc' }))).toMatchObject({ code: 'AUTH_FAILED' });
    const wrong = check.refusal(fakeRequest('127.0.0.1', { authorization: `Bearer ${TOKEN}x` }));
    expect(wrong?.message).toBe('the admin token is wrong: use the value of config key admin.token (or EDGELOG_ADMIN_TOKEN) of this gateway');
    expect(check.refusal(fakeRequest('127.0.0.1', { 'sec-websocket-protocol': bearerProtocol('nope') }))).toMatchObject({ code: 'AUTH_FAILED' });
  });

  it('throttles a source that keeps guessing, and only that source', () => {
    const check = access(TOKEN);
    const guess = (address: string, token: string) => check.refusal(fakeRequest(address, { authorization: `Bearer ${token}` }));
    for (let i = 0; i < AUTH_FAILURE_BURST; i++) expect(guess('192.0.2.7', `guess-${i}`)?.message).toMatch(/^the admin token is wrong/);
    // Throttled: even the right token waits, so guessing cannot go fast.
    expect(guess('192.0.2.7', TOKEN)?.message).toBe('too many wrong admin tokens from 192.0.2.7: wait a few seconds before trying again');
    expect(guess('192.0.2.8', TOKEN)).toBeNull();
  });
});

interface Reply {
  status: number;
  body: string;
}

function get(gateway: Gateway, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: gateway.ports.http, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Opens a WebSocket and reports how it went: closed with a code and reason, or open with the
 * chosen subprotocol and (with `firstMessage`) the first message the server sent.
 */
function openSocket(
  url: string,
  opts: { protocols?: string[]; headers?: Record<string, string>; firstMessage?: boolean } = {},
): Promise<{ opened: boolean; protocol: string; code?: number; reason?: string; first?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {} });
    onTestFinished(() => ws.terminate());
    let opened = false;
    ws.once('open', () => {
      opened = true;
      // A refusal closes right after the upgrade: give the close frame a moment to arrive before calling it open.
      if (opts.firstMessage !== true) setTimeout(() => resolve({ opened, protocol: ws.protocol }), 200);
    });
    ws.once('message', (data) => {
      resolve({ opened, protocol: ws.protocol, first: data.toString() });
      ws.close();
    });
    ws.once('close', (code, reason) => resolve({ opened, protocol: ws.protocol, code, reason: reason.toString() }));
    ws.once('error', reject);
  });
}

describe('the gateway with an admin token', () => {
  it('protects /api, /metrics, /api/live, /consume and /produce; serves /healthz, /readyz and the page without it', async () => {
    const gateway = await startGateway({ 'admin.token': TOKEN });
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const path of ['/api/topics', '/api/overview', '/metrics']) {
      const refused = await get(gateway, path);
      expect(refused.status, path).toBe(401);
      expect(JSON.parse(refused.body).error.code).toBe('AUTH_FAILED');
      expect((await get(gateway, path, auth)).status, path).toBe(200);
    }
    for (const path of ['/healthz', '/readyz', '/']) expect((await get(gateway, path)).status, path).toBe(200);

    const base = `ws://127.0.0.1:${gateway.ports.http}`;
    for (const path of ['/consume', '/produce', LIVE_PATH]) {
      const refused = await openSocket(`${base}${path}`);
      expect(refused, path).toMatchObject({ code: CLOSE_AUTH_REQUIRED, reason: expect.stringContaining('admin token') });
    }
    const consumer = await openSocket(`${base}/consume`, { headers: auth });
    expect(consumer).toEqual({ opened: true, protocol: '' });
    // A browser's way: the token as a subprotocol next to the live protocol; the gateway answers the live protocol, never the token.
    const live = await openSocket(`${base}${LIVE_PATH}`, { protocols: [LIVE_PROTOCOL, bearerProtocol(TOKEN)], firstMessage: true });
    expect(live.protocol).toBe(LIVE_PROTOCOL);
    expect(JSON.parse(live.first!)).toMatchObject({ type: 'overview', overview: { gateway: { tokenRequired: true } } });
  });
});

describe('the gateway without an admin token', () => {
  it("serves loopback, and refuses another origin's page on the WebSocket endpoints with 4403", async () => {
    const gateway = await startGateway();
    const base = `ws://127.0.0.1:${gateway.ports.http}`;
    const live = await openSocket(`${base}${LIVE_PATH}`, { protocols: [LIVE_PROTOCOL], firstMessage: true });
    expect(JSON.parse(live.first!)).toMatchObject({ type: 'overview', overview: { gateway: { tokenRequired: false } } });
    for (const path of ['/consume', '/produce', LIVE_PATH]) {
      const refused = await openSocket(`${base}${path}`, { headers: { origin: 'http://evil.example' } });
      expect(refused, path).toMatchObject({ code: CLOSE_NOT_AUTHORIZED, reason: expect.stringContaining('a web page from') });
    }
    expect((await get(gateway, '/api/topics', { origin: 'http://evil.example' })).status).toBe(403);
  });
});
