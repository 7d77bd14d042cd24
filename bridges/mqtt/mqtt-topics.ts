/**
 * MQTT topic filter syntax and matching, for the command downlink's allow list. Kept here rather
 * than borrowed from devices/acl.ts: bridges depend on the log's public API only (DESIGN "Layout").
 */

/** Why `filter` is not a valid MQTT topic filter, or undefined when it is. */
export function filterSyntaxError(filter: string): string | undefined {
  if (filter.length === 0) return 'must not be empty (MQTT-4.7.3-1)';
  if (filter.includes('\u0000')) return 'must not contain U+0000 (MQTT-4.7.3-2)';
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `'#' must be the last level and alone in it (MQTT-4.7.1-2)`;
    if (level.includes('+') && level !== '+') return `'+' must be alone in its level (MQTT-4.7.1-3)`;
  }
  return undefined;
}

/** Whether the topic name `topic` matches the valid filter `filter` (MQTT-4.7). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // MQTT-4.7.2-1: a filter starting with a wildcard does not match topics starting with '$'.
  if ((f[0] === '#' || f[0] === '+') && topic.startsWith('$')) return false;
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    // 'a/#' matches 'a' itself and everything below it (MQTT-4.7.1-2).
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Whether `name` is a topic name (no wildcards, not empty, no NUL): what a local publish accepts. */
export function isTopicName(name: string): boolean {
  return name.length > 0 && !/[+#\u0000]/.test(name);
}
