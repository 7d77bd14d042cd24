/**
 * Parts of the auth scenario (test/faults/auth.test.ts): one gateway with every listener and every
 * credential on, raw MQTT over each transport from a chosen loopback source address, the operator
 * endpoints over HTTP and HTTPS, and TLS handshakes built by hand (a TLS 1.0 or 1.1 ClientHello
 * that Node's own client would refuse to send).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { onTestFinished } from 'vitest';
import WebSocket, { createWebSocketStream } from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { startGateway, writeRegistry, type LogLine } from '../helpers/gateway.js';

/** A second loopback source: all of 127/8 is loopback on Linux, and the gateway counts failures per address. */
export const OTHER_SOURCE = '127.0.0.2';
export const ADMIN_TOKEN = 'auth-scenario-admin-token-0123456789';
/** How long a refusal may take to arrive: generous, the machine is shared with other scenarios. */
export const ANSWER_WAIT_MS = 10_000;

export const DEVICES = [
  { id: 'env-0001', profile: 'environment-sensor', password: 'pw-env-0001-secret', token: 'tk-env-0001-secret' },
  { id: 'env-0002', profile: 'environment-sensor', password: 'pw-env-0002-secret', token: 'tk-env-0002-secret' },
] as const;

export const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
const ca = readFileSync(fixture('ca.pem'));

/** A client certificate and key from the fixtures (`client-NAME.pem`). */
export function clientCert(name: string): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(fixture(`client-${name}.pem`)), key: readFileSync(fixture(`client-${name}.key`)) };
}

/** The whole gateway with everything on: a device registry, MQTT over TLS, HTTPS/WSS with client certificates, an admin token. */
export async function authGateway(logs?: LogLine[]): Promise<Gateway> {
  const registryFile = await writeRegistry(DEVICES.map((d) => ({ ...d })));
  return startGateway(
    {
      'devices.registryFile': registryFile,
      'tls.certFile': fixture('server.pem'),
      'tls.keyFile': fixture('server.key'),
      'tls.caFile': fixture('ca.pem'),
      'tls.mqttPort': '0',
      'tls.httpsPort': '0',
      'admin.token': ADMIN_TOKEN,
    },
    logs ? { logs } : {},
  );
}

/** Every way MQTT reaches the gateway: TCP, TLS, WebSocket at /mqtt on the HTTP port, WSS on the HTTPS port. */
export const MQTT_TRANSPORTS = ['tcp', 'tls', 'ws', 'wss'] as const;
export type MqttTransport = (typeof MQTT_TRANSPORTS)[number];

export interface WireOptions {
  /** The loopback address to connect from (default 127.0.0.1). */
  source?: string;
  /** A client certificate (TLS transports). */
  cert?: { cert: Buffer; key: Buffer };
}

/** Opens a duplex to the gateway's MQTT listener over `transport`, resolving once it can carry MQTT. */
async function openTransport(gateway: Gateway, transport: MqttTransport, opts: WireOptions): Promise<{ stream: Duplex; closed: Promise<void> }> {
  const localAddress = opts.source ?? '127.0.0.1';
  // The server certificate names 127.0.0.1 as well as localhost, so no SNI is needed to verify it.
  const tlsOptions = { ca, ...(opts.cert ?? {}) };
  if (transport === 'tcp' || transport === 'tls') {
    const socket: Socket =
      transport === 'tcp'
        ? netConnect({ host: '127.0.0.1', port: gateway.ports.mqtt, localAddress })
        : tlsConnect({ socket: netConnect({ host: '127.0.0.1', port: gateway.ports.mqttTls!, localAddress }), ...tlsOptions });
    onTestFinished(() => void socket.destroy());
    const closed = once(socket, 'close').then(() => undefined);
    await once(socket, transport === 'tcp' ? 'connect' : 'secureConnect');
    return { stream: socket, closed };
  }
  const url = transport === 'ws' ? `ws://127.0.0.1:${gateway.ports.http}/mqtt` : `wss://127.0.0.1:${gateway.ports.https!}/mqtt`;
  const ws = new WebSocket(url, ['mqtt'], { localAddress, ...(transport === 'wss' ? tlsOptions : {}) });
  onTestFinished(() => ws.terminate());
  const closed = once(ws, 'close').then(() => undefined);
  await once(ws, 'open');
  const stream = createWebSocketStream(ws);
  stream.on('error', () => {}); // the close says what happened
  return { stream, closed };
}

/** A hand-driven MQTT 3.1.1 connection over any transport, to read exactly what the gateway answers. */
export class MqttWire {
  private readonly received: Packet[] = [];
  private readonly waiters: { cmd: string; resolve: (p: Packet) => void }[] = [];
  private closedFlag = false;

  private constructor(
    private readonly stream: Duplex,
    readonly closed: Promise<void>,
  ) {
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (packet: Packet) => {
      const i = this.waiters.findIndex((w) => w.cmd === packet.cmd);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(packet);
      else this.received.push(packet);
    });
    stream.on('data', (data: Buffer) => parser.parse(data));
    stream.on('error', () => {});
    void closed.then(() => (this.closedFlag = true));
  }

  static async open(gateway: Gateway, transport: MqttTransport, opts: WireOptions = {}): Promise<MqttWire> {
    const { stream, closed } = await openTransport(gateway, transport, opts);
    return new MqttWire(stream, closed);
  }

  send(packet: Packet): void {
    this.stream.write(mqttPacket.generate(packet));
  }

  /** The next packet of this type, or null if none arrives within `timeoutMs`. */
  next(cmd: Packet['cmd'], timeoutMs = ANSWER_WAIT_MS): Promise<Packet | null> {
    const i = this.received.findIndex((p) => p.cmd === cmd);
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0]!);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      this.waiters.push({ cmd, resolve: (p) => (clearTimeout(timer), resolve(p)) });
    });
  }

  /** Whether the gateway has closed the connection within `timeoutMs`. */
  async closedWithin(timeoutMs = ANSWER_WAIT_MS): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.closed, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    return this.closedFlag;
  }

  /** Cuts the connection without DISCONNECT (an unclean close: the will is published). */
  cut(): void {
    this.stream.destroy();
  }
}

export interface Credentials {
  clientId: string;
  username?: string;
  password?: string;
  will?: { topic: string; payload: Buffer | string; qos: 0 | 1 };
}

/** Sends CONNECT and returns the connection with the CONNACK return code (null: no CONNACK in time). */
export async function connectWire(gateway: Gateway, transport: MqttTransport, credentials: Credentials, opts: WireOptions = {}): Promise<{ wire: MqttWire; code: number | null }> {
  const wire = await MqttWire.open(gateway, transport, opts);
  wire.send({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    keepalive: 30,
    clean: true,
    clientId: credentials.clientId,
    ...(credentials.username === undefined ? {} : { username: credentials.username }),
    ...(credentials.password === undefined ? {} : { password: Buffer.from(credentials.password) }),
    ...(credentials.will === undefined ? {} : { will: { ...credentials.will, payload: Buffer.from(credentials.will.payload), retain: false } }),
  });
  const connack = await wire.next('connack');
  return { wire, code: connack === null ? null : ((connack as { returnCode?: number }).returnCode ?? null) };
}

/** What a WebSocket client saw: whether it opened, the first text frame, and how it closed. */
export interface SocketOutcome {
  opened: boolean;
  first: string | null;
  code: number | null;
  reason: string;
}

/**
 * Opens a WebSocket (wss with the test CA), sends `frames` once open, and reports the first text
 * frame and the close. Resolves when the gateway closes it, or `openWaitMs` after the first frame
 * or open with nothing else happening (a connection the gateway accepted and keeps open).
 */
export function wsOutcome(url: string, opts: { protocols?: string[]; headers?: Record<string, string>; source?: string; frames?: string[]; openWaitMs?: number } = {}): Promise<SocketOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {}, localAddress: opts.source ?? '127.0.0.1', ca });
    onTestFinished(() => ws.terminate());
    const outcome: SocketOutcome = { opened: false, first: null, code: null, reason: '' };
    let settle: NodeJS.Timeout | undefined;
    const keptOpen = () => {
      clearTimeout(settle);
      settle = setTimeout(() => resolve(outcome), opts.openWaitMs ?? 1_000);
    };
    ws.once('open', () => {
      outcome.opened = true;
      for (const frame of opts.frames ?? []) ws.send(frame);
      keptOpen();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary || outcome.first !== null) return;
      outcome.first = data.toString();
      keptOpen();
    });
    ws.once('close', (code, reason) => {
      clearTimeout(settle);
      resolve({ ...outcome, code, reason: reason.toString() });
    });
    ws.once('error', (error) => (outcome.opened ? undefined : reject(error)));
  });
}

export interface HttpReply {
  status: number;
  body: string;
}

/** One HTTP or HTTPS request from a chosen loopback source. */
export function httpCall(port: number, secure: boolean, method: string, path: string, opts: { headers?: Record<string, string>; body?: string; source?: string } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path, headers: opts.headers ?? {}, localAddress: opts.source ?? '127.0.0.1', agent: false as const };
    const onReply = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = secure ? httpsRequest({ ...options, ca }, onReply) : httpRequest(options, onReply);
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** TLS protocol versions on the wire (RFC 5246 §A.1, RFC 2246, RFC 4346). */
export const TLS_1_0 = 0x0301;
export const TLS_1_1 = 0x0302;
/** Alert descriptions (RFC 5246 §7.2): what a server sends a client whose version it refuses. */
export const ALERT_PROTOCOL_VERSION = 70;
export const ALERT_HANDSHAKE_FAILURE = 40;
const ALERT_FATAL = 2;
const RECORD_HANDSHAKE = 0x16;
const RECORD_ALERT = 0x15;
const HANDSHAKE_CLIENT_HELLO = 1;
const HANDSHAKE_SERVER_HELLO = 2;
/** Suites a TLS 1.0/1.1 client offers: TLS_RSA_WITH_AES_128_CBC_SHA, ..._AES_256_CBC_SHA, ECDHE_RSA with both, 3DES. */
const OLD_CIPHER_SUITES = [0x002f, 0x0035, 0xc013, 0xc014, 0x000a];

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/**
 * A ClientHello of `version` as a TLS 1.0 or 1.1 client sends it (record and client_version both
 * `version`, old CBC suites, SNI localhost). Built by hand: Node's OpenSSL client may refuse to
 * offer these versions at all, which would make a refusal test pass for the wrong reason.
 */
export function clientHello(version: number): Buffer {
  const name = Buffer.from('localhost');
  const sni = Buffer.concat([u16(0x0000), u16(name.length + 5), u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
  const body = Buffer.concat([
    u16(version),
    randomBytes(32), // random
    Buffer.from([0]), // no session id
    u16(OLD_CIPHER_SUITES.length * 2),
    ...OLD_CIPHER_SUITES.map(u16),
    Buffer.from([1, 0]), // compression: null only
    u16(sni.length),
    sni,
  ]);
  const handshake = Buffer.concat([Buffer.from([HANDSHAKE_CLIENT_HELLO, 0, body.length >> 8, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([RECORD_HANDSHAKE]), u16(version), u16(handshake.length), handshake]);
}

export interface HelloAnswer {
  /** A fatal alert's description, if the server answered with one. */
  fatalAlert: number | null;
  /** The version of a ServerHello, if the server went on with the handshake. */
  serverHelloVersion: number | null;
  /** Whether the server closed the connection within the wait. */
  closed: boolean;
}

/** Sends a hand-built ClientHello of `version` to 127.0.0.1:port and reads the first record of the answer. */
export async function sendClientHello(port: number, version: number, waitMs = ANSWER_WAIT_MS): Promise<HelloAnswer> {
  const socket = netConnect({ host: '127.0.0.1', port });
  onTestFinished(() => void socket.destroy());
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  let closed = false;
  const closedP = once(socket, 'close').then(() => (closed = true));
  await once(socket, 'connect');
  socket.write(clientHello(version));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([closedP, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
  const answer = Buffer.concat(chunks);
  const type = answer[0];
  if (type === RECORD_ALERT && answer.length >= 7 && answer[5] === ALERT_FATAL) return { fatalAlert: answer[6]!, serverHelloVersion: null, closed };
  if (type === RECORD_HANDSHAKE && answer.length >= 11 && answer[5] === HANDSHAKE_SERVER_HELLO) return { fatalAlert: null, serverHelloVersion: answer.readUInt16BE(9), closed };
  return { fatalAlert: null, serverHelloVersion: null, closed };
}

/** A TLS handshake pinned to one version with Node's client; resolves with the socket (its protocol). */
export async function handshake(port: number, version: 'TLSv1.2' | 'TLSv1.3', opts: WireOptions = {}): Promise<TLSSocket> {
  const tcp = netConnect({ host: '127.0.0.1', port, localAddress: opts.source ?? '127.0.0.1' });
  const socket = tlsConnect({ socket: tcp, ca, minVersion: version, maxVersion: version, ...(opts.cert ?? {}) });
  onTestFinished(() => void socket.destroy());
  await once(socket, 'secureConnect');
  return socket;
}

/** Writes `bytes` on an open socket and resolves with what arrives first (empty if it closes or `timeoutMs` passes first). */
export function firstAnswer(socket: Duplex, bytes: Buffer | string, timeoutMs = ANSWER_WAIT_MS): Promise<Buffer> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(Buffer.alloc(0)), timeoutMs);
    socket.once('data', (chunk: Buffer) => (clearTimeout(timer), resolve(chunk)));
    socket.once('close', () => (clearTimeout(timer), resolve(Buffer.alloc(0))));
    socket.write(bytes);
  });
}
