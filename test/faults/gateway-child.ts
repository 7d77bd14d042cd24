/**
 * The whole gateway as a child process, for fault scenarios that change what the child sees (its
 * data folder's filesystem, its wall clock) rather than kill it: start it, watch it through its
 * HTTP endpoints, drive firmware-sim against it, and stop both in the order that loses nothing.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { expect } from 'vitest';
import { stringify } from 'yaml';
import { freePort } from '../helpers/loopback.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

const GATEWAY_CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const FIRMWARE_SIM_CLI = fileURLToPath(new URL('../../firmware-sim/cli.ts', import.meta.url));
const PROFILE = fileURLToPath(new URL('../../devices/profiles/environment-sensor.json', import.meta.url));
/** The profile's streams: the default topic rule stores devices/{id}/{stream} in topic {stream}, keyed by device. */
export const READING_TOPICS = ['climate', 'status'] as const;
/** A gateway under tsx starts in ~1.6 s here; ten times that on a loaded machine is a failure, not slowness. */
export const START_TIMEOUT_MS = 20_000;
/** Enough of a child's output to show why it failed, without pages of connection lines. */
export const OUTPUT_TAIL_CHARS = 4000;
/** An HTTP request failed: if the gateway is exiting, its exit is seen within this. */
const EXIT_GRACE_MS = 1000;
/** Longer than the scenarios run; the test stops the simulator (SIGTERM) once the faults are done. */
const SIM_DURATION_S = 600;

export interface GatewayChild {
  readonly process: Spawned;
  readonly mqttPort: number;
  readonly httpPort: number;
  /** The last lines of the gateway's output, for failure messages. */
  tail(): string;
}

/** Writes `config` as the gateway's YAML config file. */
export function writeConfig(file: string, config: Record<string, unknown>): void {
  writeFileSync(file, stringify(config));
}

/** Spawns `edgelog start` and resolves once it logged its start and answers MQTT. */
export async function startGatewayChild(opts: { configFile: string; dataDir: string; env?: NodeJS.ProcessEnv }): Promise<GatewayChild> {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const child = spawnTs(
    GATEWAY_CLI,
    ['start', '--config', opts.configFile, '--data-dir', opts.dataDir, '--mqtt-port', String(mqttPort), '--http-port', String(httpPort)],
    opts.env ?? {},
  );
  const gateway: GatewayChild = { process: child, mqttPort, httpPort, tail: () => child.output().slice(-OUTPUT_TAIL_CHARS) };
  await child.waitForLine(/edgelog gateway started/, START_TIMEOUT_MS);
  await waitFor(() => acceptsMqtt(mqttPort), 'the gateway to answer MQTT', START_TIMEOUT_MS);
  return gateway;
}

/** Whether the gateway answers an MQTT CONNECT with a CONNACK (an anonymous loopback client). */
export async function acceptsMqtt(mqttPort: number): Promise<boolean> {
  try {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: `faults-probe-${process.pid}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000 });
    await client.endAsync();
    return true;
  } catch {
    return false;
  }
}

/**
 * A JSON request to the running gateway (loopback needs no token). A failed request is blamed on
 * the gateway's exit when it exited: a gateway that dies by itself is the failure to report.
 */
export async function request<T>(gateway: GatewayChild, path: string, init?: { method: string; body: unknown }): Promise<{ status: number; body: T }> {
  const request = init === undefined ? {} : { method: init.method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(init.body) };
  return blameExit(gateway, path, async () => {
    const response = await fetch(`http://127.0.0.1:${gateway.httpPort}${path}`, request);
    return { status: response.status, body: (await response.json()) as T };
  });
}

async function requestText(gateway: GatewayChild, path: string): Promise<string> {
  return blameExit(gateway, path, async () => (await fetch(`http://127.0.0.1:${gateway.httpPort}${path}`)).text());
}

async function blameExit<T>(gateway: GatewayChild, path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const how = await Promise.race([gateway.process.exited, new Promise((resolve) => setTimeout(() => resolve(undefined), EXIT_GRACE_MS))]);
    if (how === undefined) throw error;
    throw new Error(`the gateway exited by itself (${how}) during ${path}:\n${gateway.tail()}`);
  }
}

/**
 * Readings the gateway stored since it started (the ingest counter, which retention does not
 * lower); each was acknowledged right after.
 */
export async function storedReadings(gateway: GatewayChild): Promise<number> {
  return metricValue(gateway, 'edgelog_ingest_readings_total{result="stored"}');
}

/** A partition as /api/topics/{name} describes it. */
export interface PartitionState {
  partition: number;
  startOffset: number;
  highWatermark: number;
}

export async function partitionsOf(gateway: GatewayChild, topic: string): Promise<PartitionState[]> {
  const { status, body } = await request<{ partitions: PartitionState[] }>(gateway, `/api/topics/${topic}`);
  if (status !== 200) throw new Error(`/api/topics/${topic} answered ${status}: ${JSON.stringify(body)}`);
  return body.partitions;
}

/** Resolves once the gateway stored `records` more readings than when called; fails with `what`. */
export async function waitForStored(gateway: GatewayChild, records: number, what: string, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const before = await storedReadings(gateway);
  await waitFor(async () => (await storedReadings(gateway)) >= before + records, what, timeoutMs);
}

/** A counter or gauge of /metrics (loopback needs no token without an admin token); 0 when the series does not exist yet. */
export async function metricValue(gateway: GatewayChild, series: string): Promise<number> {
  const text = await requestText(gateway, '/metrics');
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** What /readyz answers: 200 ready, 503 with the reasons. */
export async function readiness(gateway: GatewayChild): Promise<{ status: number; reasons: string[] }> {
  const { status, body } = await request<{ reasons: string[] }>(gateway, '/readyz');
  return { status, reasons: body.reasons };
}

export interface SimOptions {
  mqttPort: number;
  seed: number;
  devices: number;
  ratePerDevice: number;
  /** Readings a device buffers while the gateway does not take them: sized so none is dropped. */
  bufferReadings: number;
  ackLogFile: string;
  reportFile: string;
}

/** firmware-sim at QoS 1 with an ack log, on the real clock (devices have their own clocks); stopped by {@link stopAll}. */
export function startSim(o: SimOptions): Spawned {
  return spawnTs(FIRMWARE_SIM_CLI, [
    '--gateway', `mqtt://127.0.0.1:${o.mqttPort}`, '--devices', String(o.devices), '--rate', String(o.ratePerDevice), '--duration', String(SIM_DURATION_S),
    '--qos', '1', '--profile', PROFILE, '--format', 'json', '--seed', String(o.seed), '--ack-log', o.ackLogFile, '--report', o.reportFile,
    // Devices come back quickly after a refusal, so recovery times measure the gateway, not a long backoff.
    '--reconnect-min-ms', '100', '--reconnect-max-ms', '1000', '--buffer', String(o.bufferReadings), '--log-level', 'error',
  ]);
}

/**
 * Stops the simulator first (so its ack log is complete), then the gateway with SIGTERM; both
 * must still be running (neither exited by itself) and exit cleanly.
 */
export async function stopAll(sim: Spawned, gateway: GatewayChild): Promise<void> {
  expect(sim.child.exitCode, `firmware-sim exited early:\n${sim.output().slice(-OUTPUT_TAIL_CHARS)}`).toBeNull();
  expect(gateway.process.child.exitCode, `the gateway exited by itself:\n${gateway.tail()}`).toBeNull();
  sim.child.kill('SIGTERM');
  expect(await sim.exited, sim.output().slice(-OUTPUT_TAIL_CHARS)).toBe(130);
  gateway.process.child.kill('SIGTERM');
  expect(await gateway.process.exited, gateway.tail()).toBe(0);
}

/** The gateway's JSON log lines that `match` (all of them by default). */
export function logLines(gateway: GatewayChild, match: (line: Record<string, unknown>) => boolean = () => true): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  for (const line of gateway.process.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      if (match(parsed)) lines.push(parsed);
    } catch {
      // A line cut by the end of the output: not a log line to read.
    }
  }
  return lines;
}

/** pino's level of error lines: a fault the gateway handles must not log one. */
export const PINO_ERROR_LEVEL = 50;
