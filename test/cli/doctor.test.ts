import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import {
  clockCheck,
  dataDirCheck,
  diskCheck,
  formatReport,
  mountOf,
  nodeCheck,
  ntpCheck,
  type CheckResult,
} from '../../src/cli/doctor-checks.js';
import { ENV_KEYS } from '../../src/config.js';
import { CommitLog } from '../../src/index.js';
import { startGateway } from '../helpers/gateway.js';
import { spawnTs } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const TLS_FIXTURES = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
/** The machine's EDGELOG_* settings must not leak into the checks (loadConfig ignores empty values). */
const CLEAN_ENV = Object.fromEntries(Object.keys(ENV_KEYS).map((name) => [name, '']));
const MIB = 1024 * 1024;

interface Report {
  checks: CheckResult[];
  ok: boolean;
}

async function doctor(args: string[]): Promise<{ code: number | string; output: string }> {
  const run = spawnTs(CLI, ['doctor', ...args], CLEAN_ENV);
  const code = await run.exited;
  return { code, output: run.output() };
}

async function doctorJson(args: string[]): Promise<{ code: number | string; report: Report; check: (name: string) => CheckResult }> {
  const { code, output } = await doctor([...args, '--json']);
  let report: Report;
  try {
    report = JSON.parse(output) as Report;
  } catch {
    throw new Error(`doctor --json exited ${code} without JSON: ${output}`);
  }
  const check = (name: string) => {
    const found = report.checks.find((c) => c.name === name);
    if (found === undefined) throw new Error(`no check '${name}' in ${output}`);
    return found;
  };
  return { code, report, check };
}

/** A TCP listener on 127.0.0.1, closed when the test finishes. */
async function listening(server: Server = createServer()): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on: listened on, noted, closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function configFile(content: unknown): string {
  const file = join(tempDir(), 'edgelog.yaml');
  writeFileSync(file, typeof content === 'string' ? content : stringify(content));
  return file;
}

describe('edgelog doctor', () => {
  it('reports a healthy machine line by line and exits 0: existing log, free ports, no bridges', async () => {
    const dir = tempDir();
    const log = await CommitLog.open({ dir, retentionSchedule: null });
    await log.close();
    const [mqtt, http] = [await closedPort(), await closedPort()];

    const { code, output } = await doctor(['--data-dir', dir, '--mqtt-port', String(mqtt), '--http-port', String(http)]);
    expect(code, output).toBe(0);
    const lines = output.trimEnd().split('\n');
    expect(lines[0]).toBe('ok    config        no config file: the embedded defaults');
    expect(lines[1]).toBe(`ok    node          Node.js ${process.version}`);
    expect(lines[2]).toMatch(new RegExp(`^(ok {4}|warn {2})data folder   ${dir}: writable, log \\d+(\\.\\d)? (KiB|MiB) \\(\\S+`));
    expect(lines).toContain(`ok    mqtt port     port ${mqtt} on 127.0.0.1 is free`);
    expect(lines).toContain(`ok    http port     port ${http} on 127.0.0.1 is free`);
    expect(lines).toContain('ok    upstreams     no bridges configured');
    expect(output).toMatch(/^ok {4}clock {9}\d{4}-\d\d-\d\dT.*no file in the data folder is from the future$/m);
    expect(output).toMatch(/^(ok|warn|skip) +time sync /m);
    expect(output).not.toMatch(/^FAIL/m);
  });

  it('fails on a bad config with the INVALID_CONFIG message naming the key, skips what needs it, exits 1', async () => {
    const file = configFile('log:\n  minFreeDiskBytes: -3\n');
    const { code, report, check } = await doctorJson(['--config', file]);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(check('config')).toMatchObject({ status: 'fail', finding: "config key 'log.minFreeDiskBytes' must be an integer from 0 to 9007199254740991, got -3" });
    expect(check('config').fix).toMatch(/config\/edgelog\.yaml/);
    for (const name of ['data folder', 'free disk', 'ports', 'upstreams']) expect(check(name)).toEqual({ name, status: 'skip', finding: 'skipped: the config did not load' });
    expect(check('node').status).toBe('ok');
  });

  it('fails on a data folder that is a file, or that cannot be created because its parent is a file', async () => {
    const file = join(tempDir(), 'not-a-folder');
    writeFileSync(file, 'x');
    const asFile = await doctorJson(['--data-dir', file, '--mqtt-port', '0', '--http-port', '0']);
    expect(asFile.code).toBe(1);
    expect(asFile.check('data folder')).toEqual({ name: 'data folder', status: 'fail', finding: `${file} is a file, not a folder`, fix: `point dataDir (--data-dir) at a folder, or move ${file} away` });
    expect(asFile.check('free disk').status).toBe('skip');

    const under = await doctorJson(['--data-dir', join(file, 'data'), '--mqtt-port', '0', '--http-port', '0']);
    expect(under.code).toBe(1);
    expect(under.check('data folder')).toMatchObject({ status: 'fail', finding: `${join(file, 'data')} cannot be created: ${file} is a file, not a folder` });
  });

  it('fails on a port held by another program, naming it and the option to change', async () => {
    const taken = await listening();
    // An HTTP server that is not a gateway: its /healthz answer does not make the port ours.
    const other = createHttpServer((_req, res) => res.writeHead(404).end('not here'));
    const otherHttp = await listening(other as unknown as Server);
    const { code, report, check } = await doctorJson(['--data-dir', tempDir(), '--mqtt-port', String(taken), '--http-port', String(otherHttp)]);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(check('mqtt port')).toMatchObject({ status: 'fail', finding: `port ${taken} is taken by another program` });
    expect(check('mqtt port').fix).toMatch(/^stop it .* or choose another port with --mqtt-port/);
    expect(check('http port')).toMatchObject({ status: 'fail', finding: `port ${otherHttp} is taken by another program` });
    expect(check('http port').fix).toMatch(/--http-port/);
  });

  it('reports a gateway already running on its ports as ok (through its /healthz), but not a port it does not list', async () => {
    const dataDir = tempDir();
    const gateway = await startGateway({ gatewayId: 'gw-doctor' }, { dataDir });
    const { mqtt, http } = gateway.ports;

    const running = await doctorJson(['--data-dir', dataDir, '--mqtt-port', String(mqtt), '--http-port', String(http)]);
    expect(running.code).toBe(0);
    expect(running.check('http port')).toEqual({ name: 'http port', status: 'ok', finding: `port ${http}: an edgelog gateway is already running here (gateway gw-doctor); its MQTT port is ${mqtt}` });
    expect(running.check('mqtt port')).toEqual({ name: 'mqtt port', status: 'ok', finding: `port ${mqtt}: an edgelog gateway is already running here (gateway gw-doctor)` });
    expect(running.check('data folder').finding).toMatch(new RegExp(`^${dataDir}: writable, log .*, in use by gateway process ${process.pid} `));

    const stray = await listening();
    const strayRun = await doctorJson(['--data-dir', tempDir(), '--mqtt-port', String(stray), '--http-port', String(http)]);
    expect(strayRun.code).toBe(1);
    expect(strayRun.check('mqtt port')).toMatchObject({ status: 'fail', finding: `port ${stray} is taken by another program` });
  });

  it('connects to each bridge upstream: ok with the time, refused on a closed port, TLS verified against tls.caFile', async () => {
    const open = await listening();
    const closed = await closedPort();
    const pem = (name: string) => readFileSync(join(TLS_FIXTURES, name));
    const mqtts = await listening(createTlsServer({ cert: pem('server.pem'), key: pem('server.key') }, (s) => s.end()));
    // NATS sends INFO in the clear, then the client upgrades the same connection to TLS.
    const nats = createServer((socket) => {
      socket.write('INFO {"tls_required":true}\r\n');
      const secure = new TLSSocket(socket, { isServer: true, cert: pem('server.pem'), key: pem('server.key') });
      secure.on('error', () => socket.destroy());
      secure.on('secure', () => secure.end());
    });
    const natsTls = await listening(nats);
    const ca = join(TLS_FIXTURES, 'ca.pem');
    const bridge = (name: string, upstream: Record<string, unknown>) => ({ name, topics: ['*'], ...upstream });
    const file = configFile({
      bridges: [
        bridge('up', { type: 'mqtt', mqtt: { url: `mqtt://127.0.0.1:${open}` } }),
        bridge('down', { type: 'mqtt', mqtt: { url: `mqtt://127.0.0.1:${closed}` } }),
        bridge('secure', { type: 'mqtt', mqtt: { url: `mqtts://127.0.0.1:${mqtts}`, tls: { caFile: ca } } }),
        bridge('untrusted', { type: 'mqtt', mqtt: { url: `mqtts://127.0.0.1:${mqtts}` } }),
        bridge('jetstream', { type: 'nats', nats: { servers: [`tls://127.0.0.1:${natsTls}`], tls: { caFile: ca } } }),
      ],
    });
    const { code, report, check } = await doctorJson(['--config', file, '--data-dir', tempDir(), '--mqtt-port', '0', '--http-port', '0']);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(check('upstream up')).toMatchObject({ status: 'ok' });
    expect(check('upstream up').finding).toMatch(new RegExp(`^bridge up: mqtt://127\\.0\\.0\\.1:${open} connected in \\d+ ms$`));
    expect(check('upstream down')).toEqual({
      name: 'upstream down',
      status: 'fail',
      finding: `bridge down: mqtt://127.0.0.1:${closed}: connection refused`,
      fix: `start the broker at 127.0.0.1:${closed}, or correct bridges[1].mqtt.url`,
    });
    expect(check('upstream secure').finding).toMatch(/ TLS handshake done in \d+ ms$/);
    expect(check('upstream secure').status).toBe('ok');
    expect(check('upstream untrusted')).toMatchObject({ status: 'fail' });
    expect(check('upstream untrusted').finding).toMatch(/: TLS error: /);
    expect(check('upstream untrusted').fix).toMatch(/bridges\[3\]\.mqtt\.tls\.caFile/);
    expect(check('upstream jetstream').finding).toMatch(/ TLS handshake done in \d+ ms$/);
    expect(check('upstream jetstream').status).toBe('ok');
  });

  it('--json prints { checks: [{ name, status, finding, fix? }], ok } with a fix exactly on warn and fail lines', async () => {
    const { code, report } = await doctorJson(['--data-dir', tempDir(), '--mqtt-port', '0', '--http-port', '0']);
    expect(code).toBe(0);
    expect(Object.keys(report).sort()).toEqual(['checks', 'ok']);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['config', 'node', 'data folder', 'free disk', 'clock', 'time sync', 'mqtt port', 'http port', 'upstreams']);
    for (const c of report.checks) {
      expect(['ok', 'warn', 'fail', 'skip']).toContain(c.status);
      expect(typeof c.finding).toBe('string');
      expect('fix' in c).toBe(c.status === 'warn' || c.status === 'fail');
    }
  });

  it('refuses unknown options and arguments with usage and exit 2, without a stack trace', async () => {
    for (const args of [['--bogus'], ['extra']]) {
      const { code, output } = await doctor(args);
      expect(code).toBe(2);
      expect(output).toMatch(/Usage: edgelog doctor/);
      expect(output).not.toMatch(/\n\s+at /);
    }
  });
});

describe('doctor checks', () => {
  const disk = { dir: '/data', totalBytes: 10_000 * MIB, minFreeDiskBytes: 64 * MIB, maxLogBytes: -1, logBytes: 0 };

  it('free disk: fail below the reserve, warn below 4x it or 10% of the disk, warn when the cap is out of reach', () => {
    expect(diskCheck({ ...disk, freeBytes: 63 * MIB })).toMatchObject({ status: 'fail', finding: '63 MiB free of 9.8 GiB, below log.minFreeDiskBytes (64 MiB): the gateway refuses readings (LOG_FULL)' });
    expect(diskCheck({ ...disk, freeBytes: 255 * MIB }).status).toBe('warn');
    expect(diskCheck({ ...disk, freeBytes: 999 * MIB }).status).toBe('warn');
    expect(diskCheck({ ...disk, freeBytes: 5000 * MIB })).toEqual({ name: 'free disk', status: 'ok', finding: '4.9 GiB free of 9.8 GiB' });
    const cap = diskCheck({ ...disk, freeBytes: 5000 * MIB, logBytes: 1000 * MIB, maxLogBytes: 6001 * MIB });
    expect(cap.status).toBe('warn');
    expect(cap.finding).toMatch(/the disk fills before the cap is reached/);
    expect(diskCheck({ ...disk, freeBytes: 5000 * MIB, logBytes: 1000 * MIB, maxLogBytes: 6000 * MIB }).status).toBe('ok');
  });

  it('data folder: the filesystem is found by the longest mount point; network and memory filesystems warn', () => {
    const mounts = ['/dev/vda / ext4 rw 0 0', 'srv:/x /mnt/nfs nfs4 rw 0 0', 'tmpfs /mnt/nfs/ram tmpfs rw 0 0', 'x /mnt/my\\040disk fuse.sshfs rw 0 0'].join('\n');
    expect(mountOf(mounts, '/var/lib/edgelog')).toEqual({ mountPoint: '/', type: 'ext4' });
    expect(mountOf(mounts, '/mnt/nfs/data')).toEqual({ mountPoint: '/mnt/nfs', type: 'nfs4' });
    expect(mountOf(mounts, '/mnt/nfs/ram/data')).toEqual({ mountPoint: '/mnt/nfs/ram', type: 'tmpfs' });
    expect(mountOf(mounts, '/mnt/nfsx')).toEqual({ mountPoint: '/', type: 'ext4' });
    expect(mountOf(mounts, '/mnt/my disk/d')).toEqual({ mountPoint: '/mnt/my disk', type: 'fuse.sshfs' });
    const folder = (type: string) => dataDirCheck({ dir: '/d', kind: 'folder', writeError: undefined, logBytes: 3 * MIB, owner: undefined, mount: { mountPoint: '/', type } });
    expect(folder('ext4')).toEqual({ name: 'data folder', status: 'ok', finding: '/d: writable, log 3.0 MiB (ext4)' });
    for (const type of ['nfs', 'cifs', 'fuse.sshfs']) expect(folder(type)).toMatchObject({ status: 'warn', fix: 'put dataDir (--data-dir) on a local disk (ext4, xfs, f2fs)' });
    expect(folder('tmpfs').finding).toMatch(/not durable across reboot/);
    expect(dataDirCheck({ dir: '/d', kind: 'folder', writeError: 'EROFS', logBytes: undefined, owner: undefined, mount: undefined })).toMatchObject({ status: 'fail', finding: '/d is not writable (EROFS)' });
  });

  it('clock: fail before 2024, warn on files from the future; NTP: warn on "no", never fail without timedatectl', () => {
    expect(clockCheck(Date.UTC(2023, 11, 31), [], false).status).toBe('fail');
    expect(clockCheck(Date.UTC(2025, 0, 1), [], true).status).toBe('ok');
    const now = Date.UTC(2025, 0, 1);
    expect(clockCheck(now, [{ path: '/d/log/data.mdb', mtimeMs: now + 3_600_000 }], true)).toMatchObject({ status: 'warn' });
    expect(clockCheck(now, [{ path: '/d/log/data.mdb', mtimeMs: now + 3_600_000 }], true).finding).toMatch(/data\.mdb, 3600 s ahead\): the clock went backwards/);
    expect(ntpCheck({ kind: 'answer', value: 'yes' }).status).toBe('ok');
    expect(ntpCheck({ kind: 'answer', value: 'no' }).status).toBe('warn');
    expect(ntpCheck({ kind: 'missing' }).status).toBe('skip');
    expect(ntpCheck({ kind: 'failed', message: 'no bus' }).status).toBe('skip');
  });

  it('node: fail below 20; the report puts a fix line under warn and fail only', () => {
    expect(nodeCheck('v18.19.0').status).toBe('fail');
    expect(nodeCheck('v20.0.0').status).toBe('ok');
    expect(formatReport([{ name: 'node', status: 'ok', finding: 'fine', fix: 'never shown' }, { name: 'free disk', status: 'fail', finding: 'full', fix: 'free space' }])).toBe(
      'ok    node          fine\nFAIL  free disk     full\n      fix: free space\n',
    );
  });
});
