/**
 * The admin API's request shapes (docs/api.md), checked field by field: every refusal names the
 * field, what it got and what is allowed. Pure functions, so they are tested without a server.
 */
import { EdgelogError } from '../errors.js';
import type { OffsetResetTarget } from '../groups/coordinator.js';
import { describe, validateTopicName, type TopicConfig } from '../log/topic-config.js';

/** POST /api/topics. */
export interface CreateTopicRequest {
  name: string;
  config: Partial<TopicConfig>;
}

/** POST /api/groups/{id}/reset-offsets. */
export interface ResetOffsetsRequest {
  topic: string;
  to: OffsetResetTarget;
  /** One partition only; every partition of the topic when absent. */
  partition?: number;
}

const CREATE_TOPIC_FIELDS = ['name', 'partitions', 'retentionMs', 'retentionBytes', 'maxMessageBytes'] as const;
const RESET_OFFSETS_FIELDS = ['topic', 'to', 'partition'] as const;
const RESET_TARGET_RULE = `"earliest", "latest", {"offset": N} with a whole N ≥ 0, or {"timestamp": MS} (ms since the epoch)`;

export function parseCreateTopic(body: unknown): CreateTopicRequest {
  const fields = objectWith(body, CREATE_TOPIC_FIELDS, '{"name": "temperature", "partitions": 3}');
  if (fields['name'] === undefined) throw new EdgelogError('INVALID_ARGUMENT', `field 'name' is required: the topic's name`);
  const name = validateTopicName(fields['name']);
  const config: Partial<TopicConfig> = {};
  // Types and ranges are checked by the log (resolveTopicConfig), which names the field.
  for (const key of ['partitions', 'retentionMs', 'retentionBytes', 'maxMessageBytes'] as const) {
    if (fields[key] !== undefined) config[key] = fields[key] as number;
  }
  return { name, config };
}

export function parseResetOffsets(body: unknown): ResetOffsetsRequest {
  const fields = objectWith(body, RESET_OFFSETS_FIELDS, '{"topic": "temperature", "to": "earliest"}');
  if (fields['topic'] === undefined) throw new EdgelogError('INVALID_ARGUMENT', `field 'topic' is required: the topic whose offsets to reset`);
  const topic = validateTopicName(fields['topic']);
  const partition = fields['partition'];
  if (partition === undefined) return { topic, to: parseResetTarget(fields['to']) };
  if (typeof partition !== 'number' || !Number.isSafeInteger(partition) || partition < 0) {
    throw new EdgelogError('INVALID_ARGUMENT', `field 'partition' must be a whole number ≥ 0 (one partition of the topic; leave it out for all), got ${describe(partition)}`);
  }
  return { topic, to: parseResetTarget(fields['to']), partition };
}

function parseResetTarget(to: unknown): OffsetResetTarget {
  if (to === 'earliest' || to === 'latest') return to;
  if (typeof to === 'object' && to !== null && !Array.isArray(to)) {
    const keys = Object.keys(to);
    const value = (to as Record<string, unknown>)[keys[0] ?? ''];
    if (keys.length === 1 && keys[0] === 'offset') {
      if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { offset: value };
      throw new EdgelogError('INVALID_ARGUMENT', `field 'to.offset' must be a whole number ≥ 0, got ${describe(value)}`);
    }
    if (keys.length === 1 && keys[0] === 'timestamp') {
      if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return { timestamp: value };
      throw new EdgelogError('INVALID_ARGUMENT', `field 'to.timestamp' must be milliseconds since the epoch (a whole number ≥ 0), got ${describe(value)}`);
    }
  }
  if (to === undefined) throw new EdgelogError('INVALID_ARGUMENT', `field 'to' is required: ${RESET_TARGET_RULE}`);
  throw new EdgelogError('INVALID_ARGUMENT', `field 'to' must be ${RESET_TARGET_RULE}, got ${to !== null && typeof to === 'object' && !Array.isArray(to) ? JSON.stringify(to).slice(0, 80) : describe(to)}`);
}

/** The body as an object with only `allowed` fields; refuses anything else naming the difference. */
function objectWith(body: unknown, allowed: readonly string[], example: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    const got = body === undefined ? 'an empty body' : describe(body);
    throw new EdgelogError('INVALID_ARGUMENT', `the body must be a JSON object such as ${example}, got ${got}`);
  }
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      throw new EdgelogError('INVALID_ARGUMENT', `unknown field ${describe(key)}: the fields are ${allowed.join(', ')}`);
    }
  }
  return body as Record<string, unknown>;
}

/**
 * A path segment, URL-decoded. A malformed escape (`%zz`) is refused; the caller then validates
 * the name, whose rules (topic and group ids alike) allow no `/`, so `%2F` cannot reach another route.
 */
export function decodeSegment(segment: string, what: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    throw new EdgelogError('INVALID_ARGUMENT', `the ${what} in the path ${describe(segment)} is not valid URL encoding: escape characters as %XX of their UTF-8 bytes`);
  }
  return decoded;
}

/** Devices on one page of GET /api/devices at most: the answer stays small on a Pi with any fleet. */
export const MAX_DEVICES_PAGE = 1000;
const DEVICE_STATES = ['all', 'quiet', 'active'] as const;

/** GET /api/devices's query: `state` (all, quiet, active), `limit` (1 to MAX_DEVICES_PAGE), `after` (the last id of the previous page). */
export function parseDeviceQuery(params: URLSearchParams): { state: (typeof DEVICE_STATES)[number]; limit: number; after: string | undefined } {
  const state = params.get('state') ?? 'all';
  if (!(DEVICE_STATES as readonly string[]).includes(state)) {
    throw new EdgelogError('INVALID_ARGUMENT', `query parameter 'state' must be one of ${DEVICE_STATES.join(', ')}, got ${JSON.stringify(state.slice(0, 40))}`);
  }
  const limitText = params.get('limit') ?? String(MAX_DEVICES_PAGE);
  const limit = /^\d{1,7}$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!(limit >= 1 && limit <= MAX_DEVICES_PAGE)) {
    throw new EdgelogError('INVALID_ARGUMENT', `query parameter 'limit' must be an integer from 1 to ${MAX_DEVICES_PAGE}, got ${JSON.stringify(limitText.slice(0, 40))}`);
  }
  return { state: state as (typeof DEVICE_STATES)[number], limit, after: params.get('after') ?? undefined };
}
