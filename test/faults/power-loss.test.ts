import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { FleetReport } from '../../firmware-sim/index.js';
import { mulberry32 } from '../../firmware-sim/prng.js';
import { freePort, mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { reportFigures } from './fault-report.js';
import { acceptsMqtt } from './gateway-child.js';
import { auditLog, readAckLog } from './log-audit.js';

const GATEWAY_CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const FIRMWARE_SIM_CLI = fileURLToPath(new URL('../../firmware-sim/cli.ts', import.meta.url));
const PROFILE = fileURLToPath(new URL('../../devices/profiles/environment-sensor.json', import.meta.url));
/** The profile's streams: the default topic rule stores devices/{id}/{stream} in topic {stream}, keyed by device. */
const READING_TOPICS = ['climate', 'status'] as const;

/** Issue 8 asks for at least 20 kills in a row. */
const KILLS = 20;
/** Full load on this 2-core machine: 1,000 QoS 1 readings/s, from 50 connections. */
const DEVICES = 50;
const RATE_PER_DEVICE = 20;
/** firmware-sim's default window: unacknowledged publishes per device, the only ones a kill may duplicate. */
const INFLIGHT = 16;
/** 100 s of readings per device: a restart (~2 s) never fills it, so no reading is dropped unsent. */
const BUFFER_READINGS = 2000;
/** Longer than the kills take; the test stops the simulator (SIGTERM) once they are done. */
const SIM_DURATION_S = 600;
/** A kill lands this long after the devices are publishing again: random, so kills hit every phase of a group commit. */
const KILL_AFTER_MS_MIN = 300;
const KILL_AFTER_MS_MAX = 1500;
/** Records stored by a new life before its kill timer starts: the devices must be back and publishing. */
const RECORDS_BEFORE_KILL = 200;
/** Devices reconnect quickly so that each short life sees load; jitter still spreads them. */
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 1000;
/** A gateway under tsx starts in ~1.6 s here; ten times that on a loaded machine is a failure, not slowness. */
const START_TIMEOUT_MS = 20_000;
/** The stream processor: a consumer group (streams.faults-copy) that commits offsets with its output. */
const PROCESSOR = 'faults-copy';
const PROCESSOR_OUTPUT = 'faults-climate-copy';
const BRIDGE = 'central';
/** Enough of a child's output to show why it failed, without pages of connection lines. */
const OUTPUT_TAIL_CHARS = 3000;
/** An HTTP request failed: if the gateway is exiting, its exit is seen within this. */
const EXIT_GRACE_MS = 1000;
/** Fixed so a failure can be rerun; FAULTS_SEED picks another sequence of kill moments and readings. */
const SEED = Number(process.env['FAULTS_SEED'] ?? 20_260_801);

/** Stored records of the reading topics, from the running gateway's /api/topics (loopback needs no token). */
async function storedReadings(httpPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/api/topics`);
  if (!response.ok) throw new Error(`/api/topics answered ${response.status}`);
  const { topics } = (await response.json()) as { topics: Array<{ name: string; records: number }> };
  return topics.filter((t) => (READING_TOPICS as readonly string[]).includes(t.name)).reduce((sum, t) => sum + t.records, 0);
}

function gatewayConfig(file: string, bridgeUrl: string | undefined): void {
  const config = {
    streams: [{ name: PROCESSOR, from: 'climate', to: PROCESSOR_OUTPUT, pipeline: [{ filter: { field: 'seq', op: '>=', value: 0 } }] }],
    bridges:
      bridgeUrl === undefined
        ? []
        : [{ name: BRIDGE, type: 'mqtt', topics: [...READING_TOPICS], batch: { records: 50 }, mqtt: { url: bridgeUrl, protocolVersion: 5, topic: 'edge/{gatewayId}/{topic}' } }],
  };
  writeFileSync(file, stringify(config));
}

describe('power loss', () => {
  it(`after ${KILLS} SIGKILLs under QoS 1 load, every acknowledged reading is stored, the log is dense and verifies, no offset runs ahead`, async () => {
    const startedAtMs = performance.now();
    const random = mulberry32(SEED);
    const dir = tempDir('edgelog-faults-');
    const work = tempDir('edgelog-faults-work-');
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    // The bridge is the cheap part of this scenario to drop: without Mosquitto (outside CI) it runs without one.
    const broker = mosquittoSkipReason() === undefined ? await startMosquitto() : undefined;
    const configFile = join(work, 'edgelog.yaml');
    gatewayConfig(configFile, broker?.url);

    const spawnGateway = (): Spawned =>
      spawnTs(GATEWAY_CLI, ['start', '--config', configFile, '--data-dir', dir, '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)]);
    /** Spawns a gateway life and resolves with it and the time until it answered MQTT. */
    const startLife = async (): Promise<{ gateway: Spawned; recoveryMs: number }> => {
      const spawnedAtMs = performance.now();
      const gateway = spawnGateway();
      await gateway.waitForLine(/edgelog gateway started/, START_TIMEOUT_MS);
      await waitFor(() => acceptsMqtt(mqttPort), 'the gateway to answer MQTT', START_TIMEOUT_MS);
      return { gateway, recoveryMs: Math.round(performance.now() - spawnedAtMs) };
    };

    /** Resolves once the running gateway stored RECORDS_BEFORE_KILL more readings; says why if the gateway died instead. */
    const waitForLoad = async (gateway: Spawned, what: string): Promise<void> => {
      const stored = async (): Promise<number> => {
        try {
          return await storedReadings(httpPort);
        } catch (error) {
          const how = await Promise.race([gateway.exited, new Promise((resolve) => setTimeout(() => resolve(undefined), EXIT_GRACE_MS))]);
          if (how === undefined) throw error;
          throw new Error(`the gateway exited by itself (${how}) while waiting for ${what}:\n${gateway.output().slice(-OUTPUT_TAIL_CHARS)}`);
        }
      };
      const before = await stored();
      await waitFor(async () => (await stored()) >= before + RECORDS_BEFORE_KILL, what, START_TIMEOUT_MS);
    };

    let { gateway, recoveryMs: recoveryMsMax } = await startLife();
    const ackLogFile = join(work, 'acks.ndjson');
    const reportFile = join(work, 'report.json');
    const sim = spawnTs(FIRMWARE_SIM_CLI, [
      '--gateway', `mqtt://127.0.0.1:${mqttPort}`, '--devices', String(DEVICES), '--rate', String(RATE_PER_DEVICE), '--duration', String(SIM_DURATION_S),
      '--qos', '1', '--profile', PROFILE, '--format', 'json', '--seed', String(SEED), '--ack-log', ackLogFile, '--report', reportFile,
      '--reconnect-min-ms', String(RECONNECT_MIN_MS), '--reconnect-max-ms', String(RECONNECT_MAX_MS), '--buffer', String(BUFFER_READINGS), '--inflight', String(INFLIGHT), '--log-level', 'error',
    ]);

    for (let kill = 0; kill < KILLS; kill++) {
      await waitForLoad(gateway, `devices to publish to gateway life ${kill + 1}`);
      // The kill moment itself is the fault being injected, not a wait for correctness.
      await new Promise((resolve) => setTimeout(resolve, KILL_AFTER_MS_MIN + random() * (KILL_AFTER_MS_MAX - KILL_AFTER_MS_MIN)));
      expect(sim.child.exitCode, `firmware-sim exited early:\n${sim.output()}`).toBeNull();
      gateway.child.kill('SIGKILL');
      // A gateway that died on its own before the kill is a failure: its last words say why.
      expect(await gateway.exited, `gateway life ${kill + 1} exited by itself:\n${gateway.output().slice(-OUTPUT_TAIL_CHARS)}`).toBe('SIGKILL');
      const life = await startLife();
      gateway = life.gateway;
      recoveryMsMax = Math.max(recoveryMsMax, life.recoveryMs);
    }

    // The last life runs under load, then everything stops cleanly: the simulator first, so its ack log is complete.
    await waitForLoad(gateway, 'devices to publish to the last gateway life');
    sim.child.kill('SIGTERM');
    expect(await sim.exited, sim.output().slice(-OUTPUT_TAIL_CHARS)).toBe(130);
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited, gateway.output().slice(-OUTPUT_TAIL_CHARS)).toBe(0);
    await broker?.stop();

    const acked = readAckLog(ackLogFile);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as FleetReport;
    const audit = await auditLog(dir, READING_TOPICS);
    const lostIds = [...acked.keys()].filter((id) => !audit.stored.has(id));
    const duplicated = [...audit.stored.values()].reduce((sum, n) => sum + n - 1, 0);
    const figures = reportFigures({
      scenario: 'power-loss',
      seed: SEED,
      faults: KILLS,
      acked: acked.size,
      found: audit.stored.size,
      lost: lostIds.length,
      duplicated,
      recoveryMsMax,
      elapsedS: Math.round((performance.now() - startedAtMs) / 1000),
      extra: { 'records verified': audit.recordsVerified },
    });

    expect(audit.problems).toEqual([]);
    expect(lostIds.slice(0, 20), `${lostIds.length} acknowledged readings are missing`).toEqual([]);
    // The ack log is complete (one line per acknowledged reading) and the run had real load.
    expect([...acked.values()].every((n) => n === 1)).toBe(true);
    expect(acked.size).toBe(report.readings.acknowledged);
    expect(figures.acked).toBeGreaterThan(KILLS * RECORDS_BEFORE_KILL);
    // A duplicate is a publish stored but not acknowledged before a kill, then resent: at most the in-flight windows per kill.
    expect(duplicated).toBeLessThanOrEqual(KILLS * DEVICES * INFLIGHT);
    // The consumer group and the bridge committed offsets through the kills (audited above: never ahead).
    const processorOffsets = audit.committed.get(`streams.${PROCESSOR}`);
    expect(processorOffsets?.size).toBeGreaterThan(0);
    // The processor copies every climate reading and commits its input offsets with its output, in one
    // transaction: its output holds exactly as many records as it committed, whatever the kills interrupted.
    const committedInputs = [...(processorOffsets ?? new Map<string, number>()).values()].reduce((sum, offset) => sum + offset, 0);
    expect(audit.recordsByTopic.get(PROCESSOR_OUTPUT)).toBe(committedInputs);
    if (broker !== undefined) expect([...(audit.committed.get(`bridge.${BRIDGE}`)?.values() ?? [])].some((offset) => offset > 0)).toBe(true);
  }, 230_000);
});
