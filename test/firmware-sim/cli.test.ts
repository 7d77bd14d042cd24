import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FleetReport } from '../../firmware-sim/index.js';
import { startAedes } from '../helpers/aedes.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from '../helpers/wait.js';

const CLI = join(import.meta.dirname, '../../firmware-sim/cli.ts');

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI as a child process, asynchronously: an in-process broker must keep serving meanwhile. */
function runCli(args: readonly string[], timeoutMs = 30_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: timeoutMs, env: { ...process.env, FORCE_COLOR: '0' } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('firmware-sim command line', () => {
  it('explains every option in --help', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    const source = readFileSync(CLI, 'utf8');
    const declared = [...source.matchAll(/^ {2}'?([a-z][a-z-]*)'?: \{ type:/gm)].map((m) => m[1]);
    expect(declared.length).toBeGreaterThan(25);
    for (const flag of declared) expect(stdout, `--${flag}`).toContain(`--${flag}`);
  });

  it.each([
    [['--devices', 'many'], "--devices: 'many' is not a number"],
    [['--devices', '0'], '--devices: must be between 1 and 20000, got 0'],
    [['--rate=-1'], '--rate: must be between 0.0001 and 1000, got -1'],
    [['--rate', '-1'], "--rate: needs a value (a value starting with '-' is written --rate=-VALUE)"],
    [['--rate'], '--rate: needs a value'],
    [['--qos', '2'], "--qos: must be 0 or 1, got '2'"],
    [['--duration', '0.1', '--rate', '1'], '--duration: 0.1 s at 1 readings/s is less than one reading'],
    [['--gateway', 'ws://127.0.0.1:8080/consume'], "--gateway: 'ws://127.0.0.1:8080/consume' is a WebSocket URL with path '/consume'; use ws://127.0.0.1:8080/ingest"],
    [['--gateway', 'ws://127.0.0.1:8080/ingest', '--qos', '0'], '--qos: is an MQTT setting: WebSocket ingest (/ingest) acknowledges every reading'],
    [['--gateway', 'ws://127.0.0.1:8080/ingest', '--password', 'p'], '--password: is the MQTT password; WebSocket ingest (/ingest) devices authenticate with a token'],
    [['--gateway', 'mqtt://127.0.0.1:1883', '--token', 't'], '--token: is for WebSocket ingest (ws://HOST:PORT/ingest); MQTT devices authenticate with a password'],
    [['--gateway', 'http://127.0.0.1:8080'], "--gateway: protocol 'http:' is not supported"],
    [['--gateway', 'not a url'], "--gateway: 'not a url' is not a URL"],
    [['--format', 'xml'], "--format: must be one of json, edgebin, got 'xml'"],
    [['--profile', '/nonexistent/p.json'], '--profile: invalid device profile /nonexistent/p.json: $: cannot be read (ENOENT)'],
    [['--fault-duplicate', '1.5'], '--fault-duplicate: must be between 0 and 1, got 1.5'],
    [['--reconnect-min-ms', '5000', '--reconnect-max-ms', '100'], '--reconnect-max-ms: must be between 5000 and'],
    [['--report', '/nonexistent-dir/r.json'], "--report: folder '/nonexistent-dir' does not exist"],
    [['--ack-log', '/nonexistent-dir/acks.ndjson'], "--ack-log: folder '/nonexistent-dir' does not exist"],
    [['--ack-log', '/tmp'], "--ack-log: '/tmp' is a folder, not a file"],
    [['--start-time', 'yesterday'], "--start-time: 'yesterday' is neither an ISO 8601 time"],
    [['--seed', '1.5'], '--seed: must be a whole number, got 1.5'],
    [['--frobnicate'], "unknown option '--frobnicate'; see firmware-sim --help"],
    [['500'], "unexpected argument '500'"],
  ])('refuses %j with a clear message and exit code 2', async (args, message) => {
    const { code, stdout, stderr } = await runCli(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(`firmware-sim: ${stderr.slice('firmware-sim: '.length)}`);
    expect(stderr).toContain(message);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('runs a fleet, prints a summary and writes a report that matches what the broker received', async () => {
    const broker = await startAedes();
    const reportFile = join(tempDir(), 'report.json');
    const ackLogFile = join(tempDir(), 'acks.ndjson');
    const { code, stdout, stderr } = await runCli(['--gateway', broker.url, '--devices', '8', '--rate', '10', '--duration', '2', '--seed', '99', '--report', reportFile, '--ack-log', ackLogFile]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('readings   generated 160, sent 160, acknowledged 160, dropped 0');
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as FleetReport;
    expect(report.settings.seed).toBe(99);
    expect(report.readings).toMatchObject({ generated: 160, acknowledged: 160, dropped: 0 });
    expect(report.latency.count).toBe(160);
    expect(report.latency.hdrBase64.length).toBeGreaterThan(0);
    await waitFor(() => broker.received.length >= 160, 'the broker to deliver every reading');
    expect(broker.received.length).toBe(report.publishes.acknowledged);
    // The ack log names each acknowledged reading once: 8 devices, seq 0..19 each.
    const acks = readFileSync(ackLogFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { device: string; stream: string; seq: number });
    expect(acks).toHaveLength(160);
    expect(new Set(acks.map((a) => `${a.device}/${a.seq}`)).size).toBe(160);
    expect(acks.every((a) => /^device-000[1-8]$/.test(a.device) && a.seq >= 0 && a.seq < 20 && a.stream.length > 0)).toBe(true);
  });

  it('exits non-zero with the reason when no device can reach the gateway', async () => {
    const { code, stderr } = await runCli(['--gateway', 'mqtt://127.0.0.1:1', '--devices', '2', '--rate', '5', '--duration', '0.5', '--drain-timeout-ms', '500', '--reconnect-min-ms', '100']);
    expect(code).toBe(1);
    expect(stderr).toContain('firmware-sim: no device could send to mqtt://127.0.0.1:1 (ECONNREFUSED');
  });
});
