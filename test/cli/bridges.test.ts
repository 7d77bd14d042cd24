import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startBridgedGateway } from '../bridges/bridged-gateway.js';
import { freePort } from '../helpers/loopback.js';
import { spawnTs } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

async function run(args: string[], httpPort: number): Promise<{ code: number | string; out: string }> {
  const proc = spawnTs(CLI, [...args, '--gateway', `http://127.0.0.1:${httpPort}`], { EDGELOG_GATEWAY: undefined });
  const code = await proc.exited;
  return { code, out: proc.output() };
}

describe('edgelog bridges', () => {
  it('shows each bridge, its state, backlog and last error, and one bridge per partition', async () => {
    // An upstream nobody listens on: the bridge keeps retrying, and its backlog shows what waits.
    const deadPort = await freePort();
    const gateway = await startBridgedGateway([
      { name: 'central', type: 'nats', topics: ['*'], reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, nats: { servers: [`nats://127.0.0.1:${deadPort}`], connectTimeoutMs: 500 } },
    ]);
    await gateway.log.createTopic('climate', { partitions: 2 });
    await gateway.log.append('climate', [{ value: Buffer.from('a'), partition: 1 }, { value: Buffer.from('b'), partition: 1 }]);
    await waitFor(() => gateway.bridges.status()[0]!.lastError !== null && gateway.bridges.status()[0]!.backlogRecords === 2, 'the bridge to fail a connect');

    const list = await run(['bridges'], gateway.ports.http);
    expect(list.code).toBe(0);
    const [header, row] = list.out.split('\n');
    expect(header).toMatch(/^BRIDGE\s+UPSTREAM\s+STATE\s+BACKLOG\s+RECORDS\/S\s+ACKED\s+RESENT\s+LOST\s+LAST-ACK\s+LAST-ERROR$/);
    expect(row).toMatch(new RegExp(`^central\\s+nats nats://127.0.0.1:${deadPort}\\s+(connecting|disconnected)\\s+2\\s+0\\s+0\\s+0\\s+0\\s+-\\s+UPSTREAM_UNAVAILABLE: `));

    const one = await run(['bridges', 'central'], gateway.ports.http);
    expect(one.code).toBe(0);
    expect(one.out.split('\n').slice(2, 5).map((l) => l.trim().split(/\s+/))).toEqual([
      ['TOPIC', 'PARTITION', 'CHECKPOINT', 'ACKED', 'LOG-END-OFFSET', 'BACKLOG', 'IN-FLIGHT'],
      ['climate', '0', '0', '0', '0', '0', '0'],
      ['climate', '1', '0', '0', '2', '2', '0'],
    ]);

    const unknown = await run(['bridges', 'nope'], gateway.ports.http);
    expect(unknown).toEqual({ code: 1, out: `edgelog: unknown bridge "nope": the configured bridges are central (UNKNOWN_BRIDGE)\n` });
  });
});
