import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from '../../devices/device-id.js';
import { validateTopicName } from '../log/topic-config.js';

/** Where one reading goes in the log. */
export interface MappedTopic {
  /** The log topic. */
  topic: string;
  /** The record key: the device id, so one device's readings stay in order in one partition. */
  key: string;
  deviceId: string;
  stream: string;
}

/**
 * The default rule (DESIGN.md, "Defaults"): `devices/{deviceId}/{stream}` → log topic `{stream}`
 * keyed by `{deviceId}`. Returns a reason string instead when the MQTT topic does not fit it.
 */
export function mapDefaultTopic(mqttTopic: string): MappedTopic | string {
  const parts = mqttTopic.split('/');
  if (parts.length !== 3 || parts[0] !== 'devices') {
    return `topic '${clip(mqttTopic)}' does not match devices/{deviceId}/{stream}`;
  }
  return mapReading(parts[1]!, parts[2]!);
}

/**
 * The same rule for a reading that names its device and stream directly (WebSocket ingest):
 * stream `{stream}` of device `{deviceId}` → log topic `{stream}` keyed by `{deviceId}`.
 */
export function mapReading(deviceId: string, stream: string): MappedTopic | string {
  if (!DEVICE_ID_PATTERN.test(deviceId)) {
    return `device id '${clip(deviceId)}' must be ${DEVICE_ID_RULE}`;
  }
  try {
    validateTopicName(stream);
  } catch {
    return `stream '${clip(stream)}' must be 1 to 249 of a-z A-Z 0-9 . _ - (it names the log topic)`;
  }
  if (stream.startsWith('_')) return `stream '${stream}' may not start with '_': such topics are the gateway's own`;
  return { topic: stream, key: deviceId, deviceId, stream };
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
