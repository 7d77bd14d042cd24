/**
 * The device registry: which devices may connect, with which profile and credentials. Read from a
 * YAML file (devices/README.md, "Registry file") and validated whole at start-up, so a bad entry
 * stops the gateway with a clear message instead of failing a device's connect later.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { EdgelogError } from '../src/errors.js';
import {
  DEFAULT_SCRYPT_LOG_N,
  DEFAULT_SCRYPT_P,
  DEFAULT_SCRYPT_R,
  parseSecretHash,
  unmatchableHash,
  verifyScrypt,
  type ScryptHash,
} from './credentials.js';
import { deviceIdError } from './device-id.js';
import type { DeviceProfile } from './profile.js';

/** One registered device. */
export interface DeviceEntry {
  /** The MQTT username and client identity; also `{deviceId}` in topics. */
  readonly id: string;
  readonly profile: DeviceProfile;
  /** scrypt hash of the MQTT password; absent: no password login. */
  readonly passwordHash?: string;
  /** scrypt hash of the WebSocket ingest token; absent: no token login. */
  readonly tokenHash?: string;
}

export interface RegistryOptions {
  /**
   * scrypt runs at once (default {@link DEFAULT_MAX_CONCURRENT_HASHES}); others wait their turn.
   * The libuv pool (4 threads unless UV_THREADPOOL_SIZE says otherwise) also serves file I/O, DNS
   * and zlib: a reconnect storm must not take all of it.
   */
  readonly maxConcurrentHashes?: number;
}

/** Half of libuv's default pool of 4 threads, so file I/O keeps going during a reconnect storm. */
export const DEFAULT_MAX_CONCURRENT_HASHES = 2;
/** Far more than one gateway serves (DESIGN "Beyond one machine"); bounds memory of a bad file. */
export const MAX_DEVICES = 100_000;
const ENTRY_KEYS = ['id', 'profile', 'passwordHash', 'tokenHash'] as const;
const TOP_KEYS = ['devices'] as const;

type Kind = 'password' | 'token';

interface Stored {
  readonly entry: DeviceEntry;
  readonly password?: ScryptHash;
  readonly token?: ScryptHash;
}

/**
 * Registered devices, their profiles, and credential checks. Immutable once built; a changed file
 * is a new registry (with a new, empty verification cache).
 */
export class DeviceRegistry {
  readonly #devices: ReadonlyMap<string, Stored>;
  /** Compared against for an unknown id or a missing hash, so such refusals cost a full scrypt run. */
  readonly #dummy: ScryptHash;
  /**
   * Successful verifications, so a device reconnecting with the same secret costs one HMAC instead
   * of one scrypt run. Keyed by kind and id: at most 2 entries per registered device. Values are
   * HMAC-SHA-256 of the secret under a random per-registry key, never the secret itself.
   */
  readonly #verified = new Map<string, Buffer>();
  /** A verification in progress per kind and id, so a device retrying meanwhile waits for it. */
  readonly #inFlight = new Map<string, { digest: Buffer; result: Promise<boolean> }>();
  readonly #cacheKey = randomBytes(32);
  readonly #limiter: Limiter;

  private constructor(devices: ReadonlyMap<string, Stored>, options: RegistryOptions) {
    this.#devices = devices;
    this.#dummy = unmatchableHash(mostCommonParameters(devices));
    const max = options.maxConcurrentHashes ?? DEFAULT_MAX_CONCURRENT_HASHES;
    if (!Number.isInteger(max) || max < 1 || max > 64) {
      throw new EdgelogError('INVALID_ARGUMENT', `maxConcurrentHashes must be an integer from 1 to 64, got ${max}`);
    }
    this.#limiter = new Limiter(max);
  }

  /** A registry with no devices. */
  static empty(options: RegistryOptions = {}): DeviceRegistry {
    return new DeviceRegistry(new Map(), options);
  }

  /** Reads and validates a registry file; throws INVALID_CONFIG naming the file, entry and key. */
  static load(file: string, profiles: readonly DeviceProfile[], options: RegistryOptions = {}): DeviceRegistry {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new EdgelogError('INVALID_CONFIG', `device registry ${file} cannot be read (${code})`, { cause: error });
    }
    return DeviceRegistry.parse(parseRegistryYaml(text, file), profiles, file, options);
  }

  /** Validates a parsed registry document; `source` names it in errors. */
  static parse(document: unknown, profiles: readonly DeviceProfile[], source: string, options: RegistryOptions = {}): DeviceRegistry {
    return new DeviceRegistry(validate(document, profiles, source), options);
  }

  /** The device with this id, or undefined. */
  get(id: string): DeviceEntry | undefined {
    return this.#devices.get(id)?.entry;
  }

  get size(): number {
    return this.#devices.size;
  }

  /** Device ids in file order. */
  ids(): string[] {
    return [...this.#devices.keys()];
  }

  /**
   * True if `secret` is the MQTT password of device `id`. False for an unknown id or a device without
   * a password, after as long as a real check takes, so timing does not tell which ids exist.
   */
  verifyPassword(id: string, secret: string | Buffer): Promise<boolean> {
    return this.#verify('password', id, secret);
  }

  /** True if `secret` is the WebSocket ingest token of device `id`; as {@link verifyPassword}. */
  verifyToken(id: string, secret: string | Buffer): Promise<boolean> {
    return this.#verify('token', id, secret);
  }

  async #verify(kind: Kind, id: string, secret: string | Buffer): Promise<boolean> {
    const hash = this.#devices.get(id)?.[kind];
    if (hash === undefined) {
      await this.#limiter.run(() => verifyScrypt(secret, this.#dummy));
      return false;
    }
    const slot = `${kind}\u0000${id}`;
    const digest = createHmac('sha256', this.#cacheKey).update(secret).digest();
    const known = this.#verified.get(slot);
    if (known !== undefined && timingSafeEqual(known, digest)) return true;
    const pending = this.#inFlight.get(slot);
    if (pending !== undefined && timingSafeEqual(pending.digest, digest)) return pending.result;
    const result = this.#limiter.run(() => verifyScrypt(secret, hash));
    // One in-flight record per slot: a second, different secret runs on its own, unshared.
    if (pending === undefined) this.#inFlight.set(slot, { digest, result });
    try {
      const ok = await result;
      if (ok) this.#verified.set(slot, digest);
      return ok;
    } finally {
      if (this.#inFlight.get(slot)?.result === result) this.#inFlight.delete(slot);
    }
  }
}

/** Parses registry YAML text; YAML syntax errors are INVALID_CONFIG with the line. */
export function parseRegistryYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true });
  const error = doc.errors[0];
  if (error !== undefined) throw new EdgelogError('INVALID_CONFIG', `device registry ${source} is not valid YAML: ${error.message}`, { cause: error });
  return doc.toJS();
}

function validate(document: unknown, profiles: readonly DeviceProfile[], source: string): Map<string, Stored> {
  const fail = (where: string, detail: string, cause?: unknown): never => {
    throw new EdgelogError('INVALID_CONFIG', `device registry ${source}: ${where}${detail}`, cause === undefined ? undefined : { cause });
  };
  const devices = new Map<string, Stored>();
  // An empty file is a registry with no devices yet.
  if (document === null || document === undefined) return devices;
  if (!isObject(document)) return fail('', `must be a mapping with the key 'devices', got ${describe(document)}`);
  for (const key of Object.keys(document)) {
    if (!(TOP_KEYS as readonly string[]).includes(key)) fail('', `unknown key '${key}'; the only top-level key is 'devices'`);
  }
  const list = document['devices'] ?? [];
  if (!Array.isArray(list)) return fail('', `'devices' must be a list of devices, got ${describe(list)}`);
  if (list.length > MAX_DEVICES) fail('', `has ${list.length} devices; at most ${MAX_DEVICES} are supported`);
  const byName = new Map(profiles.map((p) => [p.name, p]));
  const firstIndex = new Map<string, number>();
  for (const [index, item] of list.entries()) {
    if (!isObject(item)) fail(`devices[${index}]: `, `must be a mapping with the keys ${ENTRY_KEYS.join(', ')}, got ${describe(item)}`);
    const entryObj = item as Record<string, unknown>;
    const rawId = entryObj['id'];
    const where = typeof rawId === 'string' ? `devices[${index}] (id '${rawId}'): ` : `devices[${index}]: `;
    const idError = deviceIdError(rawId);
    if (idError !== undefined) fail(where, `key 'id' ${idError}`);
    const id = rawId as string;
    const earlier = firstIndex.get(id);
    if (earlier !== undefined) fail(where, `the id is already used by devices[${earlier}]; ids must be unique`);
    firstIndex.set(id, index);
    for (const key of Object.keys(entryObj)) {
      if (!(ENTRY_KEYS as readonly string[]).includes(key)) fail(where, `unknown key '${key}'; the keys are ${ENTRY_KEYS.join(', ')}`);
    }
    const profileName = entryObj['profile'];
    const known = [...byName.keys()].join(', ') || '(none)';
    if (typeof profileName !== 'string') fail(where, `key 'profile' must be a profile name (${known}), got ${describe(profileName)}`);
    const profile = byName.get(profileName as string);
    if (profile === undefined) fail(where, `key 'profile': unknown profile '${String(profileName)}'; the profiles loaded are ${known}`);
    const hashOf = (key: 'passwordHash' | 'tokenHash'): ScryptHash | undefined => {
      const value = entryObj[key];
      if (value === undefined || value === null) return undefined;
      if (typeof value !== 'string') return fail(where, `key '${key}' must be a $scrypt$ hash string (from edgelog devices add or edgelog devices hash), got ${describe(value)}`);
      try {
        return parseSecretHash(value);
      } catch (error) {
        return fail(where, `key '${key}': ${(error as Error).message}`, error);
      }
    };
    const password = hashOf('passwordHash');
    const token = hashOf('tokenHash');
    const entry: DeviceEntry = Object.freeze({
      id,
      profile: profile as DeviceProfile,
      ...(password === undefined ? {} : { passwordHash: entryObj['passwordHash'] as string }),
      ...(token === undefined ? {} : { tokenHash: entryObj['tokenHash'] as string }),
    });
    devices.set(id, { entry, ...(password === undefined ? {} : { password }), ...(token === undefined ? {} : { token }) });
  }
  return devices;
}

/**
 * The scrypt parameters most hashes in the registry use (the defaults if none): the dummy hash
 * uses them, so refusing an unknown id takes as long as refusing a wrong secret usually does.
 */
function mostCommonParameters(devices: ReadonlyMap<string, Stored>): Pick<ScryptHash, 'logN' | 'r' | 'p'> {
  const counts = new Map<string, { params: Pick<ScryptHash, 'logN' | 'r' | 'p'>; n: number }>();
  for (const { password, token } of devices.values()) {
    for (const h of [password, token]) {
      if (h === undefined) continue;
      const key = `${h.logN},${h.r},${h.p}`;
      const seen = counts.get(key) ?? { params: { logN: h.logN, r: h.r, p: h.p }, n: 0 };
      seen.n++;
      counts.set(key, seen);
    }
  }
  let best: { params: Pick<ScryptHash, 'logN' | 'r' | 'p'>; n: number } = { params: { logN: DEFAULT_SCRYPT_LOG_N, r: DEFAULT_SCRYPT_R, p: DEFAULT_SCRYPT_P }, n: 0 };
  for (const c of counts.values()) if (c.n > best.n) best = c;
  return best.params;
}

/**
 * Runs at most `max` tasks at once; the rest wait in arrival order. The queue holds one waiter per
 * connect being authenticated, so the caller's bound on connections in progress bounds it.
 */
class Limiter {
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter (running stays the same), or free it.
      const next = this.#waiting.shift();
      if (next === undefined) this.#running--;
      else next();
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string '${value.length > 40 ? `${value.slice(0, 40)}…` : value}'`;
  return `${typeof value} ${String(value)}`;
}

export { DEVICE_ID_PATTERN, DEVICE_ID_RULE, deviceIdError } from './device-id.js';
