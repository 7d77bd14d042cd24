import { cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { verifySecret } from '../../devices/credentials.js';
import { defaultProfilesDir, loadProfiles } from '../../devices/profile.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { spawnTs, type Spawned } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Runs `edgelog devices ...`, optionally writing `stdin`, and waits for it to exit. */
async function run(args: string[], stdin?: string): Promise<{ code: number | string; out: string; proc: Spawned }> {
  const proc = spawnTs(CLI, ['devices', ...args]);
  if (stdin !== undefined) proc.child.stdin.end(stdin);
  const code = await proc.exited;
  return { code, out: proc.output(), proc };
}

interface Added {
  id: string;
  profile: string;
  registry: string;
  password: string;
  token: string;
}

describe('edgelog devices add', () => {
  it('creates the registry, stores only hashes, and prints the secrets once', async () => {
    const file = join(tempDir(), 'config', 'devices.yaml');
    const { code, out } = await run(['add', 'env-0001', '--profile', 'environment-sensor', '--registry', file]);
    expect(code).toBe(0);
    const password = /MQTT password: +(\S+)/.exec(out)?.[1] ?? '';
    const token = /WebSocket token: +(\S+)/.exec(out)?.[1] ?? '';
    expect(out).toMatch(/^Added device env-0001 \(profile environment-sensor\) to .*devices\.yaml\.\n {2}MQTT username: +env-0001\n/);
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(token).not.toBe(password);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(password);
    expect(text).not.toContain(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(text).toMatch(/\n {4}passwordHash: "\$scrypt\$[^"\n]+"\n {4}tokenHash: "\$scrypt\$[^"\n]+"\n$/);
    const entry = (parse(text) as { devices: { id: string; profile: string; passwordHash: string; tokenHash: string }[] }).devices[0]!;
    expect(entry).toMatchObject({ id: 'env-0001', profile: 'environment-sensor' });
    expect(entry.passwordHash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$/);
    expect(await verifySecret(password, entry.passwordHash)).toBe(true);
    expect(await verifySecret(token, entry.tokenHash)).toBe(true);
    // The gateway's loader accepts what the command wrote.
    const registry = DeviceRegistry.load(file, loadProfiles());
    expect(await registry.verifyPassword('env-0001', password)).toBe(true);
    expect(await registry.verifyToken('env-0001', token)).toBe(true);
  });

  it('appends to an existing file, keeping its comments, other entries and mode', async () => {
    const file = join(tempDir(), 'devices.yaml');
    const original = '# Plant 3, line B\ndevices:\n  # the old meter, certificate only\n  - id: meter-1\n    profile: power-meter # installed 2024\n';
    writeFileSync(file, original, { mode: 0o640 });
    const { code, out } = await run(['add', '0042', '--profile', 'motor-vibration', '--registry', file, '--json']);
    expect(code).toBe(0);
    const added = JSON.parse(out) as Added;
    expect(added).toMatchObject({ id: '0042', profile: 'motor-vibration', registry: file });
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(original)).toBe(true);
    // An id that looks like a number is quoted, so it stays a string.
    expect(text).toContain('- id: "0042"');
    expect(statSync(file).mode & 0o777).toBe(0o640);
    const registry = DeviceRegistry.load(file, loadProfiles());
    expect(registry.ids()).toEqual(['meter-1', '0042']);
    expect(await registry.verifyPassword('0042', added.password)).toBe(true);
  });

  it('refuses a duplicate id, an unknown profile and an invalid id with exit 1, leaving the file alone', async () => {
    const file = join(tempDir(), 'devices.yaml');
    expect((await run(['add', 'd1', '--profile', 'power-meter', '--registry', file])).code).toBe(0);
    const before = readFileSync(file, 'utf8');
    const [dup, unknown, bad] = await Promise.all([
      run(['add', 'd1', '--profile', 'environment-sensor', '--registry', file]),
      run(['add', 'd2', '--profile', 'toaster', '--registry', file]),
      run(['add', 'dev/1', '--profile', 'power-meter', '--registry', file]),
    ]);
    expect(dup.code).toBe(1);
    expect(dup.out).toBe(`edgelog: device d1 is already in ${file} (profile power-meter); ids must be unique, choose another (INVALID_ARGUMENT)\n`);
    expect(unknown.code).toBe(1);
    expect(unknown.out).toBe("edgelog: unknown profile 'toaster'; the profiles are environment-sensor, motor-vibration, power-meter (INVALID_ARGUMENT)\n");
    expect(bad.code).toBe(1);
    expect(bad.out).toBe("edgelog: device id 'dev/1' must be 1 to 128 of A-Z a-z 0-9 . _ : - (INVALID_ARGUMENT)\n");
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses to add to a registry the gateway would refuse, naming the problem', async () => {
    const file = join(tempDir(), 'devices.yaml');
    const broken = 'devices:\n  - id: d1\n    profile: power-meter\n    passwordHash: change-me\n';
    writeFileSync(file, broken);
    const { code, out } = await run(['add', 'd2', '--profile', 'power-meter', '--registry', file]);
    expect(code).toBe(1);
    expect(out).toMatch(/^edgelog: device registry .*devices\.yaml: devices\[0\] \(id 'd1'\): key 'passwordHash': secret hash "change-me" must start with '\$scrypt\$'.*\(INVALID_CONFIG\)\n$/);
    expect(out).not.toMatch(/\n\s+at /);
    expect(readFileSync(file, 'utf8')).toBe(broken);
  });

  it('uses the profiles of --profiles DIR', async () => {
    const dir = tempDir();
    const profilesDir = join(dir, 'profiles');
    mkdirSync(profilesDir);
    cpSync(join(defaultProfilesDir(), 'power-meter.json'), join(profilesDir, 'power-meter.json'));
    const meter = JSON.parse(readFileSync(join(profilesDir, 'power-meter.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(profilesDir, 'three-phase.json'), JSON.stringify({ ...meter, name: 'three-phase' }));
    const file = join(dir, 'devices.yaml');
    const [ok, shipped] = await Promise.all([
      run(['add', 'm3', '--profile', 'three-phase', '--registry', file, '--profiles', profilesDir]),
      run(['add', 'e1', '--profile', 'environment-sensor', '--registry', join(dir, 'other.yaml'), '--profiles', profilesDir]),
    ]);
    expect(ok.code).toBe(0);
    expect(shipped.code).toBe(1);
    expect(shipped.out).toContain("unknown profile 'environment-sensor'; the profiles are power-meter, three-phase");
  });
});

describe('edgelog devices list', () => {
  it('shows each device, its profile and which credentials it has', async () => {
    const file = join(tempDir(), 'devices.yaml');
    expect((await run(['add', 'env-0001', '--profile', 'environment-sensor', '--registry', file])).code).toBe(0);
    const text = readFileSync(file, 'utf8');
    const hash = /passwordHash: "([^"]+)"/.exec(text)?.[1];
    writeFileSync(file, `${text}  - id: meter-7\n    profile: power-meter\n    passwordHash: "${hash}"\n  - id: vib-1\n    profile: motor-vibration\n`);
    const [table, json] = await Promise.all([run(['list', '--registry', file]), run(['list', '--registry', file, '--json'])]);
    expect(table.code).toBe(0);
    expect(table.out).toBe(
      'ID        PROFILE             CREDENTIALS\n' +
        'env-0001  environment-sensor  password, token\n' +
        'meter-7   power-meter         password\n' +
        'vib-1     motor-vibration     none (TLS client certificate only)\n',
    );
    expect(JSON.parse(json.out)).toEqual([
      { id: 'env-0001', profile: 'environment-sensor', password: true, token: true },
      { id: 'meter-7', profile: 'power-meter', password: true, token: false },
      { id: 'vib-1', profile: 'motor-vibration', password: false, token: false },
    ]);
  });

  it('says so when there is no registry yet, and refuses a broken one', async () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'devices:\n  - id: d1\n    profile: toaster\n');
    const [none, json, broken] = await Promise.all([
      run(['list', '--registry', join(dir, 'missing.yaml')]),
      run(['list', '--registry', join(dir, 'missing.yaml'), '--json']),
      run(['list', '--registry', bad]),
    ]);
    expect(none.code).toBe(0);
    expect(none.out).toMatch(/^No devices in .*missing\.yaml \(it does not exist yet\)\. Add one with: edgelog devices add ID --profile NAME\n$/);
    expect(json.out).toBe('[]\n');
    expect(broken.code).toBe(1);
    expect(broken.out).toContain("devices[0] (id 'd1'): key 'profile': unknown profile 'toaster'; the profiles loaded are environment-sensor, motor-vibration, power-meter (INVALID_CONFIG)");
  });
});

describe('edgelog devices hash', () => {
  it('prints the hash of the first line of stdin', async () => {
    const secret = 'a long enough secret, ünïcode too';
    const { code, out } = await run(['hash'], `${secret}\r\nsecond line ignored\n`);
    expect(code).toBe(0);
    expect(out).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}\n$/);
    expect(await verifySecret(secret, out.trim())).toBe(true);
    const noNewline = await run(['hash'], 'sixteen-chars-ok');
    expect(noNewline.code).toBe(0);
    expect(await verifySecret('sixteen-chars-ok', noNewline.out.trim())).toBe(true);
  });

  it('refuses an empty, short or oversized secret', async () => {
    const [empty, short, huge] = await Promise.all([run(['hash'], ''), run(['hash'], 'change-me\n'), run(['hash'], `${'x'.repeat(5000)}\n`)]);
    expect(empty.code).toBe(1);
    expect(empty.out).toContain('edgelog: no secret on stdin: give it as the first line');
    expect(short.code).toBe(1);
    expect(short.out).toBe('edgelog: the secret has 9 characters; at least 16 are required, since the hash cost assumes a hard-to-guess secret (edgelog devices add generates 32) (INVALID_ARGUMENT)\n');
    expect(huge.code).toBe(1);
    expect(huge.out).toContain('the first line of stdin is over 1024 bytes');
  });
});

describe('edgelog devices: usage', () => {
  it('prints its help with exit 0, and edgelog --help mentions it', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: edgelog devices <add\|list\|hash\|status>/);
    for (const flag of ['--registry', '--profiles', '--profile', '--json']) expect(help.out).toContain(flag);
    const top = spawnTs(CLI, ['--help']);
    expect(await top.exited).toBe(0);
    expect(top.output()).toContain('devices               Manage the device registry');
  });

  it.each([
    [[], 'devices: missing command: add, list, hash or status'],
    [['frob'], "devices: unknown command 'frob': the commands are add, list, hash and status"],
    [['add'], 'devices add: give exactly one device ID'],
    [['add', 'a', 'b', '--profile', 'power-meter'], 'devices add: give exactly one device ID'],
    [['add', 'd1'], 'devices add: --profile NAME is required'],
    [['add', 'd1', '--profile'], "Option '--profile <value>' argument missing"],
    [['list', '--profile', 'power-meter'], 'devices list: option --profile does not apply'],
    [['list', 'extra'], "devices list: unexpected argument 'extra'"],
    [['hash', 'my-secret'], "devices hash: unexpected argument 'my-secret'; the secret is read from stdin"],
    [['hash', '--json'], 'devices hash: option --json does not apply'],
    [['list', '--bogus'], "Unknown option '--bogus'"],
  ])('refuses %j with usage and exit 2', async (args, message) => {
    const { code, out } = await run(args);
    expect(code).toBe(2);
    expect(out.startsWith(`edgelog: ${message}`)).toBe(true);
    expect(out).toContain('Usage: edgelog devices <add|list|hash|status>');
    expect(out).not.toMatch(/\n\s+at /);
  });
});
