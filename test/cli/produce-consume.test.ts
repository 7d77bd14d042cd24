import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/loopback.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';
import { consume as consumeCommand, parseSince } from '../../src/cli/consume.js';
import { produce as produceCommand } from '../../src/cli/produce.js';
import { UsageError } from '../../src/cli/usage-error.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Run {
  proc: Spawned;
  stdout: () => string;
  stderr: () => string;
}

/** Spawns `edgelog ARGS --gateway <gateway>`, keeping stdout and stderr apart. */
function edgelog(args: string[], gateway: Gateway | string): Run {
  const url = typeof gateway === 'string' ? gateway : `http://127.0.0.1:${gateway.ports.http}`;
  const proc = spawnTs(CLI, [...args, '--gateway', url]);
  let stdout = '';
  let stderr = '';
  proc.child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { proc, stdout: () => stdout, stderr: () => stderr };
}

async function produce(gateway: Gateway, topic: string, input: string | Buffer, extra: string[] = []): Promise<Run & { code: number | string }> {
  const run = edgelog(['produce', topic, ...extra], gateway);
  run.proc.child.stdin.end(input);
  return { ...run, code: await run.proc.exited };
}

async function consume(gateway: Gateway | string, args: string[]): Promise<Run & { code: number | string }> {
  const run = edgelog(['consume', ...args], gateway);
  return { ...run, code: await run.proc.exited };
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('edgelog produce | edgelog consume', () => {
  it('stores each stdin line as a record, durably, and prints them back as JSON', async () => {
    const gateway = await startGateway();
    const input = Buffer.concat([Buffer.from('first\nsecond line\r\n\n{"t":21.5}\n'), Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from('no newline at the end')]);
    const produced = await produce(gateway, 'lines', input, ['--key', 'sensor-9']);
    expect(produced.code).toBe(0);
    expect(produced.stderr()).toBe("Produced 6 record(s) to topic 'lines' (partitions 0).\n");
    const stored = gateway.log.read('lines', 0, 0).records;
    expect(stored.map((r) => r.value.toString('latin1'))).toEqual(['first', 'second line', '', '{"t":21.5}', '\xff\xfe', 'no newline at the end']);
    expect(stored.every((r) => r.key === 'sensor-9')).toBe(true);

    const consumed = await consume(gateway, ['lines', '--from-beginning', '--max', '6', '--json']);
    expect(consumed.code).toBe(0);
    const lines = jsonLines(consumed.stdout());
    expect(lines).toHaveLength(6);
    expect(lines[0]).toEqual({ topic: 'lines', partition: 0, offset: 0, timestamp: stored[0]!.timestamp, key: 'sensor-9', value: 'first', headers: {} });
    expect(lines.map((l) => l['value'] ?? null)).toEqual(['first', 'second line', '', '{"t":21.5}', null, 'no newline at the end']);
    expect(lines[4]).toMatchObject({ valueBase64: Buffer.from([0xff, 0xfe]).toString('base64') });
    expect(consumed.stderr()).toBe('Printed 6 record(s).\n');

    const plain = await consume(gateway, ['lines', '--from-beginning', '--max', '2']);
    expect(plain.stdout()).toBe('first\nsecond line\n');
  });

  it('sends lines as they come, without waiting for the end of stdin', async () => {
    const gateway = await startGateway();
    const run = edgelog(['produce', 'typed'], gateway);
    run.proc.child.stdin.write('one\ntwo\n');
    await waitFor(() => gateway.log.hasTopic('typed') && gateway.log.describeTopic('typed').partitions[0]!.records === 2, 'the first two lines stored while stdin is open', 15_000);
    run.proc.child.stdin.end('three\n');
    expect(await run.proc.exited).toBe(0);
    expect(gateway.log.describeTopic('typed').partitions[0]!.records).toBe(3);
  });

  it('streams a long stdin in batches', async () => {
    const gateway = await startGateway();
    const count = 30_000;
    const input = Array.from({ length: count }, (_, i) => `reading ${i} ${'x'.repeat(40)}`).join('\n');
    const produced = await produce(gateway, 'long', `${input}\n`);
    expect(produced.code).toBe(0);
    const d = gateway.log.describeTopic('long');
    expect(d.partitions[0]!.records).toBe(count);
    expect(gateway.log.read('long', 0, count - 1).records[0]!.value.toString()).toMatch(new RegExp(`^reading ${count - 1} `));
    // Batches, not one append per line.
    expect(gateway.log.commitCount).toBeLessThan(count / 100);
  });

  it('with --group commits what it printed, so the next run goes on after it; without, commits nothing', async () => {
    const gateway = await startGateway();
    expect((await produce(gateway, 'g', 'a\nb\nc\nd\ne\n')).code).toBe(0);
    const first = await consume(gateway, ['g', '--group', 'ops', '--from-beginning', '--max', '3']);
    expect(first.stdout()).toBe('a\nb\nc\n');
    expect(gateway.log.committedOffsets('ops')).toMatchObject([{ topic: 'g', partition: 0, offset: 3 }]);
    const second = await consume(gateway, ['g', '--group', 'ops', '--from-beginning', '--max', '2']);
    expect(second.stdout()).toBe('d\ne\n');
    expect((await consume(gateway, ['g', '--from-beginning', '--max', '1'])).stdout()).toBe('a\n');
    expect(gateway.log.listGroups()).toEqual(['ops']);
  });

  it('starts at --offset N or --since a time', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('when');
    const now = Date.now();
    await gateway.log.append('when', [
      { value: Buffer.from('old'), timestamp: now - 3 * 3_600_000 },
      { value: Buffer.from('older-ish'), timestamp: now - 2 * 3_600_000 },
      { value: Buffer.from('recent'), timestamp: now - 60_000 },
      { value: Buffer.from('newest'), timestamp: now },
    ]);
    expect((await consume(gateway, ['when', '--offset', '1', '--max', '2'])).stdout()).toBe('older-ish\nrecent\n');
    expect((await consume(gateway, ['when', '--since', '1h', '--max', '2'])).stdout()).toBe('recent\nnewest\n');
    expect((await consume(gateway, ['when', '--since', new Date(now - 2.5 * 3_600_000).toISOString(), '--max', '1'])).stdout()).toBe('older-ish\n');
    const beyond = await consume(gateway, ['when', '--offset', '9']);
    expect(beyond.code).toBe(1);
    expect(beyond.stderr()).toMatch(/^edgelog: offset 9 is out of range for topic 'when' partition 0: valid offsets are 0 to 4 .*\(OFFSET_OUT_OF_RANGE\)\n$/);
  });

  it('runs until SIGINT, then leaves its group and exits 0', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('follow');
    const run = edgelog(['consume', 'follow', '--group', 'tail'], gateway);
    await waitFor(() => gateway.groups.describe('tail').members.length === 1, 'the console consumer to join', 15_000);
    await gateway.log.append('follow', [{ value: Buffer.from('live') }]);
    await run.proc.waitForLine(/^live$/);
    await waitFor(() => gateway.log.committedOffsets('tail')[0]?.offset === 1, 'the printed record to be committed');
    run.proc.child.kill('SIGINT');
    expect(await run.proc.exited).toBe(0);
    expect(run.stderr()).toBe('Printed 1 record(s).\n');
    expect(gateway.groups.describe('tail').members).toEqual([]);
  });

  it('refuses a line the topic cannot take, naming the line, and exits 1', async () => {
    const gateway = await startGateway();
    await gateway.log.createTopic('narrow', { maxMessageBytes: 256 });
    const run = await produce(gateway, 'narrow', `short\n${'y'.repeat(1000)}\n`);
    expect(run.code).toBe(1);
    expect(run.stderr()).toMatch(/^edgelog: line 2 is \d+ bytes stored, over topic 'narrow' maxMessageBytes of 256; no line before it was stored \(RECORD_TOO_LARGE\)\n$/);
  });

  it('says in one line when the gateway cannot be reached, and exits 1', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const runs = [await consume(url, ['t']), await (async () => {
      const r = edgelog(['produce', 't'], url);
      r.proc.child.stdin.end('x\n');
      return { ...r, code: await r.proc.exited };
    })()];
    for (const run of runs) {
      expect(run.code).toBe(1);
      expect(run.stderr()).toMatch(new RegExp(`^edgelog: cannot reach the gateway at ${url} \\(ECONNREFUSED\\): is it running \\(edgelog start\\).*\\(GATEWAY_UNREACHABLE\\)\\n$`));
    }
  });

  it('refuses flags that contradict each other with the usage, exit 2', async () => {
    const gateway = await startGateway();
    const run = edgelog(['consume', 't', '--from-beginning', '--offset', '3'], gateway);
    expect(await run.proc.exited).toBe(2);
    expect(run.stderr()).toMatch(/^edgelog: --from-beginning and --offset cannot be combined: give at most one place to start\n\nUsage: edgelog consume TOPIC/);
    // The other refusals come from the same parsing, before any connection: checked in this process.
    const cases: [(argv: string[]) => Promise<void>, string[], RegExp][] = [
      [consumeCommand, ['t', '--offset', '3', '--since', '1h'], /^--offset and --since cannot be combined/],
      [consumeCommand, ['t', '--since', 'yesterday'], /^--since must be an ISO 8601 time .* got 'yesterday'/],
      [consumeCommand, ['t', '--since', '10'], /^--since must be an ISO 8601 time/],
      [consumeCommand, ['t', '--max', '0'], /^--max must be a whole number ≥ 1, got '0'/],
      [consumeCommand, ['t', '--offset', '-1'], /^Option '--offset' argument is ambiguous/],
      [consumeCommand, ['t', '--offset=-1'], /^--offset must be a whole number ≥ 0, got '-1'/],
      [consumeCommand, [], /^consume takes one TOPIC, got none/],
      [produceCommand, ['a', 'b'], /^produce takes one TOPIC, got a b/],
      [produceCommand, ['a', '--partition', '1'], /^Unknown option '--partition'/],
    ];
    for (const [command, args, message] of cases) {
      const error = await command(args).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toMatch(/Usage: edgelog (consume|produce)/);
    }
  });
});

describe('--since', () => {
  it('takes an ISO 8601 time or a duration back from now', () => {
    const now = Date.UTC(2025, 0, 31, 12);
    expect(parseSince('10m', now)).toBe(now - 600_000);
    expect(parseSince('2h', now)).toBe(now - 7_200_000);
    expect(parseSince('1d', now)).toBe(now - 86_400_000);
    expect(parseSince('90s', now)).toBe(now - 90_000);
    expect(parseSince('2025-01-31T08:00:00Z', now)).toBe(Date.UTC(2025, 0, 31, 8));
    expect(parseSince('2025-01-31', now)).toBe(Date.UTC(2025, 0, 31));
    for (const bad of ['', '10', '10 m', '-5m', 'soon', '2025-13-45']) expect(parseSince(bad, now)).toBeUndefined();
  });
});
