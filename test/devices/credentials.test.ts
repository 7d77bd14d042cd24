import { describe, expect, it } from 'vitest';
import {
  formatSecretHash,
  generateSecret,
  hashSecret,
  parseSecretHash,
  verifySecret,
} from '../../devices/credentials.js';
import { EdgelogError } from '../../src/errors.js';

// ln=10 keeps these tests fast; the default (14) is checked once.
const FAST = { logN: 10 };

describe('hashSecret and verifySecret', () => {
  it('produces a $scrypt$ string with the default cost, a 16-byte salt and a 32-byte key', async () => {
    const hash = await hashSecret('s3cret-device-secret');
    expect(hash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    const parsed = parseSecretHash(hash);
    expect(parsed).toMatchObject({ logN: 14, r: 8, p: 1 });
    expect(parsed.salt.length).toBe(16);
    expect(parsed.hash.length).toBe(32);
    expect(await verifySecret('s3cret-device-secret', hash)).toBe(true);
    expect(await verifySecret('s3cret-device-secreT', hash)).toBe(false);
  });

  it('salts each hash, so the same secret hashes differently', async () => {
    const [a, b] = await Promise.all([hashSecret('same', FAST), hashSecret('same', FAST)]);
    expect(a).not.toBe(b);
    expect(await verifySecret('same', a)).toBe(true);
    expect(await verifySecret('same', b)).toBe(true);
  });

  it('treats a Buffer as its bytes and a string as UTF-8', async () => {
    const hash = await hashSecret('grüße', FAST);
    expect(await verifySecret(Buffer.from('grüße', 'utf8'), hash)).toBe(true);
    expect(await verifySecret(Buffer.from('grüße', 'latin1'), hash)).toBe(false);
    expect(await verifySecret('', hash)).toBe(false);
  });

  it('verifies hashes with other accepted parameters, up to the largest accepted cost', async () => {
    const base = parseSecretHash(await hashSecret('x', FAST));
    // The same salt and key under other parameters do not match, but verify without error.
    for (const params of [{ logN: 16, r: 8, p: 2 }, { logN: 18, r: 2, p: 1 }, { logN: 10, r: 16, p: 4 }]) {
      expect(await verifySecret('x', formatSecretHash({ ...base, ...params }))).toBe(false);
    }
  });

  it('refuses a logN outside 10..20', async () => {
    await expect(hashSecret('x', { logN: 9 })).rejects.toThrow('logN must be an integer from 10 to 20, got 9');
    await expect(hashSecret('x', { logN: 14.5 })).rejects.toThrow(EdgelogError);
  });
});

describe('parseSecretHash', () => {
  const salt = Buffer.alloc(16, 1).toString('base64').replace(/=+$/, '');
  const key = Buffer.alloc(32, 2).toString('base64').replace(/=+$/, '');
  const good = `$scrypt$ln=14,r=8,p=1$${salt}$${key}`;

  it('round-trips a well-formed hash', () => {
    expect(formatSecretHash(parseSecretHash(good))).toBe(good);
  });

  it.each([
    ['another algorithm', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA', "must start with '$scrypt$'"],
    ['an empty string', '', "must start with '$scrypt$'"],
    ['a missing part', `$scrypt$ln=14,r=8,p=1$${salt}`, 'is not in the expected layout'],
    ['reordered parameters', `$scrypt$r=8,ln=14,p=1$${salt}$${key}`, 'is not in the expected layout'],
    ['ln too small', `$scrypt$ln=9,r=8,p=1$${salt}$${key}`, 'has ln=9; ln must be from 10 to 20'],
    ['ln too large', `$scrypt$ln=21,r=1,p=1$${salt}$${key}`, 'has ln=21; ln must be from 10 to 20'],
    ['r too large', `$scrypt$ln=10,r=17,p=1$${salt}$${key}`, 'has r=17; r must be from 1 to 16'],
    ['r zero', `$scrypt$ln=10,r=0,p=1$${salt}$${key}`, 'has r=0; r must be from 1 to 16'],
    ['p too large', `$scrypt$ln=10,r=8,p=5$${salt}$${key}`, 'has p=5; p must be from 1 to 4'],
    ['too much memory', `$scrypt$ln=20,r=2,p=1$${salt}$${key}`, 'needs 256 MiB (128·2^ln·r); at most 64 MiB'],
    ['too much memory (r)', `$scrypt$ln=16,r=16,p=1$${salt}$${key}`, 'needs 128 MiB'],
    ['N too large for r', `$scrypt$ln=16,r=1,p=1$${salt}$${key}`, 'has ln=16 with r=1; scrypt needs ln < 16·r'],
    ['too much work', `$scrypt$ln=16,r=8,p=4$${salt}$${key}`, 'costs 2^ln·r·p = 2097152; at most 1048576'],
    ['padding', `$scrypt$ln=14,r=8,p=1$${salt}==$${key}`, 'has a salt that is not base64 without padding'],
    ['base64url', `$scrypt$ln=14,r=8,p=1$${salt}$${key.slice(0, -1)}_`, 'has a hash that is not base64 without padding'],
    ['non-canonical trailing bits', `$scrypt$ln=14,r=8,p=1$${salt.slice(0, -1)}B$${key}`, 'has a salt that is not base64'],
    ['a short salt', `$scrypt$ln=14,r=8,p=1$AAAA$${key}`, 'has a 3-byte salt; it must be 8 to 64 bytes'],
    ['a short key', `$scrypt$ln=14,r=8,p=1$${salt}$AAAAAAAA`, 'has a 6-byte hash; it must be 16 to 64 bytes'],
    ['an empty key', `$scrypt$ln=14,r=8,p=1$${salt}$`, 'has a 0-byte hash'],
  ])('refuses %s with INVALID_CONFIG naming the problem and the format', (_what, text, detail) => {
    let error: unknown;
    try {
      parseSecretHash(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EdgelogError);
    expect((error as EdgelogError).code).toBe('INVALID_CONFIG');
    expect((error as Error).message).toContain(detail);
    expect((error as Error).message).toContain('the format is $scrypt$ln=N,r=R,p=P$SALT$HASH');
  });

  it('makes verifySecret reject, not answer false, for a malformed hash', async () => {
    await expect(verifySecret('x', '$scrypt$ln=99,r=8,p=1$AAAA$AAAA')).rejects.toThrow(/INVALID_CONFIG|ln must be/);
  });
});

describe('generateSecret', () => {
  it('gives 32 base64url characters (24 random bytes), different each time', () => {
    const secrets = new Set(Array.from({ length: 100 }, () => generateSecret()));
    expect(secrets.size).toBe(100);
    for (const s of secrets) {
      expect(s).toMatch(/^[A-Za-z0-9_-]{32}$/);
      expect(Buffer.from(s, 'base64url').length).toBe(24);
    }
  });
});
