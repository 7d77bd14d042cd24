import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startGateway } from '../helpers/gateway.js';

/** A frame from /consume as the tests read it (docs/consume.md). */
interface Frame {
  type: string;
  id?: string | number;
  code?: string;
  message?: string;
  memberId?: string;
  generation?: number;
  partitions?: { topic: string; partition: number; offset: number }[];
  topic?: string;
  partition?: number;
  offset?: number;
  records?: { offset: number; key: string | null; valueBase64: string }[];
}

/** A raw consumer on /consume that keeps every frame; closed when the test finishes. */
class RawConsumer {
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

  static async open(port: number): Promise<RawConsumer> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/consume`);
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new RawConsumer(ws);
  }

  /** Opens, joins `group` and waits for the first assignment. */
  static async member(port: number, group: string, topics: string[], extra: Record<string, unknown> = {}): Promise<RawConsumer> {
    const c = await RawConsumer.open(port);
    c.send({ type: 'join', group, topics, clientId: 'test', offsetReset: 'earliest', ...extra });
    await c.waitFor((f) => f.type === 'assignment', 'an assignment');
    return c;
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The first frame (from `from` on) that matches; fails after `timeoutMs`. */
  async waitFor(match: (f: Frame) => boolean, what: string, timeoutMs = 10_000, from = 0): Promise<Frame> {
    const found = () => this.frames.slice(from).find(match);
    return new Promise((resolve, reject) => {
      const check = () => {
        const f = found();
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

  get assignment(): Frame {
    return this.frames.filter((f) => f.type === 'assignment').at(-1)!;
  }

  /** Every record received so far, as "topic/partition@offset". */
  received(): string[] {
    return this.frames.filter((f) => f.type === 'records').flatMap((f) => f.records!.map((r) => `${f.topic}/${f.partition}@${r.offset}`));
  }
}

async function topicWithRecords(gateway: Gateway, topic: string, partitions: number, records: number): Promise<string[]> {
  await gateway.log.createTopic(topic, { partitions });
  const results = await gateway.log.append(topic, Array.from({ length: records }, (_, i) => ({ key: `device-${i % 17}`, value: Buffer.from(`r${i}`) })));
  return results.map((r) => `${topic}/${r.partition}@${r.offset}`).sort();
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('/consume', () => {
  it('gives every record to each group, and each record to one member within a group', async () => {
    const gateway = await startGateway();
    const all = await topicWithRecords(gateway, 'readings', 4, 400);
    const a1 = await RawConsumer.member(gateway.ports.http, 'analytics', ['readings']);
    const a2 = await RawConsumer.member(gateway.ports.http, 'analytics', ['readings']);
    const b = await RawConsumer.member(gateway.ports.http, 'archive', ['readings']);
    // a1's first assignment had all 4 partitions; once a2 joined, each has 2 in the newest generation.
    await until(() => a1.assignment.generation === a2.assignment.generation, 'both members in one generation');
    expect(a1.assignment.partitions).toHaveLength(2);
    expect(a2.assignment.partitions).toHaveLength(2);
    for (const c of [a1, a2, b]) c.send({ type: 'credit', records: 10_000, bytes: 10_000_000 });
    await until(() => a1.received().length + a2.received().length >= 400 && b.received().length >= 400, 'every record');
    const group = [...a1.received(), ...a2.received()].sort();
    expect(group).toEqual(all);
    expect(new Set(a1.received()).size + new Set(a2.received()).size).toBe(400);
    expect(b.received().sort()).toEqual(all);
  });

  it('sends only what the credit allows, and more as records arrive', async () => {
    const gateway = await startGateway();
    await topicWithRecords(gateway, 'slow', 1, 50);
    const c = await RawConsumer.member(gateway.ports.http, 'g', ['slow']);
    c.send({ type: 'credit', records: 20, bytes: 1_000_000 });
    await until(() => c.received().length === 20, '20 records');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(c.received()).toHaveLength(20);
    c.send({ type: 'credit', records: 1000, bytes: 1_000_000 });
    await until(() => c.received().length === 50, '50 records');
    await gateway.log.append('slow', [{ value: Buffer.from('late') }]);
    await until(() => c.received().length === 51, 'the record appended after the consumer caught up');
  });

  it('starts a topic deleted and created again from its beginning, not from the old position', async () => {
    const gateway = await startGateway();
    await topicWithRecords(gateway, 'again', 1, 5);
    const c = await RawConsumer.member(gateway.ports.http, 'g', ['again']);
    c.send({ type: 'credit', records: 1000, bytes: 1_000_000 });
    await until(() => c.received().length === 5, '5 records');
    const seen = c.frames.length;
    await gateway.log.deleteTopic('again');
    await topicWithRecords(gateway, 'again', 1, 2);
    await c.waitFor((f) => f.type === 'assignment' && f.partitions!.length === 1, 'the assignment of the new topic', 10_000, seen);
    await until(() => c.received().length === 7, 'the new topic\'s 2 records');
    expect(c.received().slice(5)).toEqual(['again/0@0', 'again/0@1']);
  });

  it('hands a closed member\'s partitions over from the last commit, nothing skipped, and fences its commits', async () => {
    const gateway = await startGateway();
    const all = await topicWithRecords(gateway, 'orders', 2, 100);
    const first = await RawConsumer.member(gateway.ports.http, 'g', ['orders']);
    const second = await RawConsumer.member(gateway.ports.http, 'g', ['orders']);
    await until(() => first.assignment.generation === second.assignment.generation, 'one generation');
    const gen = first.assignment.generation!;
    const firstPartition = first.assignment.partitions![0]!.partition;
    first.send({ type: 'credit', records: 10, bytes: 1_000_000 });
    await until(() => first.received().length === 10, '10 records');
    first.send({ type: 'commit', id: 'c1', generation: gen, offsets: [{ topic: 'orders', partition: firstPartition, offset: 5 }] });
    expect(await first.waitFor((f) => f.id === 'c1', 'the commit answer')).toMatchObject({ type: 'commit-ok' });

    // A commit for a partition it does not own, and one from an old generation, are refused.
    first.send({ type: 'commit', id: 'c2', generation: gen, offsets: [{ topic: 'orders', partition: 1 - firstPartition, offset: 1 }] });
    expect(await first.waitFor((f) => f.id === 'c2', 'the refusal')).toMatchObject({ type: 'error', code: 'NOT_ASSIGNED' });
    const third = await RawConsumer.member(gateway.ports.http, 'g', ['orders']);
    await until(() => first.assignment.generation! > gen, 'the rebalance reaching the first member');
    first.send({ type: 'commit', id: 'c3', generation: gen, offsets: [{ topic: 'orders', partition: firstPartition, offset: 6 }] });
    expect(await first.waitFor((f) => f.id === 'c3', 'the refusal')).toMatchObject({ type: 'error', code: 'STALE_GENERATION' });
    third.ws.close();

    first.ws.terminate();
    await until(() => second.assignment.partitions!.length === 2, 'the survivor owning both partitions');
    const handedOver = second.assignment.partitions!.find((p) => p.partition === firstPartition)!;
    expect(handedOver.offset).toBe(5);
    second.send({ type: 'credit', records: 10_000, bytes: 10_000_000 });
    const committedPrefix = all.filter((r) => r.startsWith(`orders/${firstPartition}@`) && Number(r.split('@')[1]) < 5);
    await until(() => second.received().length + committedPrefix.length >= 100, 'the rest of the records');
    expect([...second.received(), ...committedPrefix].sort()).toEqual(all);
  });

  it('keeps committed offsets across a gateway restart', async () => {
    const dataDir = tempDir();
    const gateway = await startGateway({}, { dataDir });
    await topicWithRecords(gateway, 'kept', 1, 30);
    const c = await RawConsumer.member(gateway.ports.http, 'g', ['kept']);
    c.send({ type: 'commit', id: 1, generation: c.assignment.generation, offsets: [{ topic: 'kept', partition: 0, offset: 17 }] });
    expect(await c.waitFor((f) => f.id === 1, 'the commit answer')).toMatchObject({ type: 'commit-ok' });
    await gateway.close();
    const again = await startGateway({}, { dataDir });
    const d = await RawConsumer.member(again.ports.http, 'g', ['kept']);
    expect(d.assignment.partitions).toEqual([{ topic: 'kept', partition: 0, offset: 17 }]);
    d.send({ type: 'credit', records: 100, bytes: 1_000_000 });
    await until(() => d.received().length === 13, 'records 17 to 29');
    expect(d.received()[0]).toBe('kept/0@17');
  });

  it('seeks, pauses and resumes partitions of its own assignment only', async () => {
    const gateway = await startGateway();
    await topicWithRecords(gateway, 's', 1, 40);
    const c = await RawConsumer.member(gateway.ports.http, 'g', ['s', 'later'], { offsetReset: 'latest' });
    expect(c.frames.find((f) => f.type === 'joined')).toMatchObject({ notYetCreated: ['later'] });
    expect(c.assignment.partitions).toEqual([{ topic: 's', partition: 0, offset: 40 }]);
    c.send({ type: 'seek', id: 'k', topic: 's', partition: 0, to: { offset: 35 } });
    expect(await c.waitFor((f) => f.id === 'k', 'seek-ok')).toMatchObject({ type: 'seek-ok', offset: 35 });
    c.send({ type: 'pause', partitions: [{ topic: 's', partition: 0 }] });
    c.send({ type: 'credit', records: 100, bytes: 1_000_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(c.received()).toEqual([]);
    c.send({ type: 'resume', partitions: [{ topic: 's', partition: 0 }] });
    await until(() => c.received().length === 5, 'records 35 to 39');
    c.send({ type: 'seek', id: 'bad', topic: 's', partition: 0, to: { offset: 99 } });
    expect(await c.waitFor((f) => f.id === 'bad', 'the refusal')).toMatchObject({ code: 'OFFSET_OUT_OF_RANGE', message: expect.stringMatching(/valid offsets are 0 to 40/) });
    c.send({ type: 'seek', id: 'other', topic: 'nope', partition: 0, to: 'earliest' });
    expect(await c.waitFor((f) => f.id === 'other', 'the refusal')).toMatchObject({ code: 'NOT_ASSIGNED', message: expect.stringMatching(/nope\/0 is not assigned to this member.*its partitions are s\/0/) });
  });

  it('answers bad frames with what is wrong and what is allowed, and keeps the connection', async () => {
    const gateway = await startGateway();
    const c = await RawConsumer.open(gateway.ports.http);
    const answers: [unknown, RegExp][] = [
      ['not json', /a frame must be a JSON object, got text that is not JSON/],
      [{ type: 'credit', records: 1, bytes: 1 }, /a 'credit' frame before 'join': join a group first/],
      [{ type: 'fetch' }, /unknown frame type "fetch"; the types are 'join', 'credit'/],
      [{ type: 'join', group: 'g', topics: [] }, /"topics" must be a list of 1 to 1024 topic names.*a join frame is/],
      [{ type: 'join', group: 'a/b', topics: ['t'] }, /group id must be 1 to 249 of a-z A-Z 0-9 \. _ -/],
      [{ type: 'join', group: 'g', topics: ['t'], strategy: 'range' }, /"strategy" must be "round-robin" or "sticky", got "range"/],
      // The gateway's own readers: joining would commit over a bridge's checkpoint or take a processor's partitions.
      [{ type: 'join', group: 'bridge.central', topics: ['t'] }, /group id 'bridge\.central' starts with 'bridge\.', which the gateway keeps for its bridges; apps may use any id that does not start with 'bridge\.', 'streams\.', 'connect\.'/],
      [{ type: 'join', group: 'streams.climate-1m', topics: ['t'] }, /keeps for its stream processors/],
      [{ type: 'join', group: 'connect.archive', topics: ['t'] }, /keeps for its connectors/],
    ];
    for (const [frame, message] of answers) {
      const from = c.frames.length;
      c.send(frame);
      expect((await c.waitFor((f) => f.type === 'error', 'an error', 5000, from)).message).toMatch(message);
    }
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('bounds what a consumer that stops reading its socket costs the gateway', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('bulk');
    const value = Buffer.alloc(4000, 7);
    for (let i = 0; i < 5; i++) await gateway.log.append('bulk', Array.from({ length: 1000 }, () => ({ value })));
    const c = await RawConsumer.member(gateway.ports.http, 'g', ['bulk']);
    // The client stops reading from its socket: the kernel buffers fill, then the gateway's.
    (c.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    c.send({ type: 'credit', records: 100_000, bytes: 64 * 1024 * 1024 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const stats = gateway.consumeStats();
    expect(stats.sessions).toBe(1);
    // At most the socket bound plus one frame (1 MiB of values, as base64 ~1.4 MB) waits in the gateway.
    expect(stats.bufferedBytesMax).toBeLessThan(1024 * 1024 + 1_500_000);
    expect(stats.bufferedBytesMax).toBeGreaterThan(0);
    (c.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    await until(() => c.received().length === 5000, 'all 5,000 records once the client reads again', 20_000);
  });
});
