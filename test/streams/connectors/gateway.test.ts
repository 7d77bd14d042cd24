import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../../src/config.js';
import { EdgelogError } from '../../../src/errors.js';
import { startGateway } from '../../helpers/gateway.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { waitFor } from '../../helpers/wait.js';
import { numbered, values } from './helpers.js';

function configFile(config: unknown): string {
  const file = join(tempDir(), 'edgelog.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

describe('connectors in the gateway', () => {
  it('runs the configured connectors: a source tails a file into a topic, a sink writes the topic to a file', async () => {
    const dir = tempDir();
    const appLog = join(dir, 'app.log');
    const archive = join(dir, 'archive.log');
    writeFileSync(appLog, 'boot\n');
    const file = configFile({
      connectors: [
        { name: 'app', type: 'file-source', file: appLog, topic: 'app-log', options: { pollIntervalMs: 200 } },
        { name: 'archive', type: 'file-sink', file: archive, topic: 'app-log' },
      ],
    });
    const gateway = await startGateway({}, { configFile: file });
    appendFileSync(appLog, numbered('event', 0, 20).map((l) => `${l}\n`).join(''));
    const expected = ['boot', ...numbered('event', 0, 20)];
    // The sink counts a record once its batch is committed (after the file's fsync).
    const committed = () => gateway.connectors.stats().reduce((n, c) => (c.type === 'file-sink' ? n + c.stats.recordsWritten : n), 0);
    await waitFor(() => committed() === expected.length, 'the archive sink to commit every line');
    expect(readFileSync(archive, 'utf8')).toBe(expected.map((l) => `${l}\n`).join(''));
    expect(values(gateway.log, 'app-log')).toEqual(expected);
    expect(gateway.connectors.stats().map((c) => [c.name, c.type, c.stats.state])).toEqual([
      ['app', 'file-source', 'tailing'],
      ['archive', 'file-sink', 'writing'],
    ]);
    expect(gateway.log.committedOffsets('connect.archive')).toMatchObject([{ topic: 'app-log', partition: 0, offset: 21 }]);
  });

  it('refuses a bad connector in the config file, naming the key path', () => {
    const file = configFile({ connectors: [{ name: 'app', type: 'file-tail', file: '/tmp/x.log', topic: 't' }] });
    let error: unknown;
    try {
      loadConfig({ file });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    expect((error as Error).message).toBe(`config key 'connectors[0].type' must be one of file-source, file-sink, got "file-tail"`);
  });

  it('does not start when a sink cannot open its file, and says which connector and why', async () => {
    const file = configFile({ connectors: [{ name: 'archive', type: 'file-sink', file: '/no/such/folder/out.log', topic: 't' }] });
    const error = await startGateway({}, { configFile: file }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as Error).message).toBe("connector 'archive': cannot open /no/such/folder/out.log for appending (ENOENT): its folder does not exist");
  });
});
