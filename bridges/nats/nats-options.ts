import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { EdgelogError } from '../../src/errors.js';
import { parseTemplate, templateFields, type Template } from '../template.js';

/**
 * Options of the NATS JetStream upstream. The bridge config validates the user's values and fills
 * the defaults; {@link resolveNatsOptions} checks again what would make the upstream misbehave, so
 * a wiring mistake fails at construction, not on the wire.
 */
export interface NatsUpstreamOptions {
  /** `nats://host:port` (or `tls://`); with several, each connect() picks one that answers. */
  servers: string[];
  gatewayId: string;
  /** The subject of each message; default {@link DEFAULT_SUBJECT}. */
  subject?: Template;
  /**
   * The stream the subjects land in. With `create`, connect() creates it, or accepts an existing
   * one (adding missing subjects, widening a shorter duplicate window); null when the central side
   * owns the stream.
   */
  stream: NatsStreamOptions | null;
  user?: string;
  pass?: string;
  token?: string;
  /** PEM files, read once at construction. The server certificate is always verified. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Several records per message (NDJSON, optionally gzip), or null for one record per message. */
  batch: { records: number; gzip: boolean } | null;
  /** From send() to the PubAck; past it the send rejects UPSTREAM_UNAVAILABLE. Default {@link DEFAULT_ACK_TIMEOUT_MS}. */
  ackTimeoutMs?: number;
  /** One server's TCP+TLS handshake and INFO/CONNECT exchange. Default {@link DEFAULT_CONNECT_TIMEOUT_MS}. */
  connectTimeoutMs?: number;
  logger: Logger;
}

export interface NatsStreamOptions {
  name: string;
  create: boolean;
  subjects: string[];
  replicas: number;
  /** JetStream drops a message whose Nats-Msg-Id it saw within this window: exactly-once across resends. */
  duplicateWindowMs: number;
}

/** Gateway, log topic and partition as tokens: a stream can select a gateway or a topic with wildcards. */
export const DEFAULT_SUBJECT = 'edgelog.{gatewayId}.{topic}.{partition}';
/** A JetStream cluster acks within milliseconds, a stream leader election takes seconds; past this the records are resent from the checkpoint. */
export const DEFAULT_ACK_TIMEOUT_MS = 30_000;
/** A slow cellular TLS handshake takes seconds; past this the server is as good as down. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/** JetStream keeps at most 5 replicas of a stream. */
const REPLICAS_MAX = 5;

/** The options with defaults applied, the subject parsed and TLS files read. */
export interface ResolvedNatsOptions {
  servers: string[];
  /** The servers without credentials, for logs and messages. */
  target: string;
  gatewayId: string;
  subject: Template;
  stream: NatsStreamOptions | null;
  user: string | undefined;
  pass: string | undefined;
  token: string | undefined;
  tls: { ca: string | undefined; cert: string | undefined; key: string | undefined } | undefined;
  batch: { records: number; gzip: boolean } | null;
  ackTimeoutMs: number;
  connectTimeoutMs: number;
}

const invalid = (message: string): EdgelogError => new EdgelogError('INVALID_CONFIG', `nats bridge: ${message}`);

/** Applies defaults and checks the options; throws INVALID_CONFIG naming the field. */
export function resolveNatsOptions(opts: NatsUpstreamOptions): ResolvedNatsOptions {
  if (!Array.isArray(opts.servers) || opts.servers.length === 0) throw invalid('servers must list at least one nats://host:port');
  if (opts.gatewayId === '') throw invalid('gatewayId must not be empty');
  if (opts.token !== undefined && (opts.user !== undefined || opts.pass !== undefined)) {
    throw invalid('token and user/pass are exclusive: the server accepts one way of authenticating');
  }
  if ((opts.user === undefined) !== (opts.pass === undefined)) throw invalid('user and pass go together');
  if (opts.batch !== null && (!Number.isInteger(opts.batch.records) || opts.batch.records < 1)) {
    throw invalid(`batch.records must be a positive integer, got ${opts.batch.records}`);
  }
  const subject = opts.subject ?? parseTemplate(DEFAULT_SUBJECT);
  if (opts.batch !== null && templateFields(subject).includes('key')) {
    throw invalid('subject uses {key}, which is not allowed with batch: a batch holds records of many keys');
  }
  if (opts.stream !== null) checkStream(opts.stream);
  return {
    servers: [...opts.servers],
    target: opts.servers.map(redactServer).join(','),
    gatewayId: opts.gatewayId,
    subject,
    stream: opts.stream === null ? null : { ...opts.stream, subjects: [...opts.stream.subjects] },
    user: opts.user,
    pass: opts.pass,
    token: opts.token,
    tls: opts.tls === undefined ? undefined : { ca: readPem('caFile', opts.tls.caFile), cert: readPem('certFile', opts.tls.certFile), key: readPem('keyFile', opts.tls.keyFile) },
    batch: opts.batch,
    ackTimeoutMs: positive('ackTimeoutMs', opts.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS),
    connectTimeoutMs: positive('connectTimeoutMs', opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
  };
}

function checkStream(stream: NatsStreamOptions): void {
  if (!/^[^\s.*>/\\]+$/.test(stream.name)) throw invalid(`stream.name ${JSON.stringify(stream.name)} must be one token without whitespace, '.', '*', '>', '/' or '\\'`);
  if (stream.create && stream.subjects.length === 0) throw invalid('stream.subjects must not be empty when stream.create is set');
  if (!Number.isInteger(stream.replicas) || stream.replicas < 1 || stream.replicas > REPLICAS_MAX) {
    throw invalid(`stream.replicas must be an integer from 1 to ${REPLICAS_MAX}, got ${stream.replicas}`);
  }
  positive('stream.duplicateWindowMs', stream.duplicateWindowMs);
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw invalid(`${name} must be a positive integer, got ${value}`);
  return value;
}

function readPem(name: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw invalid(`cannot read tls.${name} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** A server URL without its password or token, should someone have put one in it. */
export function redactServer(server: string): string {
  return server.replace(/^([a-z]+:\/\/)?([^/@]*)@/i, (_, scheme: string | undefined, auth: string) => `${scheme ?? ''}${auth.split(':')[0]}:***@`);
}
