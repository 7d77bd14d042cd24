import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CommitLog } from '../../src/index.js';
import { spawnTs } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('edgelog start', () => {
  it('opens the log in --data-dir, says so, and exits 0 on SIGTERM with the log closed cleanly', async () => {
    const dir = tempDir();
    const gw = spawnTs(CLI, ['start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    const line = await gw.waitForLine(/edgelog gateway started/);
    expect(JSON.parse(line)).toMatchObject({ dataDir: dir });
    // A second gateway on the same folder is refused with a clear message.
    const second = spawnTs(CLI, ['start', '--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(new RegExp(`data folder ${dir} is in use by process ${gw.child.pid}.*\\(LOG_LOCKED\\)`));
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(gw.output()).toMatch(/edgelog gateway stopped/);
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.close();
  });

  it('says which port is taken when it cannot listen, and exits 1', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    onTestFinished(() => void taken.close());
    const port = (taken.address() as { port: number }).port;
    const run = spawnTs(CLI, ['start', '--data-dir', tempDir(), '--mqtt-port', String(port), '--http-port', '0']);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(new RegExp(`edgelog: cannot listen for MQTT on 127.0.0.1:${port}: the port is in use by another program; choose another with --mqtt-port .*\\(LISTEN_FAILED\\)`));
    expect(run.output()).not.toMatch(/\n\s+at /);
  });

  it('refuses unknown options and commands with usage and exit code 2, without a stack trace', async () => {
    for (const args of [['start', '--bogus'], ['frob']]) {
      const run = spawnTs(CLI, args);
      expect(await run.exited).toBe(2);
      expect(run.output()).toMatch(/^edgelog: (Unknown option '--bogus'|unknown command 'frob')/);
      expect(run.output()).toMatch(/Usage: edgelog <command>/);
      expect(run.output()).not.toMatch(/\n\s+at /);
    }
  });
});

describe('edgelog start --config', () => {
  it('stops start-up on a bad config with one line naming the key, and exit 1', async () => {
    const { writeFileSync } = await import('node:fs');
    const file = `${tempDir()}/bad.yaml`;
    writeFileSync(file, 'mqtt:\n  port: -5\n');
    const run = spawnTs(CLI, ['start', '--config', file]);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(/^edgelog: config key 'mqtt\.port' must be an integer from 0 to 65535, got -5 \(INVALID_CONFIG\)\n$/);
  });

  it('runs from a config file, flags overriding it', async () => {
    const { writeFileSync } = await import('node:fs');
    const dir = tempDir();
    const file = `${dir}/edgelog.yaml`;
    writeFileSync(file, `dataDir: ${dir}/from-file\nmqtt:\n  port: 1\n`);
    const gw = spawnTs(CLI, ['start', '--config', file, '--mqtt-port', '0', '--http-port', '0']);
    const started = JSON.parse(await gw.waitForLine(/edgelog gateway started/)) as { dataDir: string; mqttPort: number };
    expect(started.dataDir).toBe(`${dir}/from-file`);
    expect(started.mqttPort).toBeGreaterThan(1);
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });
});
