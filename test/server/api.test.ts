import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { MAX_CONCURRENT_API_REQUESTS } from '../../src/server/api.js';
import { MAX_API_BODY_BYTES } from '../../src/server/http-json.js';
import { startGateway } from '../helpers/gateway.js';

interface Reply {
  status: number;
  headers: Headers;
  // any: the shapes differ per route, and each test reads the fields it checks.
  json: any;
}

/** One API call with real fetch; a JSON body is sent with Content-Type: application/json. */
async function api(gateway: Gateway, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json', ...headers };
  }
  const res = await fetch(`http://127.0.0.1:${gateway.ports.http}${path}`, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
  // Never a stack trace to a user.
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+/);
  return { status: res.status, headers: res.headers, json: JSON.parse(text) };
}

/** Expects an error answer with this status and code; returns its message. */
function expectError(reply: Reply, status: number, code: string): string {
  expect({ status: reply.status, code: reply.json?.error?.code }).toEqual({ status, code });
  expect(typeof reply.json.error.message).toBe('string');
  return reply.json.error.message as string;
}

/** A raw HTTP/1.1 exchange, for what fetch will not send (a Host header, a malformed target, a stalled body). */
function rawRequest(opts: { host?: string; port: number; method?: string; path: string; headers?: Record<string, string | number>; body?: string; end?: boolean }): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: opts.host ?? '127.0.0.1', port: opts.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers ?? {}, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    if (opts.body !== undefined) req.write(opts.body);
    if (opts.end !== false) req.end();
    else req.flushHeaders();
  });
}

const value = (s: string) => Buffer.from(s);

describe('/api/topics', () => {
  it('creates, lists, describes and deletes topics', async () => {
    const gateway = await startGateway();
    const created = await api(gateway, 'POST', '/api/topics', { name: 'temperature', partitions: 3, retentionMs: 3_600_000, maxMessageBytes: 4096 });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/topics/temperature');
    expect(created.json).toEqual({
      name: 'temperature',
      config: { partitions: 3, retentionMs: 3_600_000, retentionBytes: -1, maxMessageBytes: 4096 },
      partitions: [0, 1, 2].map((partition) => ({ partition, startOffset: 0, highWatermark: 0, records: 0, bytes: 0, oldestTimestamp: null })),
    });
    expect(gateway.log.describeTopic('temperature').config.partitions).toBe(3);

    await gateway.log.append('temperature', [
      { value: value('a'), partition: 1, timestamp: 1_700_000_000_000 },
      { value: value('bb'), partition: 1, timestamp: 1_700_000_001_000 },
      { value: value('c'), partition: 2 },
    ]);
    const described = await api(gateway, 'GET', '/api/topics/temperature');
    expect(described.status).toBe(200);
    const p1 = described.json.partitions[1];
    expect(p1).toMatchObject({ partition: 1, startOffset: 0, highWatermark: 2, records: 2, oldestTimestamp: 1_700_000_000_000 });
    expect(p1.bytes).toBeGreaterThan(3);
    const bytes = gateway.log.describeTopic('temperature').partitions.reduce((sum, p) => sum + p.bytes, 0);

    await api(gateway, 'POST', '/api/topics', { name: 'alerts' });
    const listed = await api(gateway, 'GET', '/api/topics');
    expect(listed.status).toBe(200);
    expect(listed.json).toEqual({
      topics: [
        { name: 'alerts', partitions: 1, records: 0, bytes: 0 },
        { name: 'temperature', partitions: 3, records: 3, bytes },
      ],
    });

    const deleted = await api(gateway, 'DELETE', '/api/topics/temperature');
    expect(deleted).toMatchObject({ status: 200, json: { name: 'temperature', deleted: true } });
    expect(gateway.log.hasTopic('temperature')).toBe(false);
    expect(expectError(await api(gateway, 'GET', '/api/topics/temperature'), 404, 'UNKNOWN_TOPIC')).toMatch(/unknown topic "temperature".*existing topics: alerts/);
    expectError(await api(gateway, 'DELETE', '/api/topics/temperature'), 404, 'UNKNOWN_TOPIC');
    expect((await api(gateway, 'GET', '/api/topics')).json.topics.map((t: { name: string }) => t.name)).toEqual(['alerts']);
  });

  it('refuses an existing topic with 409 and bad topic settings with 400 naming the field', async () => {
    const gateway = await startGateway();
    expect((await api(gateway, 'POST', '/api/topics', { name: 'dup' })).status).toBe(201);
    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'dup', partitions: 2 }), 409, 'TOPIC_EXISTS')).toBe("topic 'dup' already exists");
    expect(gateway.log.describeTopic('dup').config.partitions).toBe(1);

    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'bad name' }), 400, 'INVALID_TOPIC_NAME')).toMatch(/use 1 to 249 characters from a-z/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'p0', partitions: 0 }), 400, 'INVALID_ARGUMENT')).toBe('partitions must be an integer from 1 to 4096, got 0');
    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'p1', partitions: '3' }), 400, 'INVALID_ARGUMENT')).toMatch(/^partitions must be an integer from 1 to 4096, got "3"/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'm', maxMessageBytes: 1 }), 400, 'INVALID_ARGUMENT')).toMatch(/^maxMessageBytes must be an integer from 64 to/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', { name: 'x', replication: 3 }), 400, 'INVALID_ARGUMENT')).toBe(
      'unknown field "replication": the fields are name, partitions, retentionMs, retentionBytes, maxMessageBytes',
    );
    expect(expectError(await api(gateway, 'POST', '/api/topics', { partitions: 3 }), 400, 'INVALID_ARGUMENT')).toMatch(/field 'name' is required/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', ['t']), 400, 'INVALID_ARGUMENT')).toMatch(/the body must be a JSON object such as .*, got an array/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', ''), 400, 'INVALID_ARGUMENT')).toMatch(/got an empty body/);
    expect(gateway.log.listTopics()).toEqual(['dup']);
  });

  it('validates URL-decoded names in the path', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('a.b-c_1');
    expect((await api(gateway, 'GET', '/api/topics/a%2Eb-c_1')).json.name).toBe('a.b-c_1');
    expect(expectError(await api(gateway, 'GET', '/api/topics/bad%20name'), 400, 'INVALID_TOPIC_NAME')).toMatch(/^invalid topic name "bad name"/);
    expect(expectError(await api(gateway, 'GET', '/api/topics/a%2Fb'), 400, 'INVALID_TOPIC_NAME')).toMatch(/^invalid topic name "a\/b"/);
    expect(expectError(await api(gateway, 'DELETE', '/api/topics/%E0%A4%A'), 400, 'INVALID_ARGUMENT')).toMatch(/^the name in the path "%E0%A4%A" is not valid URL encoding/);
    expect(expectError(await api(gateway, 'GET', '/api/groups/bad%20group'), 400, 'INVALID_ARGUMENT')).toMatch(/^group id must be 1 to 249 of a-z A-Z 0-9 \. _ -, got "bad group"/);
    expect(gateway.log.listTopics()).toEqual(['a.b-c_1']);
  });
});

describe('/api request bodies and routes', () => {
  it('refuses oversize, non-JSON and malformed bodies with 413, 415 and 400', async () => {
    const gateway = await startGateway();
    const big = JSON.stringify({ name: 'big', pad: 'x'.repeat(MAX_API_BODY_BYTES) });
    expect(expectError(await api(gateway, 'POST', '/api/topics', big), 413, 'BODY_TOO_LARGE')).toMatch(/over 65536 bytes/);
    // Far past what is drained: answered, and the connection closed.
    const huge = await rawRequest({ port: gateway.ports.http, method: 'POST', path: '/api/topics', headers: { 'content-type': 'application/json', 'content-length': 8 * 1024 * 1024 }, end: false });
    expect(huge.status).toBe(413);
    expect(huge.headers.connection).toBe('close');
    expect(JSON.parse(huge.text).error.code).toBe('BODY_TOO_LARGE');

    expect(expectError(await api(gateway, 'POST', '/api/topics', '{"name": "t",', { 'content-type': 'application/json' }), 400, 'INVALID_ARGUMENT')).toMatch(/^the body is not valid JSON \(/);
    expect(expectError(await api(gateway, 'POST', '/api/topics', 'name=t', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE')).toBe(
      "the body must be JSON sent with Content-Type: application/json; this request has Content-Type 'application/x-www-form-urlencoded'",
    );
    expect(expectError(await api(gateway, 'POST', '/api/topics', '{"name":"t"}', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')).toMatch(/Content-Type 'text\/plain'/);
    const invalidUtf8 = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expect(expectError(await api(gateway, 'POST', '/api/topics', invalidUtf8), 400, 'INVALID_ARGUMENT')).toMatch(/not UTF-8/);
    // A charset parameter is fine.
    expect((await api(gateway, 'POST', '/api/topics', '{"name":"ok"}', { 'content-type': 'application/json; charset=utf-8' })).status).toBe(201);
    expect(gateway.log.listTopics()).toEqual(['ok']);
  });

  it('answers unknown routes with 404 and wrong methods with 405 and an Allow header', async () => {
    const gateway = await startGateway();
    expect(expectError(await api(gateway, 'GET', '/api/nope'), 404, 'UNKNOWN_ROUTE')).toMatch(/^no API route at "\/api\/nope"; the routes are GET \/api\/topics, POST \/api\/topics, GET \/api\/topics\/\{name\}, /);
    expectError(await api(gateway, 'GET', '/api'), 404, 'UNKNOWN_ROUTE');
    expectError(await api(gateway, 'GET', '/api/topics/a/b'), 404, 'UNKNOWN_ROUTE');
    const put = await api(gateway, 'PUT', '/api/topics', { name: 't' });
    expect(expectError(put, 405, 'METHOD_NOT_ALLOWED')).toBe('PUT is not served at /api/topics; use GET or POST');
    expect(put.headers.get('allow')).toBe('GET, POST');
    const get = await api(gateway, 'GET', '/api/groups/g/reset-offsets');
    expectError(get, 405, 'METHOD_NOT_ALLOWED');
    expect(get.headers.get('allow')).toBe('POST');
    // A trailing slash is the same route.
    expect((await api(gateway, 'GET', '/api/topics/')).json).toEqual({ topics: [] });

    // Outside /api, the plain 404 names the endpoints, the API included.
    const other = await fetch(`http://127.0.0.1:${gateway.ports.http}/apix`);
    expect(other.status).toBe(404);
    // WebSocket routing is as before: /consume upgrades, /api does not.
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.ports.http}/consume`);
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
    const refused = new WebSocket(`ws://127.0.0.1:${gateway.ports.http}/api/topics`);
    const status = await new Promise<number>((resolve) => refused.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)).once('error', () => resolve(-1)));
    expect(status).toBe(404);
    expect(await other.text()).toMatch(/^edgelog: nothing at \/apix\. WebSocket endpoints: \/mqtt, \/ingest, \/consume.*; HTTP endpoints: \/api, \/metrics, \/healthz, \/readyz, \/, \/dashboard\n$/);
  });

  it('survives a request target that is not a URL', async () => {
    const gateway = await startGateway();
    const socket = connect(gateway.ports.http, '127.0.0.1');
    onTestFinished(() => {
      socket.destroy();
    });
    let answer = '';
    socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.end('GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 404 /);
    expect(answer).toContain('edgelog: nothing at //[.');
    expect((await api(gateway, 'GET', '/api/topics')).status).toBe(200);
  });

  it('answers 503 LOG_CLOSED once the log is closed', async () => {
    const gateway = await startGateway();
    await gateway.log.close();
    const reply = await api(gateway, 'GET', '/api/topics');
    expect(expectError(reply, 503, 'LOG_CLOSED')).toBe('the log is closed');
    expect(reply.json.error.retryable).toBe(false);
    expect(reply.headers.get('retry-after')).toBe('1');
  });

  it(`answers 503 API_BUSY past ${MAX_CONCURRENT_API_REQUESTS} requests at once, and serves again after`, async () => {
    const gateway = await startGateway();
    // Requests whose bodies never finish hold their slots.
    const held = Array.from({ length: MAX_CONCURRENT_API_REQUESTS }, () => {
      const req = httpRequest({ host: '127.0.0.1', port: gateway.ports.http, method: 'POST', path: '/api/topics', headers: { 'content-type': 'application/json', 'content-length': 100 } });
      req.on('error', () => {});
      req.write('{"name":');
      onTestFinished(() => void req.destroy());
      return req;
    });
    let busy: Reply | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      busy = await api(gateway, 'GET', '/api/topics');
      if (busy.status === 503) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(expectError(busy!, 503, 'API_BUSY')).toBe(`the admin API is already handling ${MAX_CONCURRENT_API_REQUESTS} requests, the most at once (${MAX_CONCURRENT_API_REQUESTS}); retry shortly`);
    expect(busy!.json.error.retryable).toBe(true);
    expect(busy!.headers.get('retry-after')).toBe('1');
    for (const req of held) req.destroy();
    let after: Reply | undefined;
    for (let attempt = 0; attempt < 100; attempt++) {
      after = await api(gateway, 'GET', '/api/topics');
      if (after.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(after!.status).toBe(200);
  });
});

// Who may call /api (the admin token, loopback, Origin): test/server/access.test.ts.

describe('/api/groups', () => {
  async function groupFixture(): Promise<Gateway> {
    const gateway = await startGateway();
    await gateway.log.createTopic('readings', { partitions: 2 });
    for (let i = 0; i < 5; i++) {
      await gateway.log.append('readings', [
        { value: value(`p0-${i}`), partition: 0, timestamp: 1_000_000 + i * 1000 },
        { value: value(`p1-${i}`), partition: 1, timestamp: 1_000_000 + i * 1000 },
      ]);
    }
    return gateway;
  }

  function join(gateway: Gateway, groupId: string): string {
    const { memberId } = gateway.groups.join({ groupId, clientId: 'app', topics: ['readings'], onAssignment: () => {} });
    onTestFinished(() => gateway.groups.leave(groupId, memberId));
    return memberId;
  }

  it('lists live groups and groups with only committed offsets, and describes them with lag', async () => {
    const gateway = await groupFixture();
    const memberId = join(gateway, 'live');
    await gateway.log.commitOffsets('stored', [{ topic: 'readings', partition: 0, offset: 2 }]);
    await new Promise((resolve) => setImmediate(resolve));

    const listed = await api(gateway, 'GET', '/api/groups');
    expect(listed.status).toBe(200);
    expect(listed.json).toEqual({
      groups: [
        { groupId: 'live', state: 'stable', members: 1 },
        { groupId: 'stored', state: 'empty', members: 0 },
      ],
    });

    const live = await api(gateway, 'GET', '/api/groups/live');
    expect(live.status).toBe(200);
    expect(live.json).toMatchObject({
      groupId: 'live',
      state: 'stable',
      strategy: 'sticky',
      members: [{ memberId, clientId: 'app', topics: ['readings'], assignment: [{ topic: 'readings', partition: 0 }, { topic: 'readings', partition: 1 }] }],
      offsets: [
        { topic: 'readings', partition: 0, committed: null, highWatermark: 5, lag: null },
        { topic: 'readings', partition: 1, committed: null, highWatermark: 5, lag: null },
      ],
    });
    const stored = await api(gateway, 'GET', '/api/groups/stored');
    expect(stored.json).toEqual({
      groupId: 'stored',
      state: 'empty',
      generation: 0,
      strategy: null,
      members: [],
      offsets: [{ topic: 'readings', partition: 0, committed: 2, highWatermark: 5, lag: 3 }],
    });
    expect(expectError(await api(gateway, 'GET', '/api/groups/nobody'), 404, 'UNKNOWN_GROUP')).toBe(
      "unknown group 'nobody': it has no members and no committed offsets (edgelog groups list shows the groups)",
    );
  });

  it('refuses reset-offsets while the group has a member, and resets every partition once it has none', async () => {
    const gateway = await groupFixture();
    const memberId = join(gateway, 'g');
    const refused = await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: 'earliest' });
    expect(expectError(refused, 409, 'GROUP_NOT_EMPTY')).toBe(
      `group 'g' has 1 active member(s) (${memberId}): stop its consumers (or wait for their session timeout) before resetting its offsets`,
    );
    expect(gateway.log.committedOffsets('g')).toEqual([]);

    gateway.groups.leave('g', memberId);
    const latest = await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: 'latest' });
    expect(latest).toMatchObject({ status: 200, json: { groupId: 'g', topic: 'readings', offsets: [{ partition: 0, offset: 5 }, { partition: 1, offset: 5 }] } });
    expect(gateway.log.committedOffsets('g').map((c) => c.offset)).toEqual([5, 5]);
    const earliest = await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: 'earliest' });
    expect(earliest.json.offsets).toEqual([{ partition: 0, offset: 0 }, { partition: 1, offset: 0 }]);
    // Clamped into [startOffset, highWatermark], as Kafka does.
    expect((await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: { offset: 3 } })).json.offsets).toEqual([{ partition: 0, offset: 3 }, { partition: 1, offset: 3 }]);
    expect((await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: { offset: 99 } })).json.offsets).toEqual([{ partition: 0, offset: 5 }, { partition: 1, offset: 5 }]);
    expect((await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', to: { timestamp: 1_002_500 } })).json.offsets).toEqual([{ partition: 0, offset: 3 }, { partition: 1, offset: 3 }]);
    expect((await api(gateway, 'POST', '/api/groups/g/reset-offsets', { topic: 'readings', partition: 1, to: { offset: 4 } })).json.offsets).toEqual([{ partition: 1, offset: 4 }]);
    const described = await api(gateway, 'GET', '/api/groups/g');
    expect(described.json.offsets.map((o: { lag: number }) => o.lag)).toEqual([2, 1]);
  });

  it('refuses bad reset-offsets requests naming the field', async () => {
    const gateway = await groupFixture();
    const reset = (body: unknown) => api(gateway, 'POST', '/api/groups/g/reset-offsets', body);
    expect(expectError(await reset({ topic: 'readings' }), 400, 'INVALID_ARGUMENT')).toMatch(/^field 'to' is required: "earliest", "latest", \{"offset": N\}/);
    expect(expectError(await reset({ topic: 'readings', to: 'newest' }), 400, 'INVALID_ARGUMENT')).toMatch(/^field 'to' must be "earliest", "latest", .*, got "newest"$/);
    expect(expectError(await reset({ topic: 'readings', to: { offset: -1 } }), 400, 'INVALID_ARGUMENT')).toBe("field 'to.offset' must be a whole number ≥ 0, got -1");
    expect(expectError(await reset({ topic: 'readings', to: { timestamp: 'yesterday' } }), 400, 'INVALID_ARGUMENT')).toMatch(/^field 'to.timestamp' must be milliseconds since the epoch/);
    expect(expectError(await reset({ topic: 'readings', to: { offset: 1, timestamp: 2 } }), 400, 'INVALID_ARGUMENT')).toMatch(/got \{"offset":1,"timestamp":2\}$/);
    expect(expectError(await reset({ to: 'earliest' }), 400, 'INVALID_ARGUMENT')).toMatch(/^field 'topic' is required/);
    expect(expectError(await reset({ topic: 'missing', to: 'earliest' }), 404, 'UNKNOWN_TOPIC')).toMatch(/^unknown topic "missing"/);
    expect(expectError(await reset({ topic: 'readings', partition: '1', to: 'earliest' }), 400, 'INVALID_ARGUMENT')).toBe(
      `field 'partition' must be a whole number ≥ 0 (one partition of the topic; leave it out for all), got "1"`,
    );
    expect(expectError(await reset({ topic: 'readings', partition: 2, to: 'earliest' }), 400, 'UNKNOWN_PARTITION')).toBe("topic 'readings' has no partition 2: its partitions are 0 to 1");
    expect(expectError(await api(gateway, 'POST', '/api/groups/g/reset-offsets', 'to=earliest', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE')).toMatch(/Content-Type 'text\/plain'/);
    expect(gateway.log.listGroups()).toEqual([]);
    // A group that does not exist yet can be positioned before its consumers start.
    expect((await reset({ topic: 'readings', to: 'latest' })).json.offsets).toEqual([{ partition: 0, offset: 5 }, { partition: 1, offset: 5 }]);
    expect(gateway.log.listGroups()).toEqual(['g']);
  });

  it('deletes an empty group, refusing while it has a member', async () => {
    const gateway = await groupFixture();
    await gateway.log.commitOffsets('g', [
      { topic: 'readings', partition: 0, offset: 1 },
      { topic: 'readings', partition: 1, offset: 2 },
    ]);
    const memberId = join(gateway, 'g');
    expect(expectError(await api(gateway, 'DELETE', '/api/groups/g'), 409, 'GROUP_NOT_EMPTY')).toMatch(/before deleting it$/);
    expect(gateway.log.committedOffsets('g')).toHaveLength(2);

    gateway.groups.leave('g', memberId);
    expect(await api(gateway, 'DELETE', '/api/groups/g')).toMatchObject({ status: 200, json: { groupId: 'g', deletedOffsets: 2 } });
    expect(gateway.log.listGroups()).toEqual([]);
    expectError(await api(gateway, 'DELETE', '/api/groups/g'), 404, 'UNKNOWN_GROUP');
    expectError(await api(gateway, 'GET', '/api/groups/g'), 404, 'UNKNOWN_GROUP');
  });
});
