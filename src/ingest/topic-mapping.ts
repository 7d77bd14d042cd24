import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from '../../devices/device-id.js';
import { validateTopicName } from '../log/topic-config.js';

/**
 * A declarative rule from MQTT topics to the log (config `ingest.topicRules`): `match` is an MQTT
 * topic with whole levels `{name}` that capture that level; `topic` and `key` are templates over
 * the captured names. `match` must capture `{deviceId}`: it is the ACL's and the profile's key.
 */
export interface TopicRule {
  readonly match: string;
  readonly topic: string;
  readonly key: string;
}

/** The default rule (DESIGN.md "Defaults"): each device's readings in order in one partition of topic {stream}. */
export const DEFAULT_TOPIC_RULES: readonly TopicRule[] = Object.freeze([Object.freeze({ match: 'devices/{deviceId}/{stream}', topic: '{stream}', key: '{deviceId}' })]);

/** Where one reading goes in the log. */
export interface MappedTopic {
  /** The log topic. */
  readonly topic: string;
  /** The record key. */
  readonly key: string;
  readonly deviceId: string;
  /** The profile stream the payload is decoded as: the `{stream}` level, else the log topic. */
  readonly stream: string;
}

/** A stream is one topic level and usually names a log topic: Kafka's topic-name characters. */
const STREAM_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const PLACEHOLDER = /^\{([A-Za-z][A-Za-z0-9]*)\}$/;
const TEMPLATE_NAMES = /\{([^{}]*)\}/g;

/**
 * MQTT topics whose mapping is remembered: a device publishes to the same few topics again and
 * again, so mapping is a lookup after its first reading. Bounded (memory contract): when full, the
 * cache starts over. A fleet cycles through all its topics, so the cache must hold them all or
 * it misses on every reading: 65,536 holds 10,000 devices of up to six streams (the 10,000-device
 * soak has two each, 20,000 topics, which the former 16,384 did not hold: ~2.5% of the gateway's
 * CPU went to mapping again). Entries exist only for topics seen, so a small fleet pays for its
 * own few (~200 bytes each).
 */
export const MAP_CACHE_ENTRIES = 65_536;

/** Why a rule is not valid, naming the field and what is allowed; undefined when it is. */
export function topicRuleError(rule: unknown): string | undefined {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) return 'must be a mapping with keys match, topic and key';
  const { match, topic, key, ...rest } = rule as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) return `unknown key '${unknown[0]}': a rule has keys match, topic and key`;
  for (const [name, value] of [['match', match], ['topic', topic], ['key', key]] as const) {
    if (typeof value !== 'string' || value === '') return `'${name}' must be a non-empty string`;
  }
  const captured = new Set<string>();
  for (const level of (match as string).split('/')) {
    if (level === '+' || level === '#') return `'match' uses {name} levels, not MQTT wildcards ('${level}')`;
    if (level.includes('{') || level.includes('}')) {
      const name = PLACEHOLDER.exec(level)?.[1];
      if (name === undefined) return `'match' level '${level}' must be a whole {name} (letters and digits)`;
      if (captured.has(name)) return `'match' captures {${name}} twice`;
      captured.add(name);
    }
  }
  if (!captured.has('deviceId')) return `'match' must capture a {deviceId} level: it names the device for its ACL and profile`;
  for (const [name, template] of [['topic', topic], ['key', key]] as const) {
    for (const [, used] of (template as string).matchAll(TEMPLATE_NAMES)) {
      if (!captured.has(used!)) return `'${name}' uses {${used}}, which 'match' does not capture (it captures ${[...captured].map((c) => `{${c}}`).join(', ')})`;
    }
  }
  return undefined;
}

interface CompiledRule {
  readonly rule: TopicRule;
  /** Per level: a literal, or the name it captures. */
  readonly levels: readonly ({ literal: string } | { capture: string })[];
}

/** Maps MQTT topics (and WebSocket readings) to log topics and keys by the first matching rule. */
export class TopicMapper {
  private readonly compiled: readonly CompiledRule[];
  private readonly cache = new Map<string, MappedTopic | string>();

  /** `rules` must be valid ({@link topicRuleError}); config validation checks them at start-up. */
  constructor(rules: readonly TopicRule[] = DEFAULT_TOPIC_RULES) {
    this.compiled = rules.map((rule) => ({
      rule,
      levels: rule.match.split('/').map((level) => {
        const name = PLACEHOLDER.exec(level)?.[1];
        return name === undefined ? { literal: level } : { capture: name };
      }),
    }));
  }

  /** MQTT topics whose mapping is remembered (at most MAP_CACHE_ENTRIES). */
  get cachedTopics(): number {
    return this.cache.size;
  }

  /** Where a publish to `mqttTopic` goes, or the reason it is refused (UNMAPPED_TOPIC). */
  map(mqttTopic: string): MappedTopic | string {
    let mapped = this.cache.get(mqttTopic);
    if (mapped === undefined) {
      if (this.cache.size >= MAP_CACHE_ENTRIES) this.cache.clear();
      mapped = this.mapUncached(mqttTopic);
      // Refusals are not cached: topics that map nowhere are the ones a client can invent without end.
      if (typeof mapped !== 'string') this.cache.set(mqttTopic, mapped);
    }
    return mapped;
  }

  private mapUncached(mqttTopic: string): MappedTopic | string {
    const levels = mqttTopic.split('/');
    for (const { rule, levels: pattern } of this.compiled) {
      if (pattern.length !== levels.length) continue;
      const captures = new Map<string, string>();
      const fits = pattern.every((p, i) => ('literal' in p ? p.literal === levels[i] : (captures.set(p.capture, levels[i]!), true)));
      if (fits) return this.apply(rule, captures);
    }
    return `topic '${clip(mqttTopic)}' does not match ${this.compiled.map((c) => c.rule.match).join(' or ')}`;
  }

  /**
   * Where a WebSocket reading of `stream` from `deviceId` goes: the same as a publish to
   * `devices/{deviceId}/{stream}`, so both transports follow one set of rules.
   */
  mapReading(deviceId: string, stream: string): MappedTopic | string {
    if (!STREAM_NAME.test(stream)) return `stream '${clip(stream)}' must be 1 to 249 of a-z A-Z 0-9 . _ -`;
    return this.map(`devices/${deviceId}/${stream}`);
  }

  private apply(rule: TopicRule, captures: Map<string, string>): MappedTopic | string {
    const deviceId = captures.get('deviceId')!;
    if (!DEVICE_ID_PATTERN.test(deviceId)) return `device id '${clip(deviceId)}' must be ${DEVICE_ID_RULE}`;
    const fill = (template: string) => template.replace(TEMPLATE_NAMES, (_, name: string) => captures.get(name)!);
    const topic = fill(rule.topic);
    try {
      validateTopicName(topic);
    } catch {
      return `log topic '${clip(topic)}' (from '${rule.topic}') must be 1 to 249 of a-z A-Z 0-9 . _ -`;
    }
    if (topic.startsWith('_')) return `log topic '${topic}' may not start with '_': such topics are the gateway's own`;
    // Frozen: one mapping is shared by every reading published to the same MQTT topic.
    return Object.freeze({ topic, key: fill(rule.key), deviceId, stream: captures.get('stream') ?? topic });
  }
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
