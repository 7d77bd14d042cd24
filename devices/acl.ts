/**
 * The subscribe ACL: which MQTT topic filters a device may subscribe to. Each profile lists allowed
 * filters with a `{deviceId}` placeholder (devices/README.md, "Subscribe ACL"); a request is allowed
 * only if one allowed filter covers it, i.e. matches every topic the requested filter matches.
 */
import type { DeviceProfile } from './profile.js';
import { DEVICE_ID_PATTERN } from './device-id.js';

/** The placeholder an allowed filter may use, as a whole topic level, for the subscriber's own id. */
export const DEVICE_ID_PLACEHOLDER = '{deviceId}';

/** What a profile allows when it has no `subscribe` field: commands sent down to the device itself. */
export const DEFAULT_SUBSCRIBE: readonly string[] = Object.freeze(['devices/{deviceId}/commands/#']);

/** MQTT-1.5.3: a UTF-8 string is at most 65,535 bytes. */
const MAX_FILTER_BYTES = 65_535;
// A lone UTF-16 surrogate has no UTF-8 encoding (MQTT-1.5.3-1).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `filter` is not a valid MQTT 3.1.1 topic filter, or undefined when it is. */
export function topicFilterError(filter: string): string | undefined {
  if (typeof filter !== 'string') return 'must be a string';
  if (filter.length === 0) return 'must not be empty (MQTT-4.7.3-1)';
  if (Buffer.byteLength(filter, 'utf8') > MAX_FILTER_BYTES) return `must be at most ${MAX_FILTER_BYTES} bytes of UTF-8 (MQTT-1.5.3)`;
  if (filter.includes('\u0000')) return 'must not contain U+0000 (MQTT-4.7.3-2)';
  if (LONE_SURROGATE.test(filter)) return 'must be well-formed UTF-8 (MQTT-1.5.3-1)';
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return `'#' must be the last level and alone in it (MQTT-4.7.1-2), in level ${i + 1} '${level}'`;
    }
    if (level.includes('+') && level !== '+') return `'+' must be alone in its level (MQTT-4.7.1-3), in level ${i + 1} '${level}'`;
  }
  return undefined;
}

/**
 * Why `template` is not a valid allowed filter for a profile, or undefined: valid MQTT filter
 * syntax, and `{deviceId}` only as a whole level. Other braces are refused as likely typos.
 */
export function allowedFilterError(template: string): string | undefined {
  const syntax = topicFilterError(template);
  if (syntax !== undefined) return syntax;
  for (const [i, level] of template.split('/').entries()) {
    if (level === DEVICE_ID_PLACEHOLDER) continue;
    if (level.includes('{') || level.includes('}')) {
      return `level ${i + 1} '${level}' has a brace: the only placeholder is ${DEVICE_ID_PLACEHOLDER}, as a whole level`;
    }
  }
  return undefined;
}

/**
 * True only if the device may subscribe to `requestedFilter`: it is a valid filter and one of the
 * profile's allowed filters, with `{deviceId}` replaced by `deviceId`, covers it.
 */
export function subscriptionAllowed(profile: DeviceProfile, deviceId: string, requestedFilter: string): boolean {
  // An id with '/', '+' or '#' would widen the allowed filter; registered ids never have them.
  if (!DEVICE_ID_PATTERN.test(deviceId)) return false;
  if (topicFilterError(requestedFilter) !== undefined) return false;
  const requested = requestedFilter.split('/');
  return profile.subscribe.some((template) => filterCovers(expand(template, deviceId), requested));
}

function expand(template: string, deviceId: string): string[] {
  return template.split('/').map((level) => (level === DEVICE_ID_PLACEHOLDER ? deviceId : level));
}

/**
 * True if every topic that `requested` matches is matched by `allowed` (both valid filters, split
 * into levels). Exported for tests.
 */
export function filterCovers(allowed: readonly string[], requested: readonly string[]): boolean {
  // MQTT-4.7.2-1: a filter starting with a wildcard does not match topics starting with '$', so
  // '#' or '+/...' does not cover '$SYS/...'. A requested wildcard first level matches no '$' topic.
  const first = requested[0] ?? '';
  if ((allowed[0] === '#' || allowed[0] === '+') && first.startsWith('$')) return false;
  for (let i = 0; i < allowed.length; i++) {
    const a = allowed[i];
    // 'a/#' matches 'a' itself as well as everything below it (MQTT-4.7.1-2).
    if (a === '#') return true;
    if (i >= requested.length) return false;
    const r = requested[i];
    // A requested '#' matches any depth: only an allowed '#' covers it.
    if (r === '#') return false;
    // '+' matches any one level, including an empty one; a literal covers only itself.
    if (a !== '+' && (r === '+' || r !== a)) return false;
  }
  // Allowed levels are exhausted: covered only if the request is not deeper.
  return requested.length === allowed.length;
}
