import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { createWebSocketStream } from 'ws';
import { Bridges } from '../bridges/bridges.js';
import { loadProfiles, type DeviceProfile } from '../devices/profile.js';
import { DeviceRegistry } from '../devices/registry.js';
import type { GatewayConfig } from './config.js';
import { EdgelogError } from './errors.js';
import { GroupCoordinator } from './groups/coordinator.js';
import { AuthThrottle } from './ingest/auth-throttle.js';
import { DeviceActivity } from './ingest/device-activity.js';
import { Intake } from './ingest/intake.js';
import { MqttIngest } from './ingest/mqtt-ingest.js';
import { TopicMapper } from './ingest/topic-mapping.js';
import { WsIngest } from './ingest/ws-ingest.js';
import { CommitLog, DEFAULT_MAX_PENDING_BYTES } from './log/commit-log.js';
import { Connectors } from './streams/connectors/connectors.js';
import { StreamProcessors } from './streams/stream-processors.js';
import { AdminAccess } from './server/access.js';
import { AdminApi, API_PREFIX } from './server/api.js';
import { Dashboard } from './server/dashboard.js';
import { healthRoutes } from './server/health.js';
import { LiveService } from './server/live.js';
import { GatewayMetrics } from './server/metrics.js';
import { OverviewBuilder } from './server/overview.js';
import { ConsumeService, MAX_CONSUME_FRAME_BYTES } from './server/consume-session.js';
import { HttpServer } from './server/http-server.js';
import { ProduceService } from './server/produce-session.js';
import { listen, stopListening, tlsServerOptions } from './server/listen.js';

/** Room for an MQTT packet's fixed header, topic and packet id around the largest record. */
const MQTT_PACKET_SLACK_BYTES = 64 * 1024;

/** Event-loop turns given to acks of the last appends at shutdown (QoS 2's PUBREC takes the most). */
const ACK_FLUSH_TURNS = 3;

export interface GatewayPorts {
  mqtt: number;
  http: number;
  /** MQTT over TLS, when certificates are configured. */
  mqttTls: number | null;
  /** HTTPS (WSS), when certificates are configured. */
  https: number | null;
}

/**
 * The composition root (DESIGN.md "Layout"): reads the validated config, builds the parts, wires
 * them and starts and stops them in order.
 */
export class Gateway {
  private closing: Promise<void> | null = null;

  private constructor(
    readonly log: CommitLog,
    readonly intake: Intake,
    readonly registry: DeviceRegistry,
    readonly groups: GroupCoordinator,
    private readonly consume: ConsumeService,
    private readonly mqtt: MqttIngest,
    private readonly mqttServers: Server[],
    private readonly http: HttpServer,
    readonly ports: GatewayPorts,
    private readonly logger: Logger,
    /** File connectors (config `connectors:`): started after the log, closed before it. */
    readonly connectors: Connectors,
    /** Stream processors (config `streams:`): started after the log and the coordinator, closed before them. */
    readonly streams: StreamProcessors,
    private readonly produce: ProduceService,
    /** Upstream bridges (config `bridges:`): started right after the log, closed first. */
    readonly bridges: Bridges,
    /** What each device sent lately (dashboard, /api/devices, metrics). */
    readonly activity: DeviceActivity,
    private readonly live: LiveService,
    private readonly overview: OverviewBuilder,
    /** Set once start() is done and cleared at close(): /readyz. */
    private readonly readiness: { ready: boolean },
  ) {}

  /** Consumer connections and the slow-consumer bound they are held to (tests, metrics). */
  consumeStats(): { sessions: number; bufferedBytesMax: number } {
    return this.consume.stats();
  }

  /** Starts the gateway from a validated config (see loadConfig). */
  static async start(config: Readonly<GatewayConfig>, logger: Logger): Promise<Gateway> {
    const dir = resolve(config.dataDir);
    const profiles = loadDeviceProfiles(config.devices.profilesDir);
    const registry = config.devices.registryFile === '' ? DeviceRegistry.empty() : DeviceRegistry.load(resolve(config.devices.registryFile), profiles);
    const tls = readTls(config);
    // Like Mosquitto 2: without a registry there are no credentials to check, so the listeners
    // stay on loopback; allowAnonymous (a bench trial) or a registry opens them to the network.
    const hasRegistry = config.devices.registryFile !== '';
    const host = config.allowAnonymous || hasRegistry ? '0.0.0.0' : '127.0.0.1';
    const allowAnonymous = config.allowAnonymous || !hasRegistry;
    if (!hasRegistry && !config.allowAnonymous) {
      logger.warn({ host }, 'no device registry is configured: accepting anonymous clients from loopback only (--allow-anonymous opens the listeners to the network; devices.registryFile requires credentials)');
    } else if (config.allowAnonymous) {
      logger.warn({ host }, 'allowAnonymous is on: accepting clients without credentials from the network');
    }

    const metrics = new GatewayMetrics();
    const log = await CommitLog.open({
      ...config.log,
      dir,
      logger,
      observeAppendMs: metrics.observeAppendMs,
      // The ingest byte budget pauses sockets long before the log would refuse with LOG_OVERLOADED.
      maxPendingBytes: Math.max(DEFAULT_MAX_PENDING_BYTES, 4 * config.ingest.maxPendingBytes),
    });
    const closers: (() => Promise<void>)[] = [() => log.close()];
    try {
      // Right after the log opens, before retention can run: each bridge holds what it has not replicated.
      let deliverCommand: ((topic: string, payload: Buffer) => Promise<void>) | null = null;
      const bridges = Bridges.start({
        log,
        bridges: config.bridges,
        logger,
        onCommand: (topic, payload) =>
          deliverCommand ? deliverCommand(topic, payload) : Promise.reject(new EdgelogError('GATEWAY_CLOSING', 'the embedded broker is not running yet')),
      });
      closers.unshift(() => bridges.close());
      const connectors = await Connectors.start({ log, connectors: config.connectors, logger });
      closers.unshift(() => connectors.close());
      const { topicRules, ...limits } = config.ingest;
      const activity = new DeviceActivity({ quietAfterMs: config.devices.quietAfterMs });
      const intake = new Intake({
        activity,
        log,
        devices: registry,
        mapper: new TopicMapper(topicRules),
        logger: logger.child({ component: 'ingest' }),
        ...limits,
        ackGate: (topic, partition, offset) => (bridges.acksUpstream(topic) ? bridges.waitReplicated(topic, partition, offset) : null),
      });
      const maxPacketBytes = config.log.topicDefaults.maxMessageBytes + MQTT_PACKET_SLACK_BYTES;
      const authThrottle = new AuthThrottle();
      const mqtt = await MqttIngest.create({ intake, devices: registry, allowAnonymous, maxPacketBytes, authThrottle, logger });
      closers.unshift(() => mqtt.close());
      deliverCommand = (topic, payload) => mqtt.deliver(topic, payload);
      const mqttServers: Server[] = [createNetServer({ noDelay: true }, (socket) => mqtt.handle(socket))];
      closers.unshift(() => stopListening(mqttServers[0]!));
      const mqttPort = await listen(mqttServers[0]!, config.mqtt.port, host, 'MQTT', '--mqtt-port');
      let mqttTlsPort: number | null = null;
      if (tls) {
        const server = createTlsServer({ noDelay: true, ...tlsServerOptions(tls) }, (socket) => mqtt.handle(socket));
        // A tls.Server only reports a failed or timed-out handshake; unlike https.Server it leaves the
        // socket open, so a client that stalls its handshake would hold it for good.
        server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
          logger.debug({ remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, code: error.code }, 'MQTT over TLS: handshake failed');
          socket.destroy();
        });
        mqttServers.push(server);
        closers.unshift(() => stopListening(server));
        mqttTlsPort = await listen(server, config.tls.mqttPort, host, 'MQTT over TLS', "config key 'tls.mqttPort'");
      }
      const groups = new GroupCoordinator({ log, logger });
      closers.unshift(async () => groups.close());
      const streams = StreamProcessors.start({ log, groups, logger, processors: config.streams });
      closers.unshift(() => streams.close());
      const consume = new ConsumeService({ log, groups, logger });
      closers.unshift(async () => consume.close());
      const wsIngest = new WsIngest({ intake, devices: registry, allowAnonymous, authThrottle, logger, maxMessageBytes: config.log.topicDefaults.maxMessageBytes });
      const produce = new ProduceService({ log, logger, maxMessageBytes: config.log.topicDefaults.maxMessageBytes });
      // Operator endpoints: the admin token, or loopback only without one (access.ts).
      const adminAccess = new AdminAccess({ token: config.admin.token, throttle: new AuthThrottle(), logger });
      const access = (req: Parameters<AdminAccess['refusal']>[0]) => adminAccess.refusal(req);
      const readiness = { ready: false };
      let ports: GatewayPorts = { mqtt: mqttPort, mqttTls: mqttTlsPort, http: config.http.port, https: null };
      const connections = () => ({ mqtt: mqtt.connectedClients, ws: wsIngest.stats().connections, consumers: consume.stats().sessions, producers: produce.stats().connections });
      const parts = { log, groups, intake, activity, registeredDevices: () => registry.ids(), bridges: () => bridges.status(), connections };
      const overview = new OverviewBuilder({
        ...parts,
        gatewayId: config.gatewayId,
        version: PACKAGE_VERSION,
        startedAtMs: Date.now(),
        ports: () => ({ ...ports }),
        tokenRequired: adminAccess.tokenRequired,
      });
      overview.start();
      closers.unshift(async () => overview.close());
      const api = new AdminApi({
        log,
        groups,
        logger,
        bridges: () => bridges.status(),
        devices: { activity, registered: () => registry.ids() },
        overview: () => overview.build(),
        readiness: () => readinessReasons(readiness, intake),
      });
      const live = new LiveService(overview, logger);
      closers.unshift(async () => live.close());
      metrics.attach({ ...parts, dashboards: () => live.stats().clients });
      const http = await HttpServer.start({
        host,
        port: config.http.port,
        ...(tls ? { tls: { ...tls, httpsPort: config.tls.httpsPort } } : {}),
        logger,
        routes: [
          {
            path: '/mqtt',
            handler: (ws, req) => mqtt.handle(createWebSocketStream(ws), req),
            maxPayloadBytes: maxPacketBytes,
          },
          { path: '/ingest', handler: (ws, req) => wsIngest.handle(ws, req), maxPayloadBytes: wsIngest.maxFrameBytes },
          { path: '/consume', handler: (ws, req) => consume.handle(ws, req), maxPayloadBytes: MAX_CONSUME_FRAME_BYTES, access },
          { ...produce.route(), access },
          live.route(access),
        ],
        httpRoutes: [
          { prefix: API_PREFIX, handler: (req, res) => api.handle(req, res), access },
          metrics.route(access),
          ...healthRoutes({ gatewayId: config.gatewayId, ports: () => listeningPorts(ports) }, () => readinessReasons(readiness, intake)),
          ...Dashboard.load().routes(),
        ],
      });
      ports = { mqtt: mqttPort, mqttTls: mqttTlsPort, http: http.ports.http, https: http.ports.https };
      readiness.ready = true;
      logger.info(
        { gatewayId: config.gatewayId, dataDir: dir, topics: log.listTopics().length, devices: registry.size, bridges: bridges.size, host, ...portFields(ports), dashboard: dashboardUrls(host, ports) },
        `edgelog gateway started: dashboard at ${dashboardUrls(host, ports)[0]}`,
      );
      return new Gateway(log, intake, registry, groups, consume, mqtt, mqttServers, http, ports, logger, connectors, streams, produce, bridges, activity, live, overview, readiness);
    } catch (error) {
      for (const close of closers) await close();
      throw error;
    }
  }

  /**
   * Shuts down in the order that loses nothing acknowledged: stop accepting connections, let
   * the appends in flight commit and their acks go out, refuse what arrives meanwhile, then
   * disconnect clients and close the log. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.readiness.ready = false;
      const listenersClosed = this.mqttServers.map(stopListening);
      this.http.stopAccepting();
      // Bridges first: PUBACKs waiting for an upstream ack (ack: upstream) fall back to the local
      // ack at once, and each bridge commits what the upstream acknowledged.
      await this.bridges.close();
      // Appends in flight from devices and from producers finish and are answered before connections are cut.
      await Promise.all([this.intake.close(), this.produce.close()]);
      // The last appends have resolved; their acks are written a few promise and immediate
      // callbacks later (aedes's PUBACK path). Let those run before the connections are cut.
      for (let turn = 0; turn < ACK_FLUSH_TURNS; turn++) await new Promise((resolve) => setImmediate(resolve));
      await this.mqtt.close();
      // Consumers and stream processors leave their groups before the log closes under them.
      await this.streams.close();
      this.consume.close();
      this.live.close();
      this.overview.close();
      this.groups.close();
      await this.http.close();
      await Promise.all(listenersClosed);
      await this.connectors.close();
      await this.log.close();
      this.logger.info('edgelog gateway stopped');
    })();
    return this.closing;
  }
}

function loadDeviceProfiles(profilesDir: string): DeviceProfile[] {
  if (profilesDir === '') return loadProfiles();
  try {
    return loadProfiles(resolve(profilesDir));
  } catch (error) {
    if (error instanceof EdgelogError) throw error;
    throw new EdgelogError('INVALID_CONFIG', `config key 'devices.profilesDir': cannot read profiles from ${profilesDir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function readTls(config: Readonly<GatewayConfig>): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  const { certFile, keyFile, caFile } = config.tls;
  if (certFile === '') return undefined;
  const read = (key: string, file: string): Buffer => {
    try {
      return readFileSync(resolve(file));
    } catch (error) {
      throw new EdgelogError('INVALID_CONFIG', `config key '${key}': cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  };
  return { cert: read('tls.certFile', certFile), key: read('tls.keyFile', keyFile), ...(caFile === '' ? {} : { ca: read('tls.caFile', caFile) }) };
}

/** The package's version, shown on the dashboard. */
const PACKAGE_VERSION = readPackageVersion();

function readPackageVersion(): string {
  // src/gateway.ts (tsx) or dist/src/gateway.js (compiled): package.json is one or two folders up.
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'edgelog' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not at this level: try the next one.
    }
  }
  return 'unknown';
}

/** Why /readyz says not ready: starting or stopping, or the log refuses readings. */
function readinessReasons(readiness: { ready: boolean }, intake: Intake): string[] {
  const reasons: string[] = [];
  if (!readiness.ready) reasons.push(intake.isClosing ? 'the gateway is shutting down' : 'the gateway is starting or shutting down');
  if (intake.stats().logFull) reasons.push('the log is full: readings are refused until retention or an operator frees space');
  return reasons;
}

/**
 * Where a person opens the dashboard: loopback when the listeners are, else this machine's
 * network addresses (IPv4 first), so the first log lines give an address to type into a browser.
 */
function dashboardUrls(host: string, ports: GatewayPorts): string[] {
  const urls = [`http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${ports.http}/`];
  if (host === '0.0.0.0') {
    for (const addresses of Object.values(networkInterfaces())) {
      for (const a of addresses ?? []) if (!a.internal && a.family === 'IPv4') urls.unshift(`http://${a.address}:${ports.http}/`);
    }
  }
  if (ports.https !== null) urls.push(`https://${host === '0.0.0.0' ? '127.0.0.1' : host}:${ports.https}/`);
  return urls;
}

/** The ports listening, by listener (`mqtt`, `http`, `mqttTls`, `https`), for /healthz. */
function listeningPorts(ports: GatewayPorts): Record<string, number> {
  return Object.fromEntries(Object.entries(ports).filter(([, port]) => port !== null)) as Record<string, number>;
}

/** The ports for the start-up log line, leaving out listeners that are off. */
function portFields(ports: GatewayPorts): Record<string, number> {
  const fields: Record<string, number> = { mqttPort: ports.mqtt, httpPort: ports.http };
  if (ports.mqttTls !== null) fields['mqttTlsPort'] = ports.mqttTls;
  if (ports.https !== null) fields['httpsPort'] = ports.https;
  return fields;
}
