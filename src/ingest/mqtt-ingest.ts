import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { Logger } from 'pino';
import { subscriptionAllowed } from '../../devices/acl.js';
import { EdgelogError } from '../errors.js';
import type { DeviceDirectory, Intake, IntakeSession } from './intake.js';
import { AUTH_FAILURE_BURST, AUTH_FAILURE_INTERVAL_MS, type AuthThrottle } from './auth-throttle.js';
import { guardPacketSize } from './packet-size-guard.js';

/** What MQTT authentication needs of the device registry (devices/registry.ts). */
export interface DeviceVerifier extends DeviceDirectory {
  verifyPassword(id: string, secret: string | Buffer): Promise<boolean>;
}

export interface MqttIngestOptions {
  intake: Intake;
  devices: DeviceVerifier;
  /** Accept clients without credentials (no registry configured, or allowAnonymous). */
  allowAnonymous: boolean;
  /** Largest MQTT packet accepted; a larger one closes the connection before it is buffered. */
  maxPacketBytes: number;
  /** Failed logins per source address, shared with WebSocket ingest. */
  authThrottle: AuthThrottle;
  logger: Logger;
}

/** CONNACK return codes of MQTT 3.1.1 §3.2.2.3. */
const CONNACK_IDENTIFIER_REJECTED = 2;
const CONNACK_BAD_CREDENTIALS = 4;
const CONNACK_NOT_AUTHORIZED = 5;

/**
 * How long a connection has to complete its CONNECT before it is closed. A device sends CONNECT
 * right after its TCP (or TLS, or WebSocket) handshake, so this is slack for a slow link only;
 * aedes's implicit 30 s default let a slowloris source (half a CONNECT, then a byte now and then)
 * hold a socket and a parser buffer three times as long. The same bound as WebSocket ingest's
 * AUTH_TIMEOUT_MS.
 */
export const MQTT_CONNECT_TIMEOUT_MS = 10_000;

/** Who a connected client is: a registered device, or null for an anonymous client. */
type Identity = string | null;

/**
 * MQTT 3.1.1 ingest through an embedded aedes broker, for every transport (TCP, TLS, WebSocket:
 * the listeners hand their connections to {@link handle}). The append happens in
 * `authorizePublish`: aedes writes a QoS 1 PUBACK (and a QoS 2 PUBREC) only after that hook calls
 * back (its `published` hook runs after the PUBACK, see aedes lib/handlers/publish.js), so an
 * ack means the reading is durable. aedes reads a client's socket again only after every packet
 * of the last read has been handled, so a slow log slows the socket reads: TCP backpressure.
 */
export class MqttIngest {
  private readonly identities = new WeakMap<Client, Identity>();
  private readonly sessions = new WeakMap<Client, IntakeSession>();
  /** CONNECTs with an empty client id and clean session 0, refused in authenticate (MQTT-3.1.3-8). */
  private readonly emptyIdPersistent = new WeakSet<Client>();
  /** What aedes cannot see through the packet-size guard: the TLS socket (client certificates) and the peer's address. */
  private readonly connections = new WeakMap<Duplex, { tls: TLSSocket | undefined; remote: string; address: string }>();
  private closing: Promise<void> | null = null;
  private readonly logger: Logger;
  private broker!: Aedes;

  private constructor(private readonly opts: MqttIngestOptions) {
    this.logger = opts.logger.child({ component: 'mqtt' });
  }

  /** MQTT clients connected now (over TCP, TLS and WebSocket). */
  get connectedClients(): number {
    return this.broker.connectedClients;
  }

  static async create(opts: MqttIngestOptions): Promise<MqttIngest> {
    const ingest = new MqttIngest(opts);
    ingest.broker = await Aedes.createBroker({
      connectTimeout: MQTT_CONNECT_TIMEOUT_MS,
      preConnect: (client, packet, done) => {
        // MQTT-1.5.3-1: ill-formed UTF-8 in a packet closes the connection. mqtt-packet decodes
        // strings leniently, so bad bytes in a client id or username arrive as U+FFFD, which no
        // device id or username has: refuse those, or the garbled id reaches sessions and logs.
        if (packet.clientId.includes('\uFFFD') || packet.username?.includes('\uFFFD') === true) {
          ingest.opts.intake.countRefusal('INVALID_ARGUMENT');
          ingest.logger.warn({ remote: ingest.remoteOf(client), reason: 'ill-formed UTF-8 in the client id or username (MQTT-1.5.3-1)' }, 'connection refused');
          done(new EdgelogError('INVALID_ARGUMENT', 'ill-formed UTF-8 in the client id or username (MQTT-1.5.3-1)'), false);
          return;
        }
        if (packet.clientId === '' && !packet.clean) ingest.emptyIdPersistent.add(client);
        done(null, true);
      },
      authenticate: (client, username, password, done) => {
        ingest.authenticate(client, username, password).then(
          (identity) => {
            ingest.identities.set(client, identity);
            done(null, true);
          },
          (error: AuthenticateError) => done(error, false),
        );
      },
      authorizePublish: (client, packet, done) => {
        ingest.publish(client, packet).then(() => done(null), (error: unknown) => done(error as Error));
      },
      authorizeSubscribe: (client, sub, done) => done(null, ingest.subscribe(client, sub)),
    });
    ingest.broker.on('clientDisconnect', (client) => {
      ingest.sessions.get(client)?.close();
      ingest.sessions.delete(client);
    });
    return ingest;
  }

  /** Serves one client connection (a TCP or TLS socket, or a WebSocket stream with its upgrade request). */
  handle(conn: Duplex, req?: IncomingMessage): void {
    const socket = req?.socket ?? (conn as Duplex & { remoteAddress?: string; remotePort?: number });
    const address = socket.remoteAddress ?? '?';
    const remote = `${address}:${socket.remotePort ?? '?'}`;
    const tls = conn instanceof TLSSocket ? conn : req?.socket instanceof TLSSocket ? req.socket : undefined;
    const guarded = guardPacketSize(conn, this.opts.maxPacketBytes, (reason) => {
      this.opts.intake.countRefusal('RECORD_TOO_LARGE');
      this.logger.warn({ remote, reason }, 'connection closed: MQTT packet too large');
    });
    this.connections.set(guarded, { tls, remote, address });
    // aedes types `req` as its own IncomingMessage subset; Node's satisfies it.
    this.broker.handle(guarded, req as never);
  }

  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<Identity> {
    const remote = this.remoteOf(client);
    const address = this.connections.get(client.conn as Duplex)?.address ?? '?';
    const refuse = (returnCode: number, reason: string, quiet = false): never => {
      this.opts.intake.countRefusal('AUTH_FAILED');
      if (!quiet) this.logger.warn({ clientId: client.id, remote, reason }, 'connection refused');
      const error = new Error(reason) as AuthenticateError;
      error.returnCode = returnCode;
      throw error;
    };
    if (this.emptyIdPersistent.has(client)) {
      return refuse(CONNACK_IDENTIFIER_REJECTED, 'an empty client id needs clean session 1 (MQTT-3.1.3-8)');
    }
    const attempt = await this.opts.authThrottle.begin(address);
    if (attempt === null) {
      // Logged once, when the source became throttled: a guessing loop must not flood the log.
      return refuse(CONNACK_NOT_AUTHORIZED, `too many failed logins from ${address}: one more is allowed every ${AUTH_FAILURE_INTERVAL_MS / 1000} s`, true);
    }
    const failed = (returnCode: number, reason: string): never => {
      if (attempt.failed()) {
        this.logger.warn({ address, failures: AUTH_FAILURE_BURST }, 'too many failed logins: refusing this source without checking for a while');
      }
      return refuse(returnCode, reason);
    };
    const accepted = (identity: Identity): Identity => {
      attempt.succeeded();
      return identity;
    };
    const tls = this.connections.get(client.conn as Duplex)?.tls;
    const certificate = tls?.authorized ? tls.getPeerCertificate() : undefined;
    const cn = certificate?.subject?.CN;
    if (typeof cn === 'string' && cn !== '') {
      if (!this.opts.devices.get(cn)) return failed(CONNACK_NOT_AUTHORIZED, `client certificate CN '${cn}' is not a registered device`);
      if (username !== undefined && username !== cn) return failed(CONNACK_BAD_CREDENTIALS, `username '${username}' differs from the client certificate's CN '${cn}'`);
      return accepted(cn);
    }
    const registered = username !== undefined && this.opts.devices.get(username) !== undefined;
    // With credentials required, an unknown username gets the same scrypt check as a known one
    // (the registry verifies it against a dummy hash), so timing does not tell which ids exist.
    if (username !== undefined && (registered || !this.opts.allowAnonymous)) {
      if (await this.opts.devices.verifyPassword(username, password ?? '')) return accepted(username);
      return failed(CONNACK_BAD_CREDENTIALS, registered ? `wrong password for device '${username}'` : `unknown device '${username}'`);
    }
    if (this.opts.allowAnonymous) return accepted(null);
    // A certificate that did not verify names no one; say why, or an expired device certificate would read as "no credentials".
    const untrusted = untrustedCertificate(tls);
    if (untrusted !== undefined) return failed(CONNACK_NOT_AUTHORIZED, untrusted);
    return failed(CONNACK_NOT_AUTHORIZED, 'no credentials: this gateway requires a device username and password or a client certificate');
  }

  private async publish(client: Client | null, packet: PublishPacket): Promise<void> {
    if (!client) return; // the broker's own publishes ($SYS) are not readings
    const mapped = this.opts.intake.mapper.map(packet.topic);
    if (typeof mapped === 'string') {
      // MQTT 3.1.1 has no reason code on PUBACK: refusing closes the connection, and the warning says why.
      this.opts.intake.countRefusal('UNMAPPED_TOPIC');
      this.logger.warn({ clientId: client.id, remote: this.remoteOf(client), code: 'UNMAPPED_TOPIC', reason: mapped }, 'publish refused');
      throw new EdgelogError('UNMAPPED_TOPIC', mapped);
    }
    // MQTT-4.3.3-2: a QoS 2 PUBLISH retransmitted before PUBREL (same packet id) was stored
    // already; aedes answers it with PUBREC from its store, it must not be appended twice.
    if (packet.qos === 2 && (await this.incomingStored(client, packet))) return;
    try {
      await this.sessionOf(client).submit(mapped, packet.payload as Buffer, packet.topic);
    } catch (error) {
      const code = error instanceof EdgelogError ? error.code : 'INTERNAL';
      // The intake logs LOG_FULL once per state change; shutdown refusals are expected.
      const level = code === 'LOG_FULL' || code === 'GATEWAY_CLOSING' ? 'debug' : 'warn';
      this.logger[level]({ clientId: client.id, remote: this.remoteOf(client), code, reason: (error as Error).message }, 'publish refused');
      throw error;
    }
  }

  /** Whether aedes holds this QoS 2 packet id awaiting PUBREL (its persistence is untyped in aedes's d.ts). */
  private incomingStored(client: Client, packet: PublishPacket): Promise<boolean> {
    const persistence = (this.broker as unknown as { persistence: { incomingGetPacket(c: Client, p: PublishPacket): Promise<unknown> } }).persistence;
    return persistence.incomingGetPacket(client, packet).then(() => true, () => false);
  }

  /** Returns the subscription to grant, or null to refuse it (SUBACK 0x80). */
  private subscribe(client: Client, sub: Subscription): Subscription | null {
    const identity = this.identities.get(client) ?? null;
    if (identity === null) return sub; // anonymous clients: only where the gateway accepts them at all
    const entry = this.opts.devices.get(identity);
    if (entry && subscriptionAllowed(entry.profile, identity, sub.topic)) return sub;
    this.opts.intake.countRefusal('NOT_AUTHORIZED');
    this.logger.warn({ clientId: client.id, deviceId: identity, topic: sub.topic }, 'subscription refused: not allowed by the device profile');
    return null;
  }

  private sessionOf(client: Client): IntakeSession {
    let session = this.sessions.get(client);
    if (!session) {
      session = this.opts.intake.openSession({ deviceId: this.identities.get(client) ?? null, transport: 'mqtt', client: `${client.id} ${this.remoteOf(client)}` });
      this.sessions.set(client, session);
    }
    return session;
  }

  private remoteOf(client: Client): string {
    return this.connections.get(client.conn as Duplex)?.remote ?? '?';
  }

  /**
   * Publishes a message to local subscribers (a command from upstream, delivered by an MQTT
   * bridge). The broker's own publishes skip authorizePublish, so it never becomes a reading.
   * Resolves once the broker has handed it to its subscribers' queues.
   */
  deliver(topic: string, payload: Buffer): Promise<void> {
    if (this.closing) return Promise.reject(new EdgelogError('GATEWAY_CLOSING', 'the gateway is closing: the command is delivered after it restarts'));
    return new Promise<void>((resolve, reject) => {
      this.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (error?: Error) => (error ? reject(error) : resolve()));
    });
  }

  /** Disconnects every client and closes the broker. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => this.broker.close(() => resolve()));
    return this.closing;
  }
}

/**
 * Why a client certificate the peer presented did not verify (another CA, expired, ...), or
 * undefined when it presented none or it verified.
 */
function untrustedCertificate(tls: TLSSocket | undefined): string | undefined {
  if (tls === undefined || tls.authorized) return undefined;
  const certificate = tls.getPeerCertificate();
  if (Object.keys(certificate).length === 0) return undefined;
  const cn = typeof certificate.subject?.CN === 'string' ? ` for CN '${certificate.subject.CN}'` : '';
  const code = (tls.authorizationError as unknown as string | Error | null) ?? 'unknown';
  return `client certificate not accepted (${String(code)})${cn}: it must be signed by the CA of config key 'tls.caFile' and within its validity dates`;
}
