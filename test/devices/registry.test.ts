import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { hashSecret } from '../../devices/credentials.js';
import { loadProfiles } from '../../devices/profile.js';
import { DeviceRegistry } from '../../devices/registry.js';
import { EdgelogError } from '../../src/errors.js';
import { tempDir } from '../helpers/temp-dir.js';

// A pass-through spy on scrypt: counts runs and the most running at once.
const scryptCalls = vi.hoisted(() => ({ count: 0, running: 0, maxRunning: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof import('node:crypto')>();
  const scrypt = (...args: unknown[]) => {
    scryptCalls.count++;
    scryptCalls.maxRunning = Math.max(scryptCalls.maxRunning, ++scryptCalls.running);
    const callback = args.pop() as (...r: unknown[]) => void;
    // `any`: forwarding the overloaded signature unchanged.
    (crypto.scrypt as any)(...args, (...result: unknown[]) => {
      scryptCalls.running--;
      callback(...result);
    });
  };
  return { ...crypto, scrypt, default: { ...crypto, scrypt } };
});

const profiles = loadProfiles();
// ln=10 keeps most tests fast; the timing tests use a cost where scrypt dominates.
let pw: string;
let tok: string;
beforeAll(async () => {
  [pw, tok] = await Promise.all([hashSecret('pw-1', { logN: 10 }), hashSecret('tok-1', { logN: 10 })]);
});

const doc = (devices: unknown[]): unknown => ({ devices });

function refusal(document: unknown): string {
  try {
    DeviceRegistry.parse(document, profiles, 'devices.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected the registry to be refused');
}

async function minMs(times: number, f: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

describe('DeviceRegistry: loading', () => {
  it('holds entries with their profile and hashes, in file order', () => {
    const reg = DeviceRegistry.parse(
      doc([
        { id: 'env-0001', profile: 'environment-sensor', passwordHash: pw, tokenHash: tok },
        { id: 'meter:7', profile: 'power-meter', passwordHash: pw },
        { id: 'vib_3', profile: 'motor-vibration' },
      ]),
      profiles,
      'devices.yaml',
    );
    expect(reg.size).toBe(3);
    expect(reg.ids()).toEqual(['env-0001', 'meter:7', 'vib_3']);
    const env = reg.get('env-0001');
    expect(env?.profile.name).toBe('environment-sensor');
    expect(env?.passwordHash).toBe(pw);
    expect(env?.tokenHash).toBe(tok);
    expect(Object.isFrozen(env)).toBe(true);
    expect(reg.get('meter:7')).not.toHaveProperty('tokenHash');
    expect(reg.get('vib_3')).toEqual({ id: 'vib_3', profile: expect.objectContaining({ name: 'motor-vibration' }) });
    expect(reg.get('nope')).toBeUndefined();
  });

  it('treats an empty document, a null list and an empty list as no devices', () => {
    for (const d of [null, undefined, {}, { devices: null }, { devices: [] }]) expect(DeviceRegistry.parse(d, profiles, 'x').size).toBe(0);
    expect(DeviceRegistry.empty().size).toBe(0);
    expect(DeviceRegistry.empty().ids()).toEqual([]);
  });

  it.each([
    ['a list at the top', [], "device registry devices.yaml: must be a mapping with the key 'devices', got a list"],
    ['an unknown top-level key', { devices: [], device: [] }, "unknown key 'device'; the only top-level key is 'devices'"],
    ['devices as a mapping', { devices: { a: 1 } }, "'devices' must be a list of devices, got a mapping"],
    ['an entry that is a string', doc(['env-1']), "devices[0]: must be a mapping with the keys id, profile, passwordHash, tokenHash, got the string 'env-1'"],
    ['a missing id', doc([{ profile: 'power-meter' }]), "devices[0]: key 'id' must be a string of 1 to 128 of A-Z a-z 0-9 . _ : -, got undefined"],
    ['a numeric id', doc([{ id: 1, profile: 'power-meter' }]), "devices[0]: key 'id' must be a string of 1 to 128 of A-Z a-z 0-9 . _ : -, got the number 1 (quote ids"],
    ['an id with a slash', doc([{ id: 'a/b', profile: 'power-meter' }]), "devices[0] (id 'a/b'): key 'id' 'a/b' must be 1 to 128 of A-Z a-z 0-9 . _ : -"],
    ['an id with a wildcard', doc([{ id: 'a+', profile: 'power-meter' }]), "key 'id' 'a+' must be"],
    ['a too long id', doc([{ id: 'x'.repeat(129), profile: 'power-meter' }]), 'must be 1 to 128 of'],
    ['an empty id', doc([{ id: '', profile: 'power-meter' }]), "key 'id' '' must be"],
    ['a duplicate id', doc([{ id: 'a', profile: 'power-meter' }, { id: 'b', profile: 'power-meter' }, { id: 'a', profile: 'power-meter' }]), "devices[2] (id 'a'): the id is already used by devices[0]; ids must be unique"],
    ['an unknown key', doc([{ id: 'a', profile: 'power-meter', password: 'x' }]), "devices[0] (id 'a'): unknown key 'password'; the keys are id, profile, passwordHash, tokenHash"],
    ['a missing profile', doc([{ id: 'a' }]), "devices[0] (id 'a'): key 'profile' must be a profile name (environment-sensor, motor-vibration, power-meter), got undefined"],
    ['an unknown profile', doc([{ id: 'a', profile: 'toaster' }]), "devices[0] (id 'a'): key 'profile': unknown profile 'toaster'; the profiles loaded are environment-sensor, motor-vibration, power-meter"],
    ['a hash that is not a string', doc([{ id: 'a', profile: 'power-meter', tokenHash: 5 }]), "devices[0] (id 'a'): key 'tokenHash' must be a $scrypt$ hash string (from edgelog devices add or edgelog devices hash), got number 5"],
    ['a clear-text password', doc([{ id: 'a', profile: 'power-meter', passwordHash: 'change-me' }]), "devices[0] (id 'a'): key 'passwordHash': secret hash \"change-me\" must start with '$scrypt$'"],
    ['a hash too costly to verify', doc([{ id: 'a', profile: 'power-meter', passwordHash: '$scrypt$ln=20,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }]), "key 'passwordHash': secret hash"],
  ])('refuses %s, naming the file, the entry and the key', (_what, document, message) => {
    expect(refusal(document)).toContain(message);
  });

  it('names the hash problem and the allowed format', () => {
    const message = refusal(doc([{ id: 'a', profile: 'power-meter', passwordHash: '$scrypt$ln=20,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }]));
    expect(message).toMatch(/needs 1024 MiB .* at most 64 MiB is accepted; the format is \$scrypt\$ln=N,r=R,p=P\$SALT\$HASH/);
  });

  it('loads a YAML file with comments and quoted ids', () => {
    const file = join(tempDir(), 'devices.yaml');
    writeFileSync(file, `# site A\ndevices:\n  - id: "0001"   # looks like a number, so quoted\n    profile: power-meter\n    passwordHash: "${pw}"\n  - id: env-2\n    profile: environment-sensor\n    tokenHash: ${tok}\n`);
    const reg = DeviceRegistry.load(file, profiles);
    expect(reg.ids()).toEqual(['0001', 'env-2']);
    expect(reg.get('env-2')?.tokenHash).toBe(tok);
  });

  it('refuses an unreadable file, invalid YAML and duplicate keys with the file name', () => {
    const dir = tempDir();
    expect(() => DeviceRegistry.load(join(dir, 'missing.yaml'), profiles)).toThrow(`device registry ${join(dir, 'missing.yaml')} cannot be read (ENOENT)`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'devices:\n  - id: a\n   profile: [\n');
    expect(() => DeviceRegistry.load(bad, profiles)).toThrow(`device registry ${bad} is not valid YAML`);
    writeFileSync(bad, 'devices:\n  - id: a\n    id: b\n    profile: power-meter\n');
    expect(() => DeviceRegistry.load(bad, profiles)).toThrow(/is not valid YAML: Map keys must be unique/);
    writeFileSync(bad, 'devices:\n  - id: 0001\n    profile: power-meter\n');
    expect(() => DeviceRegistry.load(bad, profiles)).toThrow(`device registry ${bad}: devices[0]: key 'id' must be a string`);
  });

  it('loads the shipped example, config/devices.example.yaml', () => {
    const reg = DeviceRegistry.load(fileURLToPath(new URL('../../config/devices.example.yaml', import.meta.url)), profiles);
    expect(reg.ids()).toEqual(['env-0001', 'meter-0001']);
    expect(reg.get('env-0001')).not.toHaveProperty('tokenHash');
    expect(reg.get('meter-0001')?.tokenHash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$/);
  });

  it('refuses options out of range', () => {
    expect(() => DeviceRegistry.empty({ maxConcurrentHashes: 0 })).toThrow('maxConcurrentHashes must be an integer from 1 to 64, got 0');
  });
});

describe('DeviceRegistry: verification', () => {
  const registry = () =>
    DeviceRegistry.parse(
      doc([
        { id: 'd1', profile: 'power-meter', passwordHash: pw, tokenHash: tok },
        { id: 'd2', profile: 'power-meter', passwordHash: pw },
        { id: 'cert-only', profile: 'power-meter' },
      ]),
      profiles,
      'devices.yaml',
    );

  it('checks passwords and tokens against their own hashes', async () => {
    const reg = registry();
    expect(await reg.verifyPassword('d1', 'pw-1')).toBe(true);
    expect(await reg.verifyPassword('d1', Buffer.from('pw-1'))).toBe(true);
    expect(await reg.verifyToken('d1', 'tok-1')).toBe(true);
    expect(await reg.verifyPassword('d1', 'tok-1')).toBe(false);
    expect(await reg.verifyToken('d1', 'pw-1')).toBe(false);
    expect(await reg.verifyPassword('d1', 'pw-2')).toBe(false);
    expect(await reg.verifyPassword('d1', '')).toBe(false);
  });

  it('answers false for an unknown id or a missing hash', async () => {
    const reg = registry();
    expect(await reg.verifyPassword('nobody', 'pw-1')).toBe(false);
    expect(await reg.verifyToken('d2', 'tok-1')).toBe(false);
    expect(await reg.verifyToken('d2', 'pw-1')).toBe(false);
    expect(await reg.verifyPassword('cert-only', 'pw-1')).toBe(false);
    expect(await DeviceRegistry.empty().verifyPassword('d1', 'pw-1')).toBe(false);
  });

  it('does not let a cached success for one device or kind vouch for another', async () => {
    const reg = registry();
    expect(await reg.verifyPassword('d1', 'pw-1')).toBe(true);
    expect(await reg.verifyPassword('d1', 'pw-1')).toBe(true);
    expect(await reg.verifyToken('d1', 'pw-1')).toBe(false);
    expect(await reg.verifyPassword('d2', 'pw-1')).toBe(true);
    expect(await reg.verifyPassword('d1', 'pw-1x')).toBe(false);
    // A wrong attempt does not evict the good secret.
    expect(await reg.verifyPassword('d1', 'pw-1')).toBe(true);
  });

  it('answers a repeat of a correct secret from the cache, and refusals at full scrypt cost', async () => {
    // ln=13 (~30 ms here) so scrypt dominates timer noise on a shared machine.
    const hash = await hashSecret('right', { logN: 13 });
    const reg = DeviceRegistry.parse(doc([{ id: 'd1', profile: 'power-meter', passwordHash: hash }]), profiles, 'x');
    const wrongMs = await minMs(5, () => reg.verifyPassword('d1', 'wrong'));
    expect(await reg.verifyPassword('d1', 'right')).toBe(true);
    const cachedMs = await minMs(20, () => reg.verifyPassword('d1', 'right'));
    const unknownMs = await minMs(5, () => reg.verifyPassword('nobody', 'right'));
    const noTokenMs = await minMs(5, () => reg.verifyToken('d1', 'right'));
    const wrongAfterCacheMs = await minMs(5, () => reg.verifyPassword('d1', 'wrong'));
    expect(cachedMs).toBeLessThan(wrongMs / 20);
    // The dummy hash takes the registry's parameters (ln=13), so refusals cost about the same
    // (loose bounds: the machine is shared with other test files).
    for (const ms of [unknownMs, noTokenMs, wrongAfterCacheMs]) {
      expect(ms).toBeGreaterThan(wrongMs / 3);
      expect(ms).toBeLessThan(wrongMs * 5);
    }
  });

  it('runs one scrypt for concurrent verifications of the same secret, and at most maxConcurrentHashes at once', async () => {
    const reg = DeviceRegistry.parse(doc([{ id: 'd1', profile: 'power-meter', passwordHash: pw }]), profiles, 'x', { maxConcurrentHashes: 2 });
    scryptCalls.count = 0;
    scryptCalls.maxRunning = 0;
    const same = await Promise.all(Array.from({ length: 8 }, () => reg.verifyPassword('d1', 'pw-1')));
    expect(same).toEqual(Array(8).fill(true));
    expect(scryptCalls.count).toBe(1);
    // Cached from now on: no scrypt at all.
    expect(await reg.verifyPassword('d1', 'pw-1')).toBe(true);
    expect(scryptCalls.count).toBe(1);
    // Every refusal runs scrypt: distinct wrong secrets, unknown ids, a missing token.
    const refusals = await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => reg.verifyPassword('d1', `wrong-${i}`)),
      ...Array.from({ length: 6 }, (_, i) => reg.verifyPassword(`nobody-${i}`, 'pw-1')),
      reg.verifyToken('d1', 'tok-1'),
    ]);
    expect(refusals).toEqual(Array(13).fill(false));
    expect(scryptCalls.count).toBe(14);
    expect(scryptCalls.maxRunning).toBe(2);
  });

  it('survives a reconnect storm: 1,000 devices connecting twice cost 1,000 scrypt runs, not 2,000', async () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `env-${String(i).padStart(4, '0')}`);
    const reg = DeviceRegistry.parse(doc(ids.map((id) => ({ id, profile: 'environment-sensor', passwordHash: pw }))), profiles, 'x');
    scryptCalls.count = 0;
    expect(await Promise.all(ids.map((id) => reg.verifyPassword(id, 'pw-1')))).toEqual(Array(1000).fill(true));
    expect(scryptCalls.count).toBe(1000);
    const t = performance.now();
    expect(await Promise.all(ids.map((id) => reg.verifyPassword(id, Buffer.from('pw-1'))))).toEqual(Array(1000).fill(true));
    expect(scryptCalls.count).toBe(1000);
    // ~2 us each here; the bound leaves room for a loaded machine.
    expect(performance.now() - t).toBeLessThan(200);
  });
});
