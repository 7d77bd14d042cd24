/**
 * Device secrets (MQTT passwords, WebSocket tokens) are stored only as scrypt hashes in a PHC-style
 * string: `$scrypt$ln=14,r=8,p=1$<salt>$<hash>`, salt and hash in base64 without padding.
 */
import { randomBytes, scrypt, timingSafeEqual, type BinaryLike, type ScryptOptions } from 'node:crypto';
import { EdgelogError } from '../src/errors.js';

/**
 * Default cost: N = 2^14, r = 8, p = 1 (16 MiB, one pass). Enough because the secrets we hash are
 * machine-generated (`generateSecret`: 192 random bits): no amount of hashing cost is what keeps
 * them safe, their entropy is; the cost only slows guessing of the occasional human-chosen secret
 * (`edgelog devices hash` refuses ones shorter than 16 characters). A higher cost would be paid on
 * every connect that misses the verification cache (devices/registry.ts): one hash takes ~60 ms on
 * the x86 machine these figures come from and, estimating a Pi core at 3-5 times slower, 0.2-0.3 s
 * on a Raspberry Pi 4, so 1,000 devices reconnecting after a restart already cost minutes of pool
 * time there. scrypt runs on the libuv pool, not the event loop.
 */
export const DEFAULT_SCRYPT_LOG_N = 14;
export const DEFAULT_SCRYPT_R = 8;
export const DEFAULT_SCRYPT_P = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** 24 random bytes: 192 bits, 32 characters of base64url. */
const SECRET_BYTES = 24;

// Bounds on what a registry may ask for, so a hostile or mistaken hash cannot make one
// verification take minutes or gigabytes. The default sits well inside each.
const LOG_N_RANGE = { min: 10, max: 20 } as const;
const R_RANGE = { min: 1, max: 16 } as const;
const P_RANGE = { min: 1, max: 4 } as const;
const SALT_BYTES_RANGE = { min: 8, max: 64 } as const;
const HASH_BYTES_RANGE = { min: 16, max: 64 } as const;
/** scrypt's working memory is 128·N·r bytes: at most 64 MiB (four times the default) per run. */
const MAX_MEMORY_BYTES = 64 * 1024 * 1024;
/** Time grows with N·r·p: at most 8 times the default's 2^17 (~0.5 s here, a few seconds on a Pi). */
const MAX_WORK = 2 ** 20;

const FORMAT = '$scrypt$ln=N,r=R,p=P$SALT$HASH (SALT and HASH in base64 without padding)';
const PATTERN = /^\$scrypt\$ln=(\d{1,3}),r=(\d{1,3}),p=(\d{1,3})\$([^$]*)\$([^$]*)$/;
const BASE64 = /^[A-Za-z0-9+/]*$/;

/** A parsed, bounds-checked scrypt hash. */
export interface ScryptHash {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

/** Parses a `$scrypt$` hash string; throws INVALID_CONFIG naming what is wrong and the format. */
export function parseSecretHash(text: string): ScryptHash {
  const fail = (detail: string): never => {
    throw new EdgelogError('INVALID_CONFIG', `secret hash ${JSON.stringify(clip(text))} ${detail}; the format is ${FORMAT}`);
  };
  if (typeof text !== 'string') fail('must be a string');
  const match = PATTERN.exec(text);
  if (match === null) {
    if (!text.startsWith('$scrypt$')) fail("must start with '$scrypt$' (only scrypt is supported)");
    fail('is not in the expected layout');
  }
  const [, ln, r, p, salt, hash] = match as unknown as [string, string, string, string, string, string];
  const logN = bounded(fail, 'ln', Number(ln), LOG_N_RANGE);
  const blockSize = bounded(fail, 'r', Number(r), R_RANGE);
  const parallel = bounded(fail, 'p', Number(p), P_RANGE);
  // RFC 7914 §2: N < 2^(128·r/8); OpenSSL refuses anything else.
  if (logN >= 16 * blockSize) fail(`has ln=${logN} with r=${blockSize}; scrypt needs ln < 16·r`);
  if (128 * 2 ** logN * blockSize > MAX_MEMORY_BYTES) {
    fail(`needs ${(128 * 2 ** logN * blockSize) / 2 ** 20} MiB (128·2^ln·r); at most ${MAX_MEMORY_BYTES / 2 ** 20} MiB is accepted`);
  }
  if (2 ** logN * blockSize * parallel > MAX_WORK) fail(`costs 2^ln·r·p = ${2 ** logN * blockSize * parallel}; at most ${MAX_WORK} is accepted`);
  return {
    logN,
    r: blockSize,
    p: parallel,
    salt: base64(fail, 'salt', salt, SALT_BYTES_RANGE),
    hash: base64(fail, 'hash', hash, HASH_BYTES_RANGE),
  };
}

function bounded(fail: (detail: string) => never, name: string, value: number, range: { min: number; max: number }): number {
  if (!Number.isInteger(value) || value < range.min || value > range.max) fail(`has ${name}=${value}; ${name} must be from ${range.min} to ${range.max}`);
  return value;
}

function base64(fail: (detail: string) => never, name: string, text: string, range: { min: number; max: number }): Buffer {
  const bytes = Buffer.from(text, 'base64');
  // Canonical check: rejects padding, other alphabets and non-zero trailing bits, which
  // Buffer.from would silently accept or drop.
  if (!BASE64.test(text) || encode(bytes) !== text) fail(`has a ${name} that is not base64 without padding`);
  if (bytes.length < range.min || bytes.length > range.max) fail(`has a ${bytes.length}-byte ${name}; it must be ${range.min} to ${range.max} bytes`);
  return bytes;
}

function encode(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

/** Formats a parsed hash back into its string form. */
export function formatSecretHash(h: ScryptHash): string {
  return `$scrypt$ln=${h.logN},r=${h.r},p=${h.p}$${encode(h.salt)}$${encode(h.hash)}`;
}

function derive(secret: BinaryLike, salt: Buffer, keyBytes: number, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  // OpenSSL needs 128·r·(N + 2) bytes for V plus 128·r·p for B; maxmem is exactly that, so the
  // bounds above are what limit memory, not Node's 32 MiB default.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + 2) + 128 * r * p };
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyBytes, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

/** Hashes `secret` with a random 16-byte salt into a 32-byte scrypt key, as a `$scrypt$` string. */
export async function hashSecret(secret: string | Buffer, opts: { logN?: number } = {}): Promise<string> {
  const logN = opts.logN ?? DEFAULT_SCRYPT_LOG_N;
  if (!Number.isInteger(logN) || logN < LOG_N_RANGE.min || logN > LOG_N_RANGE.max) {
    throw new EdgelogError('INVALID_ARGUMENT', `logN must be an integer from ${LOG_N_RANGE.min} to ${LOG_N_RANGE.max}, got ${logN}`);
  }
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(secret, salt, HASH_BYTES, logN, DEFAULT_SCRYPT_R, DEFAULT_SCRYPT_P);
  return formatSecretHash({ logN, r: DEFAULT_SCRYPT_R, p: DEFAULT_SCRYPT_P, salt, hash });
}

/** True if `secret` hashes to `hash`, compared in constant time. */
export async function verifyScrypt(secret: string | Buffer, hash: ScryptHash): Promise<boolean> {
  const key = await derive(secret, hash.salt, hash.hash.length, hash.logN, hash.r, hash.p);
  return timingSafeEqual(key, hash.hash);
}

/**
 * True if `secret` matches the `$scrypt$` string `hash`. A malformed hash is a configuration error
 * (INVALID_CONFIG), not a mismatch: load hashes with {@link parseSecretHash} at start-up.
 */
export async function verifySecret(secret: string | Buffer, hash: string): Promise<boolean> {
  return verifyScrypt(secret, parseSecretHash(hash));
}

/** A new random device secret: 24 bytes (192 bits) as 32 characters of base64url. */
export function generateSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

/** A hash in the same parameters as `like` that no secret matches (random bytes), for timing-equal refusals. */
export function unmatchableHash(like: Pick<ScryptHash, 'logN' | 'r' | 'p'>): ScryptHash {
  return { logN: like.logN, r: like.r, p: like.p, salt: randomBytes(SALT_BYTES), hash: randomBytes(HASH_BYTES) };
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}…` : s;
}
