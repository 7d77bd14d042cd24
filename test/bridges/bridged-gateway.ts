import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { BridgeReport } from '../../bridges/bridges.js';
import type { CommitLog } from '../../src/index.js';
import type { Gateway } from '../../src/gateway.js';
import { startGateway, type ConfigOverrides, type LogLine } from '../helpers/gateway.js';
import { readAll } from '../helpers/log.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import type { ReceivedRecord } from './upstream-contract.js';

/** The gateway id of every bridged test gateway. */
export const TEST_GATEWAY_ID = 'gw-test';

/** Writes a gateway config file with these bridges (and other top-level keys) and returns its path. */
export function bridgeConfigFile(bridges: unknown[], extra: Record<string, unknown> = {}): string {
  const file = join(tempDir(), 'edgelog.yaml');
  writeFileSync(file, stringify({ gatewayId: TEST_GATEWAY_ID, ...extra, bridges }));
  return file;
}

/** A real gateway in this process with the given bridges (see startGateway). */
export function startBridgedGateway(
  bridges: unknown[],
  opts: { overrides?: ConfigOverrides; dataDir?: string; logs?: LogLine[]; extra?: Record<string, unknown> } = {},
): Promise<Gateway> {
  return startGateway(opts.overrides ?? {}, {
    configFile: bridgeConfigFile(bridges, opts.extra),
    ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
    ...(opts.logs === undefined ? {} : { logs: opts.logs }),
  });
}

/** A bridge's status by name. */
export function bridgeStatus(gateway: Gateway, name: string): BridgeReport {
  const status = gateway.bridges.status().find((b) => b.name === name);
  if (!status) throw new Error(`no bridge named ${name}`);
  return status;
}

/** Waits until the bridge is connected and the upstream has acknowledged every record of its topics. */
export async function waitDrained(gateway: Gateway, name: string, timeoutMs = 45_000): Promise<BridgeReport> {
  try {
    await waitFor(() => {
      const s = bridgeStatus(gateway, name);
      return s.state === 'connected' && s.partitions.length > 0 && s.backlogRecords === 0;
    }, `bridge ${name} to drain its backlog`, timeoutMs);
  } catch (error) {
    // Says where it stuck: the state, the last error and the counters, not only that it timed out.
    const { state, target, backlogRecords, lastError, counters } = bridgeStatus(gateway, name);
    throw new Error(`${(error as Error).message}; status: ${JSON.stringify({ state, target, backlogRecords, lastError, counters })}`);
  }
  return bridgeStatus(gateway, name);
}

/** How the central side's copy compares with the log. */
export interface ReplicaCheck {
  /** Records in the log's topics. */
  expected: number;
  /** Distinct records upstream. */
  found: number;
  /** Records in the log and not upstream (`topic/partition/offset`), at most 20 listed. */
  missing: string[];
  /** Copies upstream beyond the first of each record. */
  duplicates: number;
  /** Partitions whose first copies did not arrive in offset order. */
  outOfOrder: string[];
  /** Records upstream whose value differs from the log's. */
  wrongValues: number;
}

/**
 * Compares what the central side holds with the log's records of `topics`: every record upstream,
 * how many extra copies, and whether each partition's records first arrived in offset order.
 */
export function checkReplica(log: CommitLog, topics: readonly string[], received: readonly ReceivedRecord[]): ReplicaCheck {
  const copies = new Map<string, number>();
  const values = new Map<string, Buffer>();
  const lastFirst = new Map<string, number>();
  const outOfOrder = new Set<string>();
  for (const r of received) {
    const id = `${r.topic}/${r.partition}/${r.offset}`;
    const n = copies.get(id) ?? 0;
    copies.set(id, n + 1);
    if (n > 0) continue;
    values.set(id, r.value);
    const partition = `${r.topic}/${r.partition}`;
    if ((lastFirst.get(partition) ?? -1) >= r.offset) outOfOrder.add(partition);
    lastFirst.set(partition, r.offset);
  }
  const missing: string[] = [];
  let expected = 0;
  let wrongValues = 0;
  for (const topic of topics) {
    const partitions = log.topicShape(topic)?.partitions ?? 0;
    for (let p = 0; p < partitions; p++) {
      for (const record of readAll(log, topic, p, log.describeTopic(topic).partitions[p]!.startOffset)) {
        expected++;
        const id = `${topic}/${p}/${record.offset}`;
        const value = values.get(id);
        if (value === undefined) {
          if (missing.length < 20) missing.push(id);
          else missing.length = 20;
        } else if (!value.equals(record.value)) wrongValues++;
      }
    }
  }
  const duplicates = [...copies.values()].reduce((sum, n) => sum + n - 1, 0);
  return { expected, found: copies.size, missing, duplicates, outOfOrder: [...outOfOrder], wrongValues };
}
