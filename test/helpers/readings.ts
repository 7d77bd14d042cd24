import { decodeReading } from '../../devices/payload-codec.js';
import type { DeviceProfile } from '../../devices/profile.js';
import type { ReceivedMessage } from './aedes.js';

/** Received readings of one device: every seq seen, and how many arrived more than once. */
export interface DeviceReadings {
  readonly seqs: Set<number>;
  duplicates: number;
}

/** Decodes messages on devices/{id}/{stream} with `profile` and groups the seqs by device. Throws on an undecodable payload. */
export function readingsByDevice(messages: readonly ReceivedMessage[], profile: DeviceProfile): Map<string, DeviceReadings> {
  const byDevice = new Map<string, DeviceReadings>();
  for (const { topic, payload } of messages) {
    const [, device, stream] = topic.split('/');
    if (device === undefined || stream === undefined) throw new Error(`unexpected topic ${topic}`);
    const { seq } = decodeReading(profile, stream, payload);
    let entry = byDevice.get(device);
    if (entry === undefined) byDevice.set(device, (entry = { seqs: new Set(), duplicates: 0 }));
    if (entry.seqs.has(seq)) entry.duplicates++;
    else entry.seqs.add(seq);
  }
  return byDevice;
}

/** Distinct readings received, over all devices. */
export function distinctCount(byDevice: Map<string, DeviceReadings>): number {
  let n = 0;
  for (const entry of byDevice.values()) n += entry.seqs.size;
  return n;
}
