/**
 * The parts of the disk-full and clock-jump scenarios (disk-and-clock.test.ts) that are not the
 * scenario's story: filling a filesystem, what one device sees when it publishes, and the checks
 * of the closed log (seeks by timestamp, window outputs, what retention deleted).
 */
import { closeSync, openSync, statfsSync, writeSync } from 'node:fs';
import mqtt from 'mqtt';
import { CommitLog } from '../../src/index.js';

/** Bytes per filler write: small enough to get close to the target, large enough to be quick. */
const FILL_CHUNK_BYTES = 256 * 1024;
/** Bounds the fill loop: more than any test filesystem holds. */
const FILL_CHUNKS_MAX = 1_000_000 / 4;
/** How long a device waits for its PUBACK, or for the gateway to close its connection. */
const PROBE_TIMEOUT_MS = 10_000;
/** Records per read() page of the inspection. */
const PAGE_RECORDS = 10_000;
const PAGE_BYTES = 64 * 1024 * 1024;

/**
 * Writes `file` on the filesystem holding `dir` until at most `leaveBytes` are free (0: until
 * ENOSPC), as another program filling the disk would.
 */
export function fillDisk(file: string, dir: string, leaveBytes: number): void {
  const free = () => {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  };
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < FILL_CHUNKS_MAX; i++) {
      const room = free() - leaveBytes;
      if (leaveBytes > 0 && room <= 0) return;
      try {
        writeSync(fd, Buffer.alloc(leaveBytes > 0 ? Math.min(FILL_CHUNK_BYTES, room) : FILL_CHUNK_BYTES, 0x5a));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw error;
      }
    }
    throw new Error(`${dir} did not fill up within ${FILL_CHUNKS_MAX} writes`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Connects as device `deviceId` and publishes one QoS 1 reading to devices/{deviceId}/climate;
 * says what the device saw: 'PUBACK', 'connection closed, no PUBACK', or no answer at all.
 */
export async function probePublish(mqttPort: number, deviceId: string, payload: object): Promise<string> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: deviceId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: PROBE_TIMEOUT_MS });
  client.on('error', () => {}); // a refused publish closes the connection: that is what is observed
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      client.publishAsync(`devices/${deviceId}/climate`, JSON.stringify(payload), { qos: 1 }).then(() => 'PUBACK', () => 'publish failed'),
      new Promise<string>((resolve) => client.once('close', () => resolve('connection closed, no PUBACK'))),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no PUBACK and no close within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS))),
    ]);
  } finally {
    clearTimeout(timer);
    await client.endAsync(true);
  }
}

/** What the closed log holds, for the clock scenario's checks. */
export interface LogInspection {
  /** Climate partition 0's record timestamps, by offset from its start offset. */
  climateTimestamps: { start: number; timestamps: number[] };
  /** Records whose timestamp is below the one before it. */
  inversions: number;
  /** The JSON values of the given topics. */
  outputs: Map<string, Array<Record<string, unknown>>>;
  /** Records retention deleted (start offsets summed), over every topic but `except`. */
  deletedOutside(except: string): number;
}

/** Opens the stopped gateway's log and reads what the checks need. */
export async function inspectLog(dir: string, outputTopics: readonly string[]): Promise<LogInspection> {
  const log = await CommitLog.open({ dir, retentionSchedule: null });
  try {
    const starts = new Map<string, number>();
    for (const topic of log.listTopics()) starts.set(topic, log.describeTopic(topic).partitions.reduce((sum, p) => sum + p.startOffset, 0));
    const readAll = (topic: string): Array<{ timestamp: number; value: Buffer }> => {
      const out: Array<{ timestamp: number; value: Buffer }> = [];
      const p = log.describeTopic(topic).partitions[0]!;
      // Bounded: every pass reads at least one record or ends the loop.
      for (let offset = p.startOffset; offset < p.highWatermark; ) {
        const { records } = log.read(topic, 0, offset, { maxRecords: PAGE_RECORDS, maxBytes: PAGE_BYTES });
        if (records.length === 0) break;
        for (const r of records) out.push({ timestamp: r.timestamp, value: r.value });
        offset = records.at(-1)!.offset + 1;
      }
      return out;
    };
    const timestamps = readAll('climate').map((r) => r.timestamp);
    const inversions = timestamps.filter((t, i) => i > 0 && t < timestamps[i - 1]!).length;
    const outputs = new Map(outputTopics.filter((t) => log.hasTopic(t)).map((t) => [t, readAll(t).map((r) => JSON.parse(r.value.toString('utf8')) as Record<string, unknown>)]));
    return {
      climateTimestamps: { start: log.describeTopic('climate').partitions[0]!.startOffset, timestamps },
      inversions,
      outputs,
      deletedOutside: (except) => [...starts].reduce((sum, [topic, start]) => (topic === except ? sum : sum + start), 0),
    };
  } finally {
    await log.close();
  }
}

/** A seek by timestamp on climate/0 and its answer; `hwBefore` is the high watermark just before the seeks. */
export interface SeekAnswer {
  timestamp: number;
  offset: number;
  hwBefore: number;
}

/**
 * Kafka's ListOffsets rule, checked by brute force: a seek to time t lands on the first offset
 * whose timestamp is at or after t, however out of order the timestamps are; with none before
 * the seek, on the high watermark of that moment.
 */
export function checkSeeks(climate: LogInspection['climateTimestamps'], seeks: readonly SeekAnswer[]): string[] {
  const problems: string[] = [];
  for (const { timestamp, offset, hwBefore } of seeks) {
    const index = climate.timestamps.findIndex((t) => t >= timestamp);
    const first = index < 0 ? climate.start + climate.timestamps.length : climate.start + index;
    const ok = first < hwBefore ? offset === first : offset >= hwBefore && offset <= first;
    if (!ok) problems.push(`seek to ${new Date(timestamp).toISOString()} answered offset ${offset}; the first record at or after it is ${first} (high watermark ${hwBefore} before the seeks)`);
  }
  return problems;
}

/**
 * Checks a window processor's output: every window emitted once per key, aligned, of the right
 * size, with a count and consistent aggregates. Returns the windows and the readings they counted.
 */
export function checkWindows(values: ReadonlyArray<Record<string, unknown>>, sizeMs: number): { windows: number; counted: number; problems: string[] } {
  const problems: string[] = [];
  const seen = new Set<string>();
  let counted = 0;
  for (const v of values) {
    const { key, windowStart, windowEnd, count, min, max, mean } = v as Record<string, number>;
    const id = `${String(key)}@${windowStart}`;
    if (seen.has(id)) problems.push(`window ${id} emitted twice`);
    seen.add(id);
    const numbers = [windowStart, windowEnd, count, min, max, mean];
    if (!numbers.every((n) => typeof n === 'number' && Number.isFinite(n))) problems.push(`window ${id} has a missing or non-finite field: ${JSON.stringify(v)}`);
    else if (windowStart! % sizeMs !== 0 || windowEnd! - windowStart! !== sizeMs) problems.push(`window ${id} is not an aligned ${sizeMs}-ms window: ${JSON.stringify(v)}`);
    else if (!(count! >= 1 && min! <= mean! + 1e-9 && mean! <= max! + 1e-9)) problems.push(`window ${id} has inconsistent aggregates: ${JSON.stringify(v)}`);
    counted += typeof count === 'number' ? count : 0;
    if (problems.length > 20) break;
  }
  return { windows: values.length, counted, problems };
}
