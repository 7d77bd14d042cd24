/**
 * `edgelog devices add|list|hash`: manage the device registry file (devices/README.md, "Registry
 * file"). Works on the file only; a running gateway reads it at start-up.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { Scalar, isSeq, parseDocument, type Document } from 'yaml';
import { generateSecret, hashSecret } from '../../devices/credentials.js';
import { deviceIdError } from '../../devices/device-id.js';
import { defaultProfilesDir, loadProfiles, type DeviceProfile } from '../../devices/profile.js';
import { DeviceRegistry, parseRegistryYaml } from '../../devices/registry.js';
import { EdgelogError } from '../errors.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const DEFAULT_REGISTRY_FILE = 'config/devices.yaml';
/** Human-chosen secrets shorter than this are refused: the default scrypt cost assumes high entropy. */
const MIN_OWN_SECRET_CHARS = 16;
/** A secret is one line; more than this on stdin is a mistake (a file piped in), not a secret. */
const MAX_SECRET_BYTES = 1024;
/** `devices add` re-reads the file before replacing it; this many tries if another writer got in. */
const MAX_WRITE_ATTEMPTS = 3;

export const DEVICES_USAGE = `Usage: edgelog devices <add|list|hash|status> [options]

Commands:
  status [ID]             The running gateway's devices: last seen, rate, errors, quiet ones
                          marked (edgelog devices status --help).
  add ID --profile NAME   Register device ID (1 to 128 of A-Z a-z 0-9 . _ : -) with a profile.
                          Generates its MQTT password and WebSocket token, stores only their
                          scrypt hashes, and prints them once: they are not stored anywhere else.
  list                    Each device's id, profile and which credentials it has.
  hash                    Read one secret from the first line of stdin and print its scrypt hash,
                          for a passwordHash or tokenHash you choose yourself (at least
                          ${MIN_OWN_SECRET_CHARS} characters; generated secrets from add are better).

Options:
  --registry FILE         The device registry (default ${DEFAULT_REGISTRY_FILE}); add creates it.
  --profiles DIR          The device profiles (default: the shipped devices/profiles).
  --profile NAME          add: the device's profile.
  --json                  add, list: print JSON, for scripts.
  -h, --help              Show this help.

The MQTT username is the device id. A device without a password or token can still connect with
a TLS client certificate whose CN is its id. The gateway reads the registry at start-up.
`;

interface Flags {
  registry?: string;
  profiles?: string;
  profile?: string;
  json?: boolean;
  help?: boolean;
}

/** Runs `edgelog devices ...` with the arguments after `devices`. */
export async function devices(argv: string[]): Promise<void> {
  // Asks the running gateway, with the options of the commands that do; the rest work on the file.
  if (argv[0] === 'status') return (await import('./device-status.js')).deviceStatus(argv.slice(1));
  const parsed = parseCommandLine(argv, {
        registry: { type: 'string' },
        profiles: { type: 'string' },
        profile: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      }, DEVICES_USAGE);
  const values: Flags = parsed.values;
  const { positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(DEVICES_USAGE);
    return;
  }
  const usage = (message: string): never => {
    throw new UsageError(`${message}\n\n${DEVICES_USAGE}`);
  };
  const only = (allowed: readonly (keyof Flags)[]) => {
    for (const key of Object.keys(values) as (keyof Flags)[]) {
      if (!allowed.includes(key)) usage(`devices ${command}: option --${key} does not apply`);
    }
  };
  switch (command) {
    case 'add': {
      only(['registry', 'profiles', 'profile', 'json']);
      if (args.length !== 1) usage('devices add: give exactly one device ID');
      if (values.profile === undefined) usage('devices add: --profile NAME is required');
      return add(args[0] as string, values.profile as string, values);
    }
    case 'list':
      only(['registry', 'profiles', 'json']);
      if (args.length !== 0) usage(`devices list: unexpected argument '${args[0]}'`);
      return list(values);
    case 'hash':
      only([]);
      if (args.length !== 0) usage(`devices hash: unexpected argument '${args[0]}'; the secret is read from stdin`);
      return hash();
    case undefined:
      return usage('devices: missing command: add, list, hash or status');
    default:
      return usage(`devices: unknown command '${command}': the commands are add, list, hash and status`);
  }
}

function profilesFrom(flags: Flags): DeviceProfile[] {
  return loadProfiles(flags.profiles ?? defaultProfilesDir());
}

async function add(id: string, profileName: string, flags: Flags): Promise<void> {
  const file = flags.registry ?? DEFAULT_REGISTRY_FILE;
  const idError = deviceIdError(id);
  if (idError !== undefined) throw new EdgelogError('INVALID_ARGUMENT', `device id ${idError}`);
  const profiles = profilesFrom(flags);
  if (!profiles.some((p) => p.name === profileName)) {
    throw new EdgelogError('INVALID_ARGUMENT', `unknown profile '${profileName}'; the profiles are ${profiles.map((p) => p.name).join(', ')}`);
  }
  // Check before the slow part, so a duplicate is refused at once; checked again before writing.
  checkAddable(readRegistry(file, profiles).registry, id, file);
  const password = generateSecret();
  const token = generateSecret();
  const [passwordHash, tokenHash] = await Promise.all([hashSecret(password), hashSecret(token)]);
  for (let attempt = 1; ; attempt++) {
    const { text, doc, registry } = readRegistry(file, profiles);
    checkAddable(registry, id, file);
    appendDevice(doc, { id, profile: profileName, passwordHash, tokenHash });
    // Another writer between our read and here would be overwritten: re-read and start over.
    if (existsSync(file) ? readFileSync(file, 'utf8') !== text : text !== '') {
      if (attempt < MAX_WRITE_ATTEMPTS) continue;
      throw new EdgelogError('INVALID_CONFIG', `device registry ${file} keeps changing while being written; try again`);
    }
    // lineWidth 0: never fold a long hash over two lines, so it stays one greppable line.
    writeAtomically(file, doc.toString({ lineWidth: 0 }));
    break;
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ id, profile: profileName, registry: file, password, token })}\n`);
    return;
  }
  process.stdout.write(
    `Added device ${id} (profile ${profileName}) to ${file}.\n` +
      `  MQTT username:    ${id}\n` +
      `  MQTT password:    ${password}\n` +
      `  WebSocket token:  ${token}\n` +
      'These secrets are shown only now; the registry keeps only their scrypt hashes.\n' +
      'Put them on the device, then restart the gateway so it reads the registry.\n',
  );
}

function checkAddable(registry: DeviceRegistry, id: string, file: string): void {
  const existing = registry.get(id);
  if (existing !== undefined) {
    throw new EdgelogError('INVALID_ARGUMENT', `device ${id} is already in ${file} (profile ${existing.profile.name}); ids must be unique, choose another`);
  }
}

/** The registry file as text, as a YAML document (comments kept) and validated; empty if missing. */
function readRegistry(file: string, profiles: readonly DeviceProfile[]): { text: string; doc: Document; registry: DeviceRegistry } {
  let text = '';
  if (existsSync(file)) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new EdgelogError('INVALID_CONFIG', `device registry ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error });
    }
  }
  // The whole file must be valid before we add to it: the gateway would refuse it anyway.
  const registry = DeviceRegistry.parse(parseRegistryYaml(text, file), profiles, file);
  const doc = parseDocument(text);
  if (text === '') doc.commentBefore = ' Device registry: see devices/README.md. Add devices with: edgelog devices add ID --profile NAME';
  return { text, doc, registry };
}

function appendDevice(doc: Document, entry: { id: string; profile: string; passwordHash: string; tokenHash: string }): void {
  const node = doc.createNode(entry);
  for (const key of ['passwordHash', 'tokenHash']) {
    const scalar = node.get(key, true);
    if (scalar instanceof Scalar) scalar.type = 'QUOTE_DOUBLE';
  }
  let list = doc.get('devices');
  if (!isSeq(list)) {
    // Missing or empty (validated above): start the list.
    list = doc.createNode([]);
    doc.set('devices', list);
  }
  if (!isSeq(list)) throw new Error('edgelog invariant violated: devices is a YAML sequence');
  list.flow = false;
  list.add(node);
}

/**
 * Replaces `file` so a reader never sees half of it and a power cut leaves the old or the new
 * version: write a temporary file, fsync it, rename over. Keeps the mode of an existing file; a
 * new one is 0600, as it holds credential hashes.
 */
function writeAtomically(file: string, text: string): void {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true });
  const mode = existsSync(file) ? statSync(file).mode & 0o777 : 0o600;
  const temp = `${file}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

function list(flags: Flags): void {
  const file = flags.registry ?? DEFAULT_REGISTRY_FILE;
  const profiles = profilesFrom(flags);
  const registry = existsSync(file) ? DeviceRegistry.load(file, profiles) : DeviceRegistry.empty();
  const rows = registry.ids().map((id) => {
    const d = registry.get(id);
    if (d === undefined) throw new Error('edgelog invariant violated: every listed id is registered');
    return { id, profile: d.profile.name, password: d.passwordHash !== undefined, token: d.tokenHash !== undefined };
  });
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write(`No devices in ${file}${existsSync(file) ? '' : ' (it does not exist yet)'}. Add one with: edgelog devices add ID --profile NAME\n`);
    return;
  }
  const credentials = (r: (typeof rows)[number]) => [r.password ? 'password' : '', r.token ? 'token' : ''].filter(Boolean).join(', ') || 'none (TLS client certificate only)';
  const table = [['ID', 'PROFILE', 'CREDENTIALS'], ...rows.map((r) => [r.id, r.profile, credentials(r)])];
  const widths = [0, 1].map((c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
  for (const row of table) process.stdout.write(`${(row[0] ?? '').padEnd(widths[0] ?? 0)}  ${(row[1] ?? '').padEnd(widths[1] ?? 0)}  ${row[2]}\n`);
}

async function hash(): Promise<void> {
  const secret = await readFirstLine();
  if (secret.length === 0) throw new EdgelogError('INVALID_ARGUMENT', 'no secret on stdin: give it as the first line, e.g. printf "%s\\n" "$SECRET" | edgelog devices hash');
  if ([...secret].length < MIN_OWN_SECRET_CHARS) {
    throw new EdgelogError(
      'INVALID_ARGUMENT',
      `the secret has ${[...secret].length} characters; at least ${MIN_OWN_SECRET_CHARS} are required, since the hash cost assumes a hard-to-guess secret (edgelog devices add generates 32)`,
    );
  }
  process.stdout.write(`${await hashSecret(secret)}\n`);
}

/** The first line of stdin without its line ending, reading at most MAX_SECRET_BYTES. */
async function readFirstLine(): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    const newline = chunk.indexOf(0x0a);
    const part = newline === -1 ? chunk : chunk.subarray(0, newline);
    chunks.push(part);
    bytes += part.length;
    if (bytes > MAX_SECRET_BYTES) {
      throw new EdgelogError('INVALID_ARGUMENT', `the first line of stdin is over ${MAX_SECRET_BYTES} bytes; a secret is one short line`);
    }
    if (newline !== -1) break;
  }
  process.stdin.destroy();
  return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
}
