/**
 * A device id is the MQTT username, a topic level (`devices/{deviceId}/...`) and the record key, so
 * it may not contain '/', '+', '#' or spaces (MQTT-4.7.1). The same rule as the default topic rule
 * in src/ingest/topic-mapping.ts: 1 to 128 of A-Z a-z 0-9 . _ : -
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** What the rule allows, for error messages. */
export const DEVICE_ID_RULE = '1 to 128 of A-Z a-z 0-9 . _ : -';

/** Why `id` is not a valid device id, or undefined when it is. */
export function deviceIdError(id: unknown): string | undefined {
  if (typeof id !== 'string') {
    const shown = typeof id === 'number' ? `the number ${id} (quote ids that look like numbers)` : JSON.stringify(id) ?? String(id);
    return `must be a string of ${DEVICE_ID_RULE}, got ${shown}`;
  }
  if (!DEVICE_ID_PATTERN.test(id)) return `'${clip(id)}' must be ${DEVICE_ID_RULE}`;
  return undefined;
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
