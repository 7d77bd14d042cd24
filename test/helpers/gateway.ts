import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { hashSecret } from '../../devices/credentials.js';
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/gateway.js';
import { tempDir } from './temp-dir.js';

/** Config values by key path (`ingest.maxReadingsPerSecond`), as strings or booleans like flags. */
export type ConfigOverrides = Record<string, string | boolean>;

export interface StartOptions {
  dataDir?: string;
  /** A config file under the overrides. */
  configFile?: string;
  /** Receives the gateway's log lines (info and above), parsed. */
  logs?: LogLine[];
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** pino's level numbers. */
export const WARN = 40;

/**
 * A real gateway in this process on 127.0.0.1 with ports 0 and a fresh data folder, closed when
 * the test finishes.
 */
export async function startGateway(overrides: ConfigOverrides = {}, opts: StartOptions = {}): Promise<Gateway> {
  const config = loadConfig({
    ...(opts.configFile === undefined ? {} : { file: opts.configFile }),
    flags: { dataDir: opts.dataDir ?? tempDir(), 'mqtt.port': '0', 'http.port': '0', ...overrides },
  });
  const logs = opts.logs;
  const logger = logs
    ? pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) })
    : pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const gateway = await Gateway.start(config, logger);
  onTestFinished(() => gateway.close());
  return gateway;
}

export interface TestDevice {
  id: string;
  profile: string;
  password?: string;
  token?: string;
}

/** Writes a device registry with scrypt hashes of the given secrets (cheap cost: tests only). */
export async function writeRegistry(devices: TestDevice[]): Promise<string> {
  const entries = await Promise.all(
    devices.map(async (d) => ({
      id: d.id,
      profile: d.profile,
      ...(d.password === undefined ? {} : { passwordHash: await hashSecret(d.password, { logN: 10 }) }),
      ...(d.token === undefined ? {} : { tokenHash: await hashSecret(d.token, { logN: 10 }) }),
    })),
  );
  const file = join(tempDir(), 'devices.yaml');
  writeFileSync(file, stringify({ devices: entries }));
  return file;
}
