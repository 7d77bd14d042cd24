import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { EdgelogError } from '../../src/errors.js';
import { parseTemplate, percentEscape, templateFields, type Template } from '../template.js';
import { filterSyntaxError } from './mqtt-topics.js';

/**
 * Options of the MQTT upstream. The bridge config validates the user's values and fills the
 * defaults below; {@link resolveMqttOptions} checks again what would make the upstream misbehave
 * (a contradiction between fields), so a wiring mistake fails at construction, not on the wire.
 */
export interface MqttUpstreamOptions {
  /** `mqtt://host:port` or `mqtts://host:port`; credentials belong in username/password, not here. */
  url: string;
  /** 5 (user properties carry the identity) or 4 (MQTT 3.1.1: every message is an NDJSON batch). */
  protocolVersion: 4 | 5;
  /** Fixed per gateway: the broker keeps this client's session (and its commands) across links. */
  clientId: string;
  gatewayId: string;
  /** Upstream topic; default {@link DEFAULT_TOPIC} or {@link DEFAULT_BATCH_TOPIC} when batching. */
  topic?: Template;
  username?: string;
  password?: string;
  /** PEM files, read once at construction. The server certificate is always verified. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Several records per message (NDJSON, optionally gzip), or null for one record per message. */
  batch: { records: number; gzip: boolean } | null;
  keepaliveSec?: number;
  /** From opening the socket to CONNACK (TCP, TLS and the broker's answer). */
  connectTimeoutMs?: number;
  /** From send() to PUBACK, and from SUBSCRIBE to SUBACK; also bounds one command's local delivery. */
  ackTimeoutMs?: number;
  /** Downlink: commands published upstream, delivered to local devices; null to not subscribe. */
  commands: { topic?: string; allow?: readonly string[] } | null;
  /**
   * Delivers one command locally (publish on the embedded broker). The upstream PUBACK waits for
   * it. Reject only for a transient failure: the link is then dropped so the broker sends the
   * command again after the reconnect (MQTT-4.4.0-1); a command that can never be delivered
   * should be logged and resolved.
   */
  onCommand?: (localTopic: string, payload: Buffer) => Promise<void>;
  logger: Logger;
}

export const DEFAULT_TOPIC = 'gateways/{gatewayId}/{topic}/{key}';
/** `{key}` is not allowed when batching: a batch holds records of many keys. */
export const DEFAULT_BATCH_TOPIC = 'gateways/{gatewayId}/{topic}';
export const DEFAULT_COMMANDS_TOPIC = 'gateways/{gatewayId}/commands/#';
/** What a device expects under its own tree (devices/acl.ts DEFAULT_SUBSCRIBE): commands, nothing else. */
export const DEFAULT_COMMANDS_ALLOW: readonly string[] = Object.freeze(['devices/+/commands/#']);
/** Long enough for a cellular link's NAT to keep state, short enough to notice a dead link within minutes. */
export const DEFAULT_KEEPALIVE_SEC = 60;
/** A slow cellular TLS handshake takes seconds; past this the link is as good as down. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/** A broker under load acks within seconds; past this the record is resent from the checkpoint. */
export const DEFAULT_ACK_TIMEOUT_MS = 30_000;
/**
 * MQTT 5 Session Expiry: the broker keeps the session (subscriptions, commands queued for the
 * gateway) for a day of outage; MQTT 3.1.1 sessions with clean session 0 never expire by protocol.
 */
export const SESSION_EXPIRY_SEC = 24 * 60 * 60;
/** MQTT-3.1.2-24: Keep Alive is a two-byte number of seconds. */
const KEEPALIVE_SEC_MAX = 65_535;

/** The options with defaults applied, templates parsed and TLS files read. */
export interface ResolvedMqttOptions {
  url: string;
  /** The broker's address without credentials, for logs and messages. */
  target: string;
  protocolVersion: 4 | 5;
  clientId: string;
  gatewayId: string;
  topic: Template;
  username: string | undefined;
  password: string | undefined;
  tls: { ca: Buffer | undefined; cert: Buffer | undefined; key: Buffer | undefined } | undefined;
  batch: { records: number; gzip: boolean } | null;
  keepaliveSec: number;
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  commands: { filter: string; prefix: string; allow: readonly string[] } | null;
}

const invalid = (message: string): EdgelogError => new EdgelogError('INVALID_CONFIG', `mqtt bridge: ${message}`);

/** Applies defaults and checks the options; throws INVALID_CONFIG naming the field. */
export function resolveMqttOptions(opts: MqttUpstreamOptions): ResolvedMqttOptions {
  let parsed: URL;
  try {
    parsed = new URL(opts.url);
  } catch {
    throw invalid(`url ${JSON.stringify(redactUrl(opts.url))} is not a URL: use mqtt://host:1883 or mqtts://host:8883`);
  }
  if (parsed.protocol !== 'mqtt:' && parsed.protocol !== 'mqtts:') {
    throw invalid(`url must start with mqtt:// or mqtts://, got ${parsed.protocol}//`);
  }
  const target = `${parsed.protocol}//${parsed.host}`;
  if (opts.tls !== undefined && parsed.protocol !== 'mqtts:') {
    // MQTT.js would quietly switch to TLS when given a client certificate; say it instead.
    throw invalid(`tls options need an mqtts:// url, got ${target}`);
  }
  if (opts.protocolVersion !== 4 && opts.protocolVersion !== 5) throw invalid(`protocolVersion must be 4 (MQTT 3.1.1) or 5, got ${String(opts.protocolVersion)}`);
  // MQTT-3.1.3-8: an empty client id cannot keep a session, and the command downlink needs one.
  if (opts.clientId === '') throw invalid('clientId must not be empty: the broker keeps the session under it');
  if (opts.gatewayId === '') throw invalid('gatewayId must not be empty');
  if (opts.batch !== null && (!Number.isInteger(opts.batch.records) || opts.batch.records < 1)) {
    throw invalid(`batch.records must be a positive integer, got ${opts.batch.records}`);
  }
  const topic = opts.topic ?? parseTemplate(opts.batch === null ? DEFAULT_TOPIC : DEFAULT_BATCH_TOPIC);
  if (opts.batch !== null && templateFields(topic).includes('key')) {
    throw invalid('topic uses {key}, which is not allowed with batch: a batch holds records of many keys');
  }
  const keepaliveSec = positive('keepaliveSec', opts.keepaliveSec ?? DEFAULT_KEEPALIVE_SEC, KEEPALIVE_SEC_MAX);
  const connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  const ackTimeoutMs = positive('ackTimeoutMs', opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS);
  return {
    url: opts.url,
    target,
    protocolVersion: opts.protocolVersion,
    clientId: opts.clientId,
    gatewayId: opts.gatewayId,
    topic,
    username: opts.username,
    password: opts.password,
    tls: opts.tls === undefined ? undefined : { ca: readPem('caFile', opts.tls.caFile), cert: readPem('certFile', opts.tls.certFile), key: readPem('keyFile', opts.tls.keyFile) },
    batch: opts.batch,
    keepaliveSec,
    connectTimeoutMs,
    ackTimeoutMs,
    commands: opts.commands === null ? null : resolveCommands(opts.commands, opts.gatewayId, opts.onCommand !== undefined),
  };
}

function resolveCommands(commands: { topic?: string; allow?: readonly string[] }, gatewayId: string, hasHandler: boolean): NonNullable<ResolvedMqttOptions['commands']> {
  if (!hasHandler) throw invalid('commands is set but no onCommand handler was given');
  const text = commands.topic ?? DEFAULT_COMMANDS_TOPIC;
  let template: Template;
  try {
    template = parseTemplate(text, ['gatewayId']);
  } catch (error) {
    throw invalid(`commands.topic: ${(error as Error).message}`);
  }
  const filter = template.map((p) => (typeof p === 'string' ? p : escapeLevel(gatewayId))).join('');
  if (!filter.endsWith('/#') || filterSyntaxError(filter) !== undefined || filter.slice(0, -1).includes('+')) {
    throw invalid(`commands.topic ${JSON.stringify(text)} must be a topic filter ending in '/#' with no other wildcard`);
  }
  const allow = commands.allow ?? DEFAULT_COMMANDS_ALLOW;
  for (const f of allow) {
    const error = filterSyntaxError(f);
    if (error !== undefined) throw invalid(`commands.allow filter ${JSON.stringify(f)}: ${error}`);
  }
  return { filter, prefix: filter.slice(0, -1), allow: Object.freeze([...allow]) };
}

/** Characters that would add or widen levels of an MQTT topic (MQTT-4.7.1) or are forbidden in it (MQTT-4.7.3-2). */
export const TOPIC_UNSAFE_CHARS = /[/+#\u0000]/g;

/** Escapes one value so it stays one topic level. */
export function escapeLevel(value: string): string {
  return percentEscape(value, TOPIC_UNSAFE_CHARS);
}

function positive(name: string, value: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalid(`${name} must be an integer from 1 to ${max}, got ${value}`);
  return value;
}

function readPem(name: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (error) {
    throw invalid(`cannot read tls.${name} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** The url without a password, should someone have put one in it. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^/@]*)@/, (_, auth: string) => `//${auth.split(':')[0]}:***@`);
}
