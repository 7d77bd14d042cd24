import { describe, expect, it, onTestFinished } from 'vitest';
import { pino } from 'pino';
import WebSocket from 'ws';
import { CommitLog } from '../../src/log/commit-log.js';
import { HttpServer } from '../../src/server/http-server.js';
import { ProduceService } from '../../src/server/produce-session.js';
import { startGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A frame from /produce as the tests read it (docs/consume.md, "The producer protocol"). */
interface Frame {
  type: string;
  id?: string | number;
  code?: string;
  message?: string;
  retryable?: boolean;
  results?: { partition: number; offset: number }[];
  maxRecordsPerFrame?: number;
  maxFrameBytes?: number;
}

/** A raw producer on /produce that keeps every frame; terminated when the test finishes. */
class RawProducer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame);
      for (const w of this.waiters) w();
    });
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async open(port: number): Promise<RawProducer> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/produce`);
    onTestFinished(() => ws.terminate());
    const p = new RawProducer(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await p.waitFor((f) => f.type === 'ready', 'the ready frame');
    return p;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Answers after the ready frame, in arrival order. */
  get answers(): Frame[] {
    return this.frames.filter((f) => f.type !== 'ready');
  }

  async waitFor(match: (f: Frame) => boolean, what: string, timeoutMs = 10_000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = this.frames.find(match);
        if (f) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(f);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${what} within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames.slice(-5)).slice(0, 800)}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  async answersFor(n: number, timeoutMs = 15_000): Promise<Frame[]> {
    await this.waitFor(() => this.answers.length >= n, `${n} answers`, timeoutMs);
    return this.answers;
  }
}

describe('/produce', () => {
  it('answers produced only once the records are in the log, with every field as sent', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('orders', { partitions: 3 });
    const p = await RawProducer.open(gateway.ports.http);
    expect(p.frames[0]).toMatchObject({ type: 'ready', maxRecordsPerFrame: 10_000, maxFrameBytes: expect.any(Number) });
    p.send({
      type: 'produce',
      id: 'a',
      topic: 'orders',
      records: [
        { key: 'device-7', value: '{"t":21.5}', headers: { 'content-type': 'application/json', raw: { base64: Buffer.from([0, 1, 2]).toString('base64') } }, timestamp: 1_700_000_000_000 },
        { keyBase64: Buffer.from([255, 0]).toString('base64'), valueBase64: Buffer.from([0xde, 0xad]).toString('base64'), partition: 2 },
        { value: '' },
      ],
    });
    const [answer] = await p.answersFor(1);
    expect(answer).toMatchObject({ type: 'produced', id: 'a' });
    expect(answer!.results).toHaveLength(3);
    expect(answer!.results![1]).toEqual({ partition: 2, offset: 0 });
    // Readable right after the answer: the append had resolved, so the records were committed (and fsync'd).
    const [first, second, third] = answer!.results!.map((r) => gateway.log.read('orders', r.partition, r.offset, { maxRecords: 1 }).records[0]!);
    expect(first).toMatchObject({ key: 'device-7', timestamp: 1_700_000_000_000, headers: { 'content-type': 'application/json', raw: Buffer.from([0, 1, 2]) } });
    expect(first!.value.toString()).toBe('{"t":21.5}');
    expect(second!.key).toEqual(Buffer.from([255, 0]));
    expect(second!.value).toEqual(Buffer.from([0xde, 0xad]));
    expect(third!.value.length).toBe(0);
  });

  it('creates a topic on first use with the configured topic defaults, as ingest does', async () => {
    const gw = await startGateway({ 'log.topicDefaults.partitions': '4' });
    const p = await RawProducer.open(gw.ports.http);
    p.send({ type: 'produce', id: 1, topic: 'fresh', records: [{ value: 'a' }] });
    p.send({ type: 'produce', id: 2, topic: 'fresh', records: [{ value: 'b' }] });
    const answers = await p.answersFor(2);
    expect(answers.map((a) => a.type)).toEqual(['produced', 'produced']);
    expect(gw.log.hasTopic('fresh')).toBe(true);
    const d = gw.log.describeTopic('fresh');
    expect(d.config.partitions).toBe(4);
    expect(d.partitions.reduce((n, x) => n + x.records, 0)).toBe(2);
  });

  it('answers bad frames with what was wrong and what is allowed, in order, and keeps the connection', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('t', { partitions: 2, maxMessageBytes: 1024 });
    const p = await RawProducer.open(gateway.ports.http);
    const cases: [unknown, string, RegExp][] = [
      ['not json', 'INVALID_ARGUMENT', /a frame must be a JSON object, got text that is not JSON/],
      [{ type: 'publish' }, 'INVALID_ARGUMENT', /unknown frame type "publish"; the only type is 'produce'/],
      [{ type: 'produce', id: 3, topic: 't', records: [] }, 'INVALID_ARGUMENT', /"records" must be a list of 1 to 10000 records/],
      [{ type: 'produce', id: 4, topic: 't', records: [{ key: 'k' }] }, 'INVALID_ARGUMENT', /records\[0\] needs "value" \(UTF-8 text\) or "valueBase64"/],
      [{ type: 'produce', id: 5, topic: 't', records: [{ value: 'a', valueBase64: 'YQ==' }] }, 'INVALID_ARGUMENT', /has both "value" and "valueBase64"/],
      [{ type: 'produce', id: 6, topic: 't', records: [{ valueBase64: 'not base64!' }] }, 'INVALID_ARGUMENT', /records\[0\]\.valueBase64 must be base64 text/],
      [{ type: 'produce', id: 7, topic: 't', records: [{ value: 'a', extra: 1 }] }, 'INVALID_ARGUMENT', /unknown key "extra" in records\[0\]; allowed are "key", "keyBase64", "value"/],
      [{ type: 'produce', id: 8, topic: 't', records: [{ value: 'a', timestamp: -1 }] }, 'INVALID_ARGUMENT', /records\[0\]\.timestamp must be milliseconds since the epoch/],
      [{ type: 'produce', id: 9, topic: 'a/b', records: [{ value: 'a' }] }, 'INVALID_TOPIC_NAME', /invalid topic name "a\/b": use 1 to 249 characters/],
      [{ type: 'produce', id: 10, topic: 't', records: [{ value: 'a', partition: 5 }] }, 'UNKNOWN_PARTITION', /records\[0\]\.partition 5 does not exist: topic 't' has partitions 0 to 1/],
      [{ type: 'produce', id: 11, topic: 't', records: [{ value: 'x'.repeat(2000) }] }, 'RECORD_TOO_LARGE', /records\[0\] is \d+ bytes stored, over topic 't' maxMessageBytes of 1024/],
      [{ type: 'produce', id: 12, topic: 't', records: [{ value: 'a', headers: { h: 5 } }] }, 'INVALID_ARGUMENT', /records\[0\]\.headers\['h'\] must be text or \{"base64":"…"\}/],
    ];
    for (const [frame] of cases) p.send(frame);
    p.send({ type: 'produce', id: 'ok', topic: 't', records: [{ value: 'fine' }] });
    const answers = await p.answersFor(cases.length + 1);
    cases.forEach(([, code, message], i) => {
      expect(answers[i]).toMatchObject({ type: 'error', code, retryable: false });
      expect(answers[i]!.message).toMatch(message);
    });
    expect(answers.slice(2, cases.length).map((a) => a.id)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(answers[cases.length]).toMatchObject({ type: 'produced', id: 'ok' });
    expect(p.ws.readyState).toBe(WebSocket.OPEN);
    // Nothing of the refused frames was stored.
    expect(gateway.log.describeTopic('t').partitions.reduce((n, x) => n + x.records, 0)).toBe(1);
  });

  it('refuses more records in one frame than one append takes', async () => {
    const gateway = await startGateway();
    const p = await RawProducer.open(gateway.ports.http);
    p.send({ type: 'produce', id: 1, topic: 'big', records: Array.from({ length: 10_001 }, () => ({ value: '' })) });
    const [answer] = await p.answersFor(1);
    expect(answer).toMatchObject({ type: 'error', id: 1, code: 'INVALID_ARGUMENT', message: expect.stringMatching(/1 to 10000 records \(one frame is one append\), got an array of 10001/) });
  });

  it('says LOG_FULL clearly when the log is full, and keeps the connection', async () => {
    const gateway = await startGateway({ 'log.maxLogBytes': '2000' });
    const p = await RawProducer.open(gateway.ports.http);
    p.send({ type: 'produce', id: 1, topic: 'full', records: [{ value: 'x'.repeat(1500) }] });
    p.send({ type: 'produce', id: 2, topic: 'full', records: [{ value: 'y'.repeat(1500) }] });
    const answers = await p.answersFor(2);
    expect(answers[0]).toMatchObject({ type: 'produced', id: 1 });
    expect(answers[1]).toMatchObject({ type: 'error', id: 2, code: 'LOG_FULL', retryable: true, message: expect.stringMatching(/the log is full/) });
    expect(p.ws.readyState).toBe(WebSocket.OPEN);
  });
});

describe('/produce flow control', () => {
  it('stops reading a connection past its in-flight bound, and answers every frame in order', async () => {
    const dir = tempDir();
    const logger = pino({ level: 'silent' });
    const log = await CommitLog.open({ dir, logger, retentionSchedule: null });
    onTestFinished(() => log.close());
    const maxInFlightBytes = 64 * 1024;
    const service = new ProduceService({ log, logger, maxMessageBytes: 1024 * 1024, maxInFlightBytes });
    const http = await HttpServer.start({ host: '127.0.0.1', port: 0, routes: [service.route()], logger });
    onTestFinished(() => http.close());
    await log.createTopic('flow');
    const p = await RawProducer.open(http.ports.http);
    const frames = 400;
    const value = 'v'.repeat(4000);
    // Sent without waiting: far more than the bound, so the gateway must pause the socket.
    for (let i = 0; i < frames; i++) p.send({ type: 'produce', id: i, topic: 'flow', records: [{ value }, { value }] });
    const answers = await p.answersFor(frames, 30_000);
    expect(answers.map((a) => a.id)).toEqual(Array.from({ length: frames }, (_, i) => i));
    expect(answers.every((a) => a.type === 'produced')).toBe(true);
    // In order in the log too: frame i's records come right after frame i-1's.
    expect(answers.map((a) => a.results![0]!.offset)).toEqual(Array.from({ length: frames }, (_, i) => 2 * i));
    const stats = service.stats();
    expect(stats.pauses).toBeGreaterThan(0);
    // The bound, plus what one socket read brought after the pause: far below the 3.2 MB sent.
    expect(stats.inFlightBytesMax).toBeLessThan(maxInFlightBytes + 256 * 1024);
  });
});

describe('/produce at shutdown', () => {
  it('answers every frame sent before the gateway stops, and every record answered produced is in the log', async () => {
    const dataDir = tempDir();
    const gateway = await startGateway({}, { dataDir });
    await gateway.log.createTopic('t');
    const p = await RawProducer.open(gateway.ports.http);
    const frames = 200;
    // ~5 MB: enough that appends are still committing when the gateway starts to close.
    const pad = 'x'.repeat(500);
    for (let id = 0; id < frames; id++) p.send({ type: 'produce', id, topic: 't', records: Array.from({ length: 50 }, (_, i) => ({ value: `${id}-${i}`, headers: { pad } })) });
    // Stop once the first frames are stored, while later ones are in flight or still waiting.
    await p.waitFor((f) => f.type === 'produced', 'a first produced answer');
    await gateway.close();
    const answers = p.answers;
    expect(answers.map((f) => f.id)).toEqual(Array.from({ length: answers.length }, (_, i) => i));
    const produced = answers.filter((f) => f.type === 'produced').map((f) => f.id as number);
    const refused = answers.filter((f) => f.type === 'error');
    expect(refused.every((f) => f.code === 'GATEWAY_CLOSING')).toBe(true);
    const log = await CommitLog.open({ dir: `${dataDir}`, retentionSchedule: null });
    try {
      const stored = new Set(log.read('t', 0, 0, { maxRecords: frames * 50 }).records.map((r) => r.value.toString()));
      for (const id of produced) expect(stored.has(`${id}-49`)).toBe(true);
      // Nothing stored without its answer: the producer knows the fate of every record it sent.
      expect(stored.size).toBe(produced.length * 50);
    } finally {
      await log.close();
    }
    expect(produced.length).toBeGreaterThan(0);
  });
});
