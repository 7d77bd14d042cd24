/**
 * Auth across the whole gateway (issue 8, "Auth"): ONE config with everything on (device registry,
 * MQTT over TLS, HTTPS/WSS with client certificates, an admin token), attacked on every listener.
 * Per-part rules are tested where they live (test/ingest/mqtt-auth.test.ts, tls.test.ts,
 * test/server/access.test.ts, test/devices/acl.test.ts); this file checks they hold on every
 * transport at once, from more than one source address, and for TLS versions and certificates.
 * In process (no kills here); each check prints one summary line.
 */
import { createRequire } from 'node:module';
import mqttPacket, { type IPublishPacket, type ISubackPacket } from 'mqtt-packet';
import { describe, expect, it, onTestFinished } from 'vitest';
import { encodeReading } from '../../devices/payload-codec.js';
import { loadProfiles } from '../../devices/profile.js';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS } from '../../src/ingest/auth-throttle.js';
import { CLOSE_AUTH_REQUIRED, TOKEN_SUBPROTOCOL_PREFIX } from '../../src/server/access.js';
import { LIVE_PATH, LIVE_PROTOCOL } from '../../src/server/live.js';
import { WARN, type LogLine } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import {
  ADMIN_TOKEN,
  ALERT_PROTOCOL_VERSION,
  ANSWER_WAIT_MS,
  DEVICES,
  MQTT_TRANSPORTS,
  OTHER_SOURCE,
  TLS_1_0,
  TLS_1_1,
  authGateway,
  clientCert,
  clientHello,
  connectWire,
  firstAnswer,
  handshake,
  httpCall,
  sendClientHello,
  wsOutcome,
} from './auth-helpers.js';
import { RawSocket } from './hostile-helpers.js';

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const ACCEPTED = 0;
const BAD_CREDENTIALS = 4;
const NOT_AUTHORIZED = 5;
/** SUBACK failure (MQTT 3.1.1 §3.9.3). */
const SUBACK_FAILURE = 0x80;
/** A TLS listener gives a client this long to finish its handshake (TLS_HANDSHAKE_TIMEOUT_MS), plus slack for a loaded machine. */
const HANDSHAKE_BOUND_MS = 20_000;
/** Guesses a tool sends at once: three bursts' worth, so a limit that counts only finished checks lets many through. */
const GUESSES = 3 * AUTH_FAILURE_BURST;
/** A source that gets a password wrong a few times, fewer than a burst. */
const MISTAKEN_SOURCE = '127.0.0.3';
/** Every check here is quick; the bound is for a machine shared with other scenarios. */
const TEST_TIMEOUT_MS = 90_000;

const [env1, env2] = DEVICES;
const environment = loadProfiles().find((p) => p.name === 'environment-sensor')!;
const climate = (seq: number) => encodeReading(environment, 'climate', { seq, ts: 1_769_846_400_000 + seq, values: { temperature: 21.5, humidity: 45, pressure: 1013 } });
/** Operator requests (method, path, body), reads and writes: every one needs the admin token. */
const OPERATOR_REQUESTS: ReadonlyArray<readonly [string, string, string?]> = [
  ['GET', '/api/topics'],
  ['GET', '/api/topics/kept'],
  ['GET', '/api/overview'],
  ['GET', '/api/health'],
  ['GET', '/api/devices'],
  ['GET', '/api/groups'],
  ['GET', '/api/bridges'],
  ['GET', '/metrics'],
  ['POST', '/api/topics', '{"name":"sneaky","partitions":1}'],
  ['DELETE', '/api/topics/kept'],
  ['POST', '/api/groups/sneaky/reset-offsets', '{"topic":"kept","to":"earliest"}'],
];
/** Wrong tokens come from their own address, so the admin throttle they trigger does not refuse the right token in the controls. */
const WRONG_TOKEN_SOURCE = '127.0.0.3';
/** The source that guesses admin tokens until it is throttled. */
const GUESSING_ADMIN_SOURCE = '127.0.0.4';
/** How a request can lack the admin token: (what, headers, source). */
const WRONG_CREDENTIALS: ReadonlyArray<readonly [string, Record<string, string>, string]> = [
  ['without a token', {}, '127.0.0.1'],
  ['with a wrong token', { authorization: 'Bearer wrong-token-0123456789' }, WRONG_TOKEN_SOURCE],
  ['with Basic auth', { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` }, '127.0.0.1'],
];
const bearerProtocol = (token: string) => `${TOKEN_SUBPROTOCOL_PREFIX}${Buffer.from(token).toString('base64url')}`;
const summary = (line: string) => void process.stdout.write(`[auth] ${line}\n`);
const authFrame = (deviceId: string, token: string) => JSON.stringify({ type: 'auth', deviceId, token });
const frameType = (frame: string | null) => (frame === null ? null : (JSON.parse(frame) as { type: string; code?: string; message?: string }));

describe('auth across the whole gateway', () => {
  it(
    '1. refuses wrong passwords with CONNACK 4 on every transport, throttles a guessing source everywhere, and serves another source at once',
    async () => {
      const logs: LogLine[] = [];
      const gateway = await authGateway(logs);
      const ingestUrl = `wss://127.0.0.1:${gateway.ports.https!}/ingest`;
      // A device with a wrong password, on every transport (from its own address: fewer failures than a burst).
      for (const transport of MQTT_TRANSPORTS) {
        const { wire, code } = await connectWire(gateway, transport, { clientId: `wrong-${transport}`, username: env1.id, password: 'wrong' }, { source: MISTAKEN_SOURCE });
        expect(code, `${transport}: CONNACK for a wrong password`).toBe(BAD_CREDENTIALS);
        expect(await wire.closedWithin(), `${transport}: closed after the refusal`).toBe(true);
      }
      const wrongToken = await wsOutcome(ingestUrl, { frames: [authFrame(env1.id, 'wrong')], source: MISTAKEN_SOURCE });
      expect(frameType(wrongToken.first)).toMatchObject({ type: 'error', code: 'AUTH_FAILED' });
      expect(wrongToken.code).toBe(1008);

      // A guessing tool sends its guesses at once: the limit must hold for concurrent attempts, not
      // only for one after another. One more guess is allowed per interval, so a slow run may see one or two more.
      const startedMs = Date.now();
      const guesses = await Promise.all(
        Array.from({ length: GUESSES }, (_, i) => connectWire(gateway, 'tcp', { clientId: `guess-${i}`, username: env1.id, password: `guess-${i}` })),
      );
      const refills = Math.ceil((Date.now() - startedMs) / AUTH_FAILURE_INTERVAL_MS);
      const checked = guesses.filter((g) => g.code === BAD_CREDENTIALS).length;
      const unchecked = guesses.filter((g) => g.code === NOT_AUTHORIZED).length;
      expect(checked + unchecked, 'every guess answered with CONNACK 4 or 5').toBe(GUESSES);
      expect(checked, 'guesses checked (CONNACK 4)').toBeGreaterThanOrEqual(AUTH_FAILURE_BURST);
      expect(checked, 'guesses checked (CONNACK 4)').toBeLessThanOrEqual(AUTH_FAILURE_BURST + refills);

      // Now that source is refused on every listener, the right secret included; another is served at once.
      const right = { username: env1.id, password: env1.password };
      const [throttled, otherSource, throttledIngest, otherIngest] = await Promise.all([
        Promise.all(MQTT_TRANSPORTS.map((t) => connectWire(gateway, t, { clientId: `throttled-${t}`, ...right }))),
        Promise.all(MQTT_TRANSPORTS.map((t) => connectWire(gateway, t, { clientId: `other-${t}`, ...right }, { source: OTHER_SOURCE }))),
        wsOutcome(ingestUrl, { frames: [authFrame(env1.id, env1.token)] }),
        wsOutcome(ingestUrl, { frames: [authFrame(env1.id, env1.token)], source: OTHER_SOURCE }),
      ]);
      expect(throttled.map((c) => c.code)).toEqual(MQTT_TRANSPORTS.map(() => NOT_AUTHORIZED));
      for (const { wire } of throttled) expect(await wire.closedWithin()).toBe(true);
      expect(frameType(throttledIngest.first)).toMatchObject({ type: 'error', code: 'AUTH_FAILED', message: expect.stringMatching(/^too many failed logins from 127\.0\.0\.1/) });
      expect(throttledIngest.code).toBe(1008);
      expect(otherSource.map((c) => c.code)).toEqual(MQTT_TRANSPORTS.map(() => ACCEPTED));
      expect(frameType(otherIngest.first)).toMatchObject({ type: 'auth-ok', deviceId: env1.id });
      const throttleLines = logs.filter((l) => l.msg === 'too many failed logins: refusing this source without checking for a while');
      expect(throttleLines.map((l) => l['address'])).toEqual(['127.0.0.1']);
      summary(
        `wrong password: CONNACK 4 and close on ${MQTT_TRANSPORTS.join(', ')}, AUTH_FAILED on /ingest; ${GUESSES} concurrent guesses: ${checked} checked, ` +
          `${unchecked} refused unchecked (CONNACK 5); then 127.0.0.1 is refused on every listener while ${OTHER_SOURCE} connects at once`,
      );
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '2. keeps every device inside its ACL on every transport: publish as another device closes unacked, foreign subscriptions get 0x80, a foreign will is dropped',
    async () => {
      const logs: LogLine[] = [];
      const gateway = await authGateway(logs);
      let seq = 0;
      // Over TLS the device is named by its client certificate; elsewhere by its password.
      const identify = (t: (typeof MQTT_TRANSPORTS)[number]) => (t === 'tls' ? { cert: clientCert(env1.id) } : {});
      const credentials = (t: string) => (t === 'tls' ? { clientId: `acl-${t}` } : { clientId: `acl-${t}`, username: env1.id, password: env1.password });
      for (const transport of MQTT_TRANSPORTS) {
        const { wire, code } = await connectWire(gateway, transport, credentials(transport), identify(transport));
        expect(code, transport).toBe(ACCEPTED);
        seq += 1;
        wire.send({ cmd: 'publish', topic: `devices/${env1.id}/climate`, payload: climate(seq), qos: 1, messageId: 1, retain: false, dup: false });
        expect(await wire.next('puback'), `${transport}: its own reading is acked`).not.toBeNull();
        wire.send({
          cmd: 'subscribe',
          messageId: 2,
          subscriptions: [`devices/${env1.id}/commands/#`, `devices/${env2.id}/commands/#`, 'devices/+/commands/#', '#', '$SYS/#'].map((topic) => ({ topic, qos: 1 as const })),
        });
        const suback = (await wire.next('suback')) as ISubackPacket | null;
        expect(suback?.granted, `${transport}: SUBACK`).toEqual([1, SUBACK_FAILURE, SUBACK_FAILURE, SUBACK_FAILURE, SUBACK_FAILURE]);
        wire.send({ cmd: 'publish', topic: `devices/${env2.id}/climate`, payload: climate(1000 + seq), qos: 1, messageId: 3, retain: false, dup: false });
        expect(await wire.closedWithin(), `${transport}: publishing as ${env2.id} closes the connection`).toBe(true);
        expect(await wire.next('puback', 0), `${transport}: no PUBACK for it`).toBeNull();
      }
      // A will is a publish the broker makes for the device when it drops: the same ACL applies.
      const willOwn = await connectWire(gateway, 'tcp', { clientId: 'will-own', username: env1.id, password: env1.password, will: { topic: `devices/${env1.id}/climate`, payload: climate(++seq), qos: 1 } });
      const willForeign = await connectWire(gateway, 'tcp', {
        clientId: 'will-foreign',
        username: env1.id,
        password: env1.password,
        will: { topic: `devices/${env2.id}/climate`, payload: climate(2000), qos: 1 },
      });
      // env-0002 listens to its own commands: a will addressed there must not reach it.
      const listener = await connectWire(gateway, 'tcp', { clientId: 'listener', username: env2.id, password: env2.password });
      listener.wire.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `devices/${env2.id}/commands/#`, qos: 1 }] });
      expect(((await listener.wire.next('suback')) as ISubackPacket | null)?.granted).toEqual([1]);
      const willCommand = await connectWire(gateway, 'tcp', { clientId: 'will-command', username: env1.id, password: env1.password, will: { topic: `devices/${env2.id}/commands/reboot`, payload: 'now', qos: 1 } });
      expect([willOwn.code, willForeign.code, willCommand.code]).toEqual([ACCEPTED, ACCEPTED, ACCEPTED]);
      for (const { wire } of [willOwn, willForeign, willCommand]) wire.cut();
      const stored = () => gateway.log.read('climate', 0, 0, { maxRecords: 1000 }).records;
      await waitFor(() => stored().length === MQTT_TRANSPORTS.length + 1, 'the own will stored after the readings');
      const refusedWills = () => logs.filter((l) => l.level === WARN && l.msg === 'publish refused' && ['will-foreign', 'will-command'].includes(l['clientId'] as string));
      await waitFor(() => refusedWills().length === 2, 'both foreign wills refused');
      expect(refusedWills().map((l) => l['code'])).toEqual(expect.arrayContaining(['NOT_AUTHORIZED', 'UNMAPPED_TOPIC']));
      // Nothing stored under env-0002, and nothing reached its commands: the listener got no PUBLISH.
      expect(stored().every((r) => r.key === env1.id)).toBe(true);
      expect(stored().map((r) => r.value)).toEqual(Array.from({ length: seq }, (_, i) => climate(i + 1)));
      expect((await listener.wire.next('publish', 0)) as IPublishPacket | null).toBeNull();
      summary(`ACL on ${MQTT_TRANSPORTS.join(', ')}: foreign publish closed without PUBACK, 4 foreign filters SUBACK 0x80; foreign wills refused; ${seq} own readings stored, nothing else`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '3. refuses every operator endpoint without the admin token or with a wrong one, on HTTP and HTTPS; /healthz and /readyz stay open',
    async () => {
      const gateway = await authGateway();
      const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
      const listeners = [
        { name: 'http', port: gateway.ports.http, secure: false },
        { name: 'https', port: gateway.ports.https!, secure: true },
      ];
      // A topic the refused requests below would delete or reset the group offsets of.
      const created = await httpCall(gateway.ports.http, false, 'POST', '/api/topics', { headers: { ...auth, 'content-type': 'application/json' }, body: '{"name":"kept","partitions":1}' });
      expect(created.status, created.body).toBe(201);
      let refused = 0;
      for (const { name, port, secure } of listeners) {
        for (const [method, path, body] of OPERATOR_REQUESTS) {
          for (const [kind, headers, source] of WRONG_CREDENTIALS) {
            const reply = await httpCall(port, secure, method, path, { headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body }), source });
            expect(reply.status, `${name} ${method} ${path} ${kind}`).toBe(401);
            expect(JSON.parse(reply.body), `${name} ${method} ${path} ${kind}`).toMatchObject({ error: { code: 'AUTH_FAILED' } });
            refused += 1;
          }
          // The right token gets through: the refusals above are the token's doing.
          if (method === 'GET') expect((await httpCall(port, secure, method, path, { headers: auth })).status, `${name} ${path} with the token`).toBe(200);
        }
        for (const path of ['/healthz', '/readyz']) expect((await httpCall(port, secure, 'GET', path)).status, `${name} ${path}`).toBe(200);

        const base = `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}`;
        for (const path of ['/consume', '/produce', LIVE_PATH]) {
          for (const [kind, headers, source] of WRONG_CREDENTIALS) {
            const outcome = await wsOutcome(`${base}${path}`, { headers, source });
            expect(outcome, `${name} ${path} ${kind}`).toMatchObject({ code: CLOSE_AUTH_REQUIRED, reason: expect.stringContaining('admin token') });
            refused += 1;
          }
          const asSubprotocol = await wsOutcome(`${base}${path}`, { protocols: [LIVE_PROTOCOL, bearerProtocol('wrong-token-0123456789')], source: WRONG_TOKEN_SOURCE });
          expect(asSubprotocol, `${name} ${path} wrong token as a subprotocol`).toMatchObject({ code: CLOSE_AUTH_REQUIRED });
          refused += 1;
        }
        const consumer = await wsOutcome(`${base}/consume`, { headers: auth });
        expect(consumer, `${name} /consume with the token`).toMatchObject({ opened: true, code: null });
        const live = await wsOutcome(`${base}${LIVE_PATH}`, { protocols: [LIVE_PROTOCOL, bearerProtocol(ADMIN_TOKEN)] });
        expect(frameType(live.first), `${name} ${LIVE_PATH} with the token`).toMatchObject({ type: 'overview' });

        // Device endpoints: a wrong device token on /ingest, no credentials on /mqtt.
        const ingest = await wsOutcome(`${base}/ingest`, { frames: [authFrame(env1.id, 'wrong')], source: WRONG_TOKEN_SOURCE });
        expect(frameType(ingest.first), `${name} /ingest wrong token`).toMatchObject({ type: 'error', code: 'AUTH_FAILED' });
        expect(ingest.code).toBe(1008);
        const ingestOk = await wsOutcome(`${base}/ingest`, { frames: [authFrame(env1.id, env1.token)] });
        expect(frameType(ingestOk.first), `${name} /ingest right token`).toMatchObject({ type: 'auth-ok' });
        const anonymous = await connectWire(gateway, secure ? 'wss' : 'ws', { clientId: 'anonymous' });
        expect(anonymous.code, `${name} /mqtt without credentials`).toBe(NOT_AUTHORIZED);
      }
      // Nothing the refused requests asked for happened.
      expect(gateway.log.listTopics()).toEqual(['kept']);
      expect(gateway.groups.list()).toEqual([]);

      // Wrong admin tokens are throttled per source, across HTTP and HTTPS: the right one waits too, elsewhere it works.
      for (let i = 0; i < AUTH_FAILURE_BURST; i++) {
        const { port, secure } = listeners[i % 2]!;
        expect((await httpCall(port, secure, 'GET', '/api/topics', { headers: { authorization: `Bearer guess-${i}-0123456789` }, source: GUESSING_ADMIN_SOURCE })).status).toBe(401);
      }
      const waiting = await httpCall(gateway.ports.https!, true, 'GET', '/api/topics', { headers: auth, source: GUESSING_ADMIN_SOURCE });
      expect(JSON.parse(waiting.body).error.message).toMatch(/^too many wrong admin tokens from 127\.0\.0\.4/);
      expect((await httpCall(gateway.ports.http, false, 'GET', '/api/topics', { headers: auth, source: OTHER_SOURCE })).status).toBe(200);
      summary(`operator endpoints: ${refused} requests without or with a wrong token refused (401 / close 4401) on http and https; /healthz, /readyz open; admin guesses throttled per source`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '4. TLS listeners do not speak plaintext, and close a handshake that never finishes',
    async () => {
      const gateway = await authGateway();
      const mqttTls = await RawSocket.open(gateway.ports.mqttTls!);
      mqttTls.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 30, clean: true, clientId: 'plain', username: env1.id, password: Buffer.from(env1.password) }));
      const https = await RawSocket.open(gateway.ports.https!);
      https.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const upgrade = await RawSocket.open(gateway.ports.https!);
      upgrade.write(`GET /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      for (const [name, raw] of [['mqtt tls', mqttTls], ['https', https], ['https upgrade', upgrade]] as const) {
        expect(await raw.closedWithin(ANSWER_WAIT_MS), `${name}: closed`).toBe(true);
        expect(raw.received.charCodeAt(0), `${name}: no CONNACK`).not.toBe(0x20);
        expect(raw.received, `${name}: no HTTP answer`).not.toContain('HTTP/');
      }
      // Half a ClientHello, then silence (slowloris on the TLS listeners): closed within the handshake bound, as plaintext listeners close a silent client.
      const half = clientHello(0x0303).subarray(0, 20);
      const stalled = await Promise.all([gateway.ports.mqttTls!, gateway.ports.https!].map((port) => RawSocket.open(port)));
      for (const raw of stalled) raw.write(half);
      const stalledClosed = await Promise.all(stalled.map((raw) => raw.closedWithin(HANDSHAKE_BOUND_MS)));
      expect(stalledClosed, 'half-finished handshakes closed (mqtt tls, https)').toEqual([true, true]);
      summary('plaintext MQTT CONNECT, HTTP GET and WebSocket upgrade on the TLS ports: closed without an answer; half a ClientHello: closed within the handshake bound');
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '5. TLS listeners refuse TLS 1.0 and 1.1 with protocol_version, even where Node\'s default minimum is lowered, and serve TLS 1.2 and 1.3',
    async () => {
      const normal = await authGateway();
      // NODE_OPTIONS=--tls-min-v1.0 (set for some legacy client on the machine) lowers this default for
      // every TLS server that does not set its own minimum: the gateway must set its own.
      const nodeTls = createRequire(import.meta.url)('node:tls') as { DEFAULT_MIN_VERSION: string };
      const defaultMin = nodeTls.DEFAULT_MIN_VERSION;
      nodeTls.DEFAULT_MIN_VERSION = 'TLSv1';
      onTestFinished(() => void (nodeTls.DEFAULT_MIN_VERSION = defaultMin));
      const lowered = await authGateway();
      nodeTls.DEFAULT_MIN_VERSION = defaultMin;
      const answers: string[] = [];
      for (const [name, gateway] of [['default', normal], ['lowered default', lowered]] as const) {
        for (const [listener, port] of [['mqtt tls', gateway.ports.mqttTls!], ['https', gateway.ports.https!]] as const) {
          for (const [label, version] of [['TLS 1.0', TLS_1_0], ['TLS 1.1', TLS_1_1]] as const) {
            const answer = await sendClientHello(port, version);
            expect(answer, `${name}, ${listener}, ${label}`).toEqual({ fatalAlert: ALERT_PROTOCOL_VERSION, serverHelloVersion: null, closed: true });
          }
          for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
            const socket = await handshake(port, version);
            expect(socket.getProtocol(), `${name}, ${listener}`).toBe(version);
            const request =
              listener === 'https'
                ? 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
                : mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 30, clean: true, clientId: `v-${version}`, username: env1.id, password: Buffer.from(env1.password) });
            const first = await firstAnswer(socket, request);
            if (listener === 'https') expect(first.toString('latin1'), `${name}, ${listener}, ${version}`).toMatch(/^HTTP\/1\.1 200/);
            else expect([...first], `${name}, ${listener}, ${version}: CONNACK 0`).toEqual([0x20, 2, 0, ACCEPTED]);
          }
          answers.push(`${name} ${listener}`);
        }
      }
      summary(`TLS 1.0 and 1.1 ClientHello: fatal alert protocol_version (70) and close on ${answers.join(', ')}; TLS 1.2 and 1.3 served`);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    '6. a client certificate from another CA, or an expired one, does not authenticate a device, and the log says why',
    async () => {
      const logs: LogLine[] = [];
      const gateway = await authGateway(logs);
      const cases = [
        ['rogue-env-0001', NOT_AUTHORIZED, /^client certificate not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/],
        ['expired-env-0001', NOT_AUTHORIZED, /^client certificate not accepted \(CERT_HAS_EXPIRED\)/],
        [env1.id, ACCEPTED, null],
      ] as const;
      for (const transport of ['tls', 'wss'] as const) {
        for (const [name, expected, reason] of cases) {
          const clientId = `${transport}-${name}`;
          const { wire, code } = await connectWire(gateway, transport, { clientId }, { cert: clientCert(name) });
          expect(code, `${transport}, certificate ${name}`).toBe(expected);
          if (reason === null) continue;
          expect(await wire.closedWithin(), `${transport}, certificate ${name}: closed`).toBe(true);
          const line = logs.find((l) => l.msg === 'connection refused' && l['clientId'] === clientId);
          expect(line?.['reason'], `${transport}, certificate ${name}: logged reason`).toMatch(reason);
        }
      }
      summary('client certificates over mqtt tls and wss: another CA and expired refused with CONNACK 5 naming the verification error; the valid one accepted');
    },
    TEST_TIMEOUT_MS,
  );
});
