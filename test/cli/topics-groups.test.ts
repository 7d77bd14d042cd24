import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/loopback.js';
import { spawnTs } from '../helpers/process.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `edgelog ARGS` and waits for it to exit; `gateway` adds --gateway with its HTTP address. */
async function run(args: string[], gateway?: Gateway, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; out: string }> {
  const proc = spawnTs(CLI, [...args, ...(gateway ? ['--gateway', `http://127.0.0.1:${gateway.ports.http}`] : [])], { EDGELOG_GATEWAY: undefined, ...env });
  const code = await proc.exited;
  return { code, out: proc.output() };
}

/** The output's lines split into whitespace-separated cells. */
function cells(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/));
}

describe('edgelog topics', () => {
  it('creates, lists, describes and deletes topics through the gateway', async () => {
    const gateway = await startGateway();
    const created = await run(['topics', 'create', 'temperature', '--partitions', '3', '--retention-ms', '86400000', '--max-message-bytes', '2048'], gateway);
    expect(created.code).toBe(0);
    expect(created.out).toMatch(/^Created topic temperature\.\nTopic temperature: 3 partition\(s\), retention 86400000 ms \(1 d\), no size limit, records up to 2048 bytes\n\n/);
    expect(gateway.log.describeTopic('temperature').config).toEqual({ partitions: 3, retentionMs: 86_400_000, retentionBytes: -1, maxMessageBytes: 2048 });

    await gateway.log.append('temperature', [
      { value: Buffer.from('21.5'), partition: 2, timestamp: Date.UTC(2026, 10, 21, 8, 0, 0) },
      { value: Buffer.from('21.7'), partition: 2 },
    ]);
    const bytes = gateway.log.describeTopic('temperature').partitions[2]!.bytes;
    const [list, described, json, duplicate] = await Promise.all([
      run(['topics', 'list'], gateway),
      run(['topics', 'describe', 'temperature'], gateway),
      run(['topics', 'describe', 'temperature', '--json'], gateway),
      run(['topics', 'create', 'temperature'], gateway),
    ]);
    expect(list).toEqual({ code: 0, out: `TOPIC        PARTITIONS  RECORDS  BYTES\ntemperature  3           2        ${bytes}\n` });
    expect(described.code).toBe(0);
    expect(cells(described.out).slice(1)).toEqual([
      ['PARTITION', 'START-OFFSET', 'HIGH-WATERMARK', 'RECORDS', 'BYTES', 'OLDEST-TIMESTAMP'],
      ['0', '0', '0', '0', '0', '-'],
      ['1', '0', '0', '0', '0', '-'],
      ['2', '0', '2', '2', String(bytes), '2026-11-21T08:00:00.000Z'],
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual(gateway.log.describeTopic('temperature'));
    expect(duplicate).toEqual({ code: 1, out: "edgelog: topic 'temperature' already exists (TOPIC_EXISTS)\n" });

    const deleted = await run(['topics', 'delete', 'temperature'], gateway);
    expect(deleted).toEqual({ code: 0, out: 'Deleted topic temperature.\n' });
    expect(gateway.log.hasTopic('temperature')).toBe(false);
    const [gone, empty] = await Promise.all([run(['topics', 'describe', 'temperature'], gateway), run(['topics', 'list'], gateway)]);
    expect(gone).toEqual({ code: 1, out: 'edgelog: unknown topic "temperature": create it first (existing topics: none) (UNKNOWN_TOPIC)\n' });
    expect(empty.out).toMatch(/^No topics yet/);
  });

  it('answers bad flags with the usage and exit 2, and values the gateway refuses with its message and exit 1', async () => {
    const gateway = await startGateway();
    const [notNumber, unknownFlag, wrongCommand, noName, help, range] = await Promise.all([
      run(['topics', 'create', 't', '--partitions', 'three'], gateway),
      run(['topics', 'list', '--partitions', '3'], gateway),
      run(['topics', 'rename', 't'], gateway),
      run(['topics', 'describe'], gateway),
      run(['topics', '--help']),
      run(['topics', 'create', 't', '--partitions', '0'], gateway),
    ]);
    expect(notNumber.code).toBe(2);
    expect(notNumber.out).toMatch(/^edgelog: topics create: --partitions must be a whole number, got 'three'\n\nUsage: edgelog topics /);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.out).toMatch(/^edgelog: topics list: option --partitions does not apply\n\nUsage: edgelog topics /);
    expect(wrongCommand.code).toBe(2);
    expect(wrongCommand.out).toMatch(/^edgelog: topics: unknown command 'rename': the commands are list, create, describe and delete\n/);
    expect(noName.code).toBe(2);
    expect(noName.out).toMatch(/^edgelog: topics describe: give exactly one topic NAME\n/);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: edgelog topics <list\|create\|describe\|delete> \[options\]\n[\s\S]*--gateway URL/);
    expect(range).toEqual({ code: 1, out: 'edgelog: partitions must be an integer from 1 to 4096, got 0 (INVALID_ARGUMENT)\n' });
    expect(gateway.log.listTopics()).toEqual([]);
  });
});

describe('edgelog groups', () => {
  it('describes a group with its lag and member, and lists groups', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('readings', { partitions: 2 });
    for (let i = 0; i < 4; i++) await gateway.log.append('readings', [{ value: Buffer.from(`r${i}`), partition: 0 }]);
    await gateway.log.append('readings', [{ value: Buffer.from('x'), partition: 1 }]);
    await gateway.log.commitOffsets('analytics', [{ topic: 'readings', partition: 0, offset: 1 }]);
    await gateway.log.commitOffsets('archive', [{ topic: 'readings', partition: 0, offset: 4 }]);
    const { memberId } = gateway.groups.join({ groupId: 'analytics', clientId: 'app', topics: ['readings'], onAssignment: () => {} });
    onTestFinished(() => gateway.groups.leave('analytics', memberId));

    const [described, list, json] = await Promise.all([
      run(['groups', 'describe', 'analytics'], gateway),
      run(['groups', 'list'], gateway),
      run(['groups', 'describe', 'archive', '--json'], gateway),
    ]);
    expect(described.code).toBe(0);
    const lines = cells(described.out);
    expect(described.out).toMatch(/^Group analytics: stable, generation 1, strategy sticky, 1 member\(s\)\n\n/);
    expect(lines.slice(1, 4)).toEqual([
      ['TOPIC', 'PARTITION', 'CURRENT-OFFSET', 'LOG-END-OFFSET', 'LAG', 'MEMBER'],
      ['readings', '0', '1', '4', '3', memberId],
      ['readings', '1', '-', '1', '-', memberId],
    ]);
    expect(lines[4]).toEqual(['MEMBER', 'CLIENT-ID', 'TOPICS', 'PARTITIONS', 'LAST-SEEN-MS-AGO']);
    expect(lines[5]!.slice(0, 4)).toEqual([memberId, 'app', 'readings', '2']);
    // Columns line up: each header starts where its values start.
    const [header, row] = described.out.split('\n').slice(2, 4);
    expect(row!.indexOf(' 3 ') + 1).toBe(header!.indexOf('LAG'));

    expect(list).toEqual({ code: 0, out: 'GROUP      STATE   MEMBERS\nanalytics  stable  1\narchive    empty   0\n' });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual({
      groupId: 'archive',
      state: 'empty',
      generation: 0,
      strategy: null,
      members: [],
      offsets: [{ topic: 'readings', partition: 0, committed: 4, highWatermark: 4, lag: 0 }],
    });
  });

  it('resets offsets only once the group has no members, and deletes an empty group', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('readings');
    const start = Date.UTC(2026, 10, 21, 8, 0, 0);
    for (let i = 0; i < 6; i++) await gateway.log.append('readings', [{ value: Buffer.from(`r${i}`), timestamp: start + i * 60_000 }]);
    const { memberId } = gateway.groups.join({ groupId: 'g', clientId: 'app', topics: ['readings'], onAssignment: () => {} });
    onTestFinished(() => gateway.groups.leave('g', memberId));

    const refused = await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--to-earliest'], gateway);
    expect(refused.code).toBe(1);
    expect(refused.out).toBe(`edgelog: group 'g' has 1 active member(s) (${memberId}): stop its consumers (or wait for their session timeout) before resetting its offsets (GROUP_NOT_EMPTY)\n`);
    expect((await run(['groups', 'delete', 'g'], gateway)).out).toMatch(/before deleting it \(GROUP_NOT_EMPTY\)\n$/);
    expect(gateway.log.committedOffsets('g')).toEqual([]);

    gateway.groups.leave('g', memberId);
    const latest = await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--to-latest'], gateway);
    expect(latest).toEqual({ code: 0, out: 'Reset the offsets of group g on topic readings:\n\nTOPIC     PARTITION  NEW-OFFSET\nreadings  0          6\n' });
    const byTime = await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--to-datetime', '2026-11-21T08:02:30Z', '--json'], gateway);
    expect(JSON.parse(byTime.out)).toEqual({ groupId: 'g', topic: 'readings', offsets: [{ partition: 0, offset: 3 }] });
    const byOffset = await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--to-offset', '1', '--json'], gateway);
    expect(JSON.parse(byOffset.out).offsets).toEqual([{ partition: 0, offset: 1 }]);
    expect(gateway.log.committedOffsets('g').map((c) => c.offset)).toEqual([1]);
    const onePartition = await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--partition', '0', '--to-offset', '2', '--json'], gateway);
    expect(JSON.parse(onePartition.out).offsets).toEqual([{ partition: 0, offset: 2 }]);
    expect(await run(['groups', 'reset-offsets', 'g', '--topic', 'readings', '--partition', '3', '--to-earliest'], gateway)).toEqual({
      code: 1,
      out: "edgelog: topic 'readings' has no partition 3: its partitions are 0 to 0 (UNKNOWN_PARTITION)\n",
    });
    expect(gateway.log.committedOffsets('g').map((c) => c.offset)).toEqual([2]);

    const deleted = await run(['groups', 'delete', 'g'], gateway);
    expect(deleted).toEqual({ code: 0, out: 'Deleted group g (1 committed offset(s)).\n' });
    expect(gateway.log.listGroups()).toEqual([]);
    expect(await run(['groups', 'describe', 'g'], gateway)).toEqual({
      code: 1,
      out: "edgelog: unknown group 'g': it has no members and no committed offsets (edgelog groups list shows the groups) (UNKNOWN_GROUP)\n",
    });
  });

  it('answers bad reset-offsets flags with the usage and exit 2', async () => {
    const gateway = await startGateway();
    const results = await Promise.all([
      run(['groups', 'reset-offsets', 'g', '--topic', 't'], gateway),
      run(['groups', 'reset-offsets', 'g', '--topic', 't', '--to-earliest', '--to-latest'], gateway),
      run(['groups', 'reset-offsets', 'g', '--to-earliest'], gateway),
      run(['groups', 'reset-offsets', 'g', '--topic', 't', '--to-offset=-3'], gateway),
      run(['groups', 'reset-offsets', 'g', '--topic', 't', '--to-datetime', 'yesterday'], gateway),
      run(['groups', 'list', '--to-latest'], gateway),
      run(['groups', 'describe', '--bogus'], gateway),
      run(['groups', 'reset-offsets', 'g', '--topic', 't', '--partition', 'one', '--to-earliest'], gateway),
    ]);
    expect(results.map((r) => r.code)).toEqual([2, 2, 2, 2, 2, 2, 2, 2]);
    expect(results.map((r) => r.out.split('\n')[0])).toEqual([
      'edgelog: groups reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME',
      'edgelog: groups reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME (got --to-earliest and --to-latest)',
      'edgelog: groups reset-offsets: --topic TOPIC is required',
      "edgelog: groups reset-offsets: --to-offset must be a whole number ≥ 0, got '-3'",
      "edgelog: groups reset-offsets: --to-datetime must be an ISO 8601 date and time such as 2026-11-21T08:00:00Z (or 2026-11-21), got 'yesterday'",
      'edgelog: groups list: option --to-latest does not apply',
      expect.stringMatching(/^edgelog: Unknown option '--bogus'/),
      "edgelog: groups reset-offsets: --partition must be a whole number ≥ 0, got 'one'",
    ]);
    for (const r of results) expect(r.out).toContain('\n\nUsage: edgelog groups ');
    expect(gateway.log.listGroups()).toEqual([]);
  });
});

describe('an unreachable gateway', () => {
  it('exits 1 with one line saying what to check', async () => {
    const port = await freePort();
    const [flag, env] = await Promise.all([
      run(['topics', 'list', '--gateway', `http://127.0.0.1:${port}`]),
      run(['groups', 'list'], undefined, { EDGELOG_GATEWAY: `http://127.0.0.1:${port}` }),
    ]);
    const line = `edgelog: cannot reach the gateway at http://127.0.0.1:${port} (ECONNREFUSED): is it running (edgelog start), and is that its HTTP port? Set it with --gateway URL or EDGELOG_GATEWAY (GATEWAY_UNREACHABLE)\n`;
    expect(flag).toEqual({ code: 1, out: line });
    expect(env).toEqual({ code: 1, out: line });
  });

  it('exits 1 when what answers is not an edgelog gateway', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<html>not here</html>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as { port: number };
    const result = await run(['topics', 'describe', 't', '--gateway', `http://127.0.0.1:${port}`]);
    expect(result).toEqual({
      code: 1,
      out: `edgelog: http://127.0.0.1:${port} answered GET /api/topics/t with HTTP 404 but not with the edgelog API's JSON: is that the gateway's HTTP port? Set it with --gateway URL or EDGELOG_GATEWAY (GATEWAY_UNREACHABLE)\n`,
    });
  });
});
