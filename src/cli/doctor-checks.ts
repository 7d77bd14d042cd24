/**
 * The decisions of `edgelog doctor` (docs/doctor.md) as pure functions of what was measured, so
 * each threshold is tested with plain numbers; src/cli/doctor.ts does the measuring and printing.
 */
import { isIP } from 'node:net';
import type { BridgeConfig } from '../../bridges/config.js';
import type { GatewayConfig } from '../config.js';

/** `skip`: the check could not run (no valid config, no timedatectl); it never makes doctor fail. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of the report; `fix` names the concrete action for a warn or a fail. */
export interface CheckResult {
  name: string;
  status: CheckStatus;
  finding: string;
  fix?: string;
}

/** package.json "engines": what the gateway is built and tested on (lmdb-js builds, fs.statfs, fetch). */
export const MIN_NODE_MAJOR = 20;

/**
 * A Raspberry Pi without a real-time clock boots at its image's build date until NTP syncs; no
 * edgelog deployment predates 2024, so an earlier year means the clock has not been set.
 */
export const MIN_PLAUSIBLE_YEAR = 2024;

/** An mtime this far ahead of now is not jitter between clocks: the clock went backwards. */
export const FUTURE_MTIME_TOLERANCE_MS = 60_000;

/** Free space under this many times log.minFreeDiskBytes leaves little room before appends stop. */
export const LOW_DISK_RESERVE_FACTOR = 4;

/** Free space under this share of the filesystem is low whatever the reserve says. */
export const LOW_DISK_FRACTION = 0.1;

/** Filesystems whose locking or fsync LMDB cannot rely on (LMDB's caveats: never on a remote filesystem). */
const UNRELIABLE_FS = /^(nfs\d?|cifs|smb\d?|smbfs|fuse|fuse\..+|9p|ceph|glusterfs)$/;
/** Filesystems in memory: the log is gone after a reboot. */
const MEMORY_FS = /^(tmpfs|ramfs)$/;

/** `v20.20.2` → ok; older than {@link MIN_NODE_MAJOR} → fail. */
export function nodeCheck(version: string): CheckResult {
  const major = Number.parseInt(version.replace(/^v/, ''), 10);
  if (Number.isInteger(major) && major >= MIN_NODE_MAJOR) return { name: 'node', status: 'ok', finding: `Node.js ${version}` };
  return {
    name: 'node',
    status: 'fail',
    finding: `Node.js ${version} is older than ${MIN_NODE_MAJOR}: the gateway needs APIs of Node ${MIN_NODE_MAJOR}`,
    fix: `install Node.js ${MIN_NODE_MAJOR} or newer (e.g. from nodesource.com or nvm) and run edgelog with it`,
  };
}

/** The mount (from /proc/mounts text) holding `path`: the longest mount point that is a prefix of it. */
export function mountOf(mounts: string, path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const line of mounts.split('\n')) {
    const [, rawPoint, type] = line.split(' ');
    if (rawPoint === undefined || type === undefined) continue;
    // /proc/mounts escapes space, tab, newline and backslash as octal (\040).
    const mountPoint = rawPoint.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    // A later line for the same point is mounted over the earlier one.
    if (inside && (best === undefined || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, type };
  }
  return best;
}

/** What is wrong with keeping the log on a filesystem of `type`, or undefined when nothing is known to be. */
export function filesystemConcern(type: string): { problem: string; fix: string } | undefined {
  if (UNRELIABLE_FS.test(type)) {
    return {
      problem: `${type} is a network or FUSE filesystem: LMDB's locks and fsync are not reliable there, so acked readings can be lost or the log corrupted`,
      fix: 'put dataDir (--data-dir) on a local disk (ext4, xfs, f2fs)',
    };
  }
  if (MEMORY_FS.test(type)) {
    return { problem: `${type} is in memory: the log is not durable across reboot`, fix: 'put dataDir (--data-dir) on a disk unless losing the log at reboot is intended' };
  }
  return undefined;
}

/** What was found at the data folder's path. */
export type DataDirFacts = { dir: string } & (
  | { kind: 'folder'; writeError: string | undefined; logBytes: number | undefined; owner: number | undefined; mount: Mount | undefined }
  | { kind: 'file' }
  | { kind: 'unreadable'; code: string }
  /** Not created yet: `parent` is the nearest path above it that exists. */
  | { kind: 'missing'; parent: { path: string; isFolder: boolean; writeError: string | undefined } | undefined; mount?: Mount | undefined }
);

export interface Mount {
  mountPoint: string;
  type: string;
}

/** The folder whose filesystem holds (or will hold) the log, when there is one to measure. */
export function measuredFolder(f: DataDirFacts): string | undefined {
  if (f.kind === 'folder') return f.dir;
  if (f.kind === 'missing' && f.parent?.isFolder) return f.parent.path;
  return undefined;
}

/** The data folder: usable (exists or can be created, writable), what it holds, and on what filesystem. */
export function dataDirCheck(f: DataDirFacts): CheckResult {
  const name = 'data folder';
  const fail = (finding: string, fix: string): CheckResult => ({ name, status: 'fail', finding, fix });
  const other = 'or choose another --data-dir';
  if (f.kind === 'file') return fail(`${f.dir} is a file, not a folder`, `point dataDir (--data-dir) at a folder, or move ${f.dir} away`);
  if (f.kind === 'unreadable') return fail(`cannot look at ${f.dir}: ${f.code}`, `give the gateway's user access to ${f.dir}, ${other}`);
  let finding: string;
  if (f.kind === 'missing') {
    const parent = f.parent;
    if (parent === undefined) return fail(`no folder above ${f.dir} can be looked at`, other.replace(/^or c/, 'c'));
    if (!parent.isFolder) return fail(`${f.dir} cannot be created: ${parent.path} is a file, not a folder`, `point dataDir (--data-dir) at a path under a folder, or move ${parent.path} away`);
    if (parent.writeError !== undefined) {
      return fail(`${f.dir} cannot be created: ${parent.path} is not writable (${parent.writeError})`, `create ${f.dir} and give the gateway's user write access to it, ${other}`);
    }
    finding = `${f.dir}: not created yet, its parent ${parent.path} is writable`;
  } else {
    if (f.writeError !== undefined) {
      const fix = f.writeError === 'EROFS' ? `remount the filesystem of ${f.dir} read-write, ${other}` : `give the gateway's user write access (chown -R USER ${f.dir}), ${other}`;
      return fail(`${f.dir} is not writable (${f.writeError})`, fix);
    }
    const parts = ['writable', f.logBytes === undefined ? 'no log yet' : `log ${formatBytes(f.logBytes)}`];
    if (f.owner !== undefined) parts.push(`in use by gateway process ${f.owner}`);
    finding = `${f.dir}: ${parts.join(', ')}`;
  }
  if (f.mount === undefined) return { name, status: 'ok', finding };
  const concern = filesystemConcern(f.mount.type);
  if (concern === undefined) return { name, status: 'ok', finding: `${finding} (${f.mount.type})` };
  return { name, status: 'warn', finding: `${finding} (${f.mount.type} at ${f.mount.mountPoint}): ${concern.problem}`, fix: concern.fix };
}

export interface DiskFacts {
  dir: string;
  freeBytes: number;
  totalBytes: number;
  /** config log.minFreeDiskBytes */
  minFreeDiskBytes: number;
  /** config log.maxLogBytes; -1 for no cap */
  maxLogBytes: number;
  /** What the log already occupies on disk (data.mdb), 0 without one. */
  logBytes: number;
}

/** Free space against the log's reserve and cap (the log refuses appends below the reserve: LOG_FULL). */
export function diskCheck(d: DiskFacts): CheckResult {
  const name = 'free disk';
  const free = `${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}`;
  if (d.freeBytes < d.minFreeDiskBytes) {
    return {
      name,
      status: 'fail',
      finding: `${free}, below log.minFreeDiskBytes (${formatBytes(d.minFreeDiskBytes)}): the gateway refuses readings (LOG_FULL)`,
      fix: `free space on the filesystem of ${d.dir} or lower log.minFreeDiskBytes`,
    };
  }
  const warnings: string[] = [];
  const fixes: string[] = [];
  if (d.freeBytes < LOW_DISK_RESERVE_FACTOR * d.minFreeDiskBytes || d.freeBytes < LOW_DISK_FRACTION * d.totalBytes) {
    warnings.push(`low: appends stop when free space falls below log.minFreeDiskBytes (${formatBytes(d.minFreeDiskBytes)})`);
    fixes.push(`free space on the filesystem of ${d.dir} or move dataDir to a larger disk`);
  }
  if (d.maxLogBytes >= 0 && d.maxLogBytes > d.freeBytes + d.logBytes) {
    warnings.push(`log.maxLogBytes (${formatBytes(d.maxLogBytes)}) is more than the free space plus the current log (${formatBytes(d.freeBytes + d.logBytes)}): the disk fills before the cap is reached`);
    fixes.push(`lower log.maxLogBytes below ${formatBytes(Math.max(0, d.freeBytes + d.logBytes - d.minFreeDiskBytes))}`);
  }
  if (warnings.length === 0) return { name, status: 'ok', finding: free };
  return { name, status: 'warn', finding: `${free}; ${warnings.join('; ')}`, fix: fixes.join('; ') };
}

/** The clock against {@link MIN_PLAUSIBLE_YEAR} and the mtimes of the data folder's files. */
export function clockCheck(nowMs: number, futureFiles: readonly { path: string; mtimeMs: number }[], scanned: boolean): CheckResult {
  const now = new Date(nowMs).toISOString();
  if (new Date(nowMs).getUTCFullYear() < MIN_PLAUSIBLE_YEAR) {
    return {
      name: 'clock',
      status: 'fail',
      finding: `the clock says ${now}, before ${MIN_PLAUSIBLE_YEAR}: it has not been set (no RTC, no NTP sync yet), so record timestamps and retention go wrong`,
      fix: 'let NTP sync before starting the gateway (systemd: After=time-sync.target with systemd-time-wait-sync), or fit an RTC module',
    };
  }
  const first = futureFiles[0];
  if (first !== undefined) {
    const aheadS = Math.round((first.mtimeMs - nowMs) / 1000);
    return {
      name: 'clock',
      status: 'warn',
      finding: `${now}, but ${futureFiles.length} file(s) in the data folder were written later (${first.path}, ${aheadS} s ahead): the clock went backwards since the log was written`,
      fix: 'set the clock right (NTP) before starting the gateway; records written meanwhile carry timestamps out of order',
    };
  }
  return { name: 'clock', status: 'ok', finding: scanned ? `${now}; no file in the data folder is from the future` : now };
}

/** How `timedatectl show -p NTPSynchronized --value` went. */
export type NtpProbe = { kind: 'missing' } | { kind: 'failed'; message: string } | { kind: 'answer'; value: string };

/** NTP sync as systemd sees it; never a fail: a missing timedatectl only means it could not be checked. */
export function ntpCheck(probe: NtpProbe): CheckResult {
  const name = 'time sync';
  if (probe.kind === 'missing') return { name, status: 'skip', finding: 'not checked: timedatectl is not installed (no systemd)' };
  if (probe.kind === 'failed') return { name, status: 'skip', finding: `not checked: timedatectl did not answer (${probe.message})` };
  if (probe.value === 'yes') return { name, status: 'ok', finding: 'NTP synchronized' };
  if (probe.value === 'no') {
    return {
      name,
      status: 'warn',
      finding: 'the clock is not NTP synchronized: timestamps may drift or jump when it syncs',
      fix: "run 'timedatectl set-ntp true' and check 'timedatectl timesync-status' (an NTP server must be reachable)",
    };
  }
  return { name, status: 'skip', finding: `not checked: timedatectl answered ${JSON.stringify(probe.value)}` };
}

/** One listener of the gateway and how the user changes its port. */
export interface Listener {
  name: string;
  what: string;
  port: number;
  option: string;
}

/** What a gateway's /healthz says about itself. */
export interface Health {
  gatewayId: string | undefined;
  ports: Record<string, number>;
}

/** Like Mosquitto 2 (src/gateway.ts): loopback only, unless clients can authenticate or anonymous ones are allowed in. */
export function bindHost(config: Readonly<GatewayConfig>): string {
  return config.allowAnonymous || config.devices.registryFile !== '' ? '0.0.0.0' : '127.0.0.1';
}

/** The listeners the gateway would open: MQTT and HTTP, and with certificates MQTT over TLS and HTTPS. */
export function listenersOf(config: Readonly<GatewayConfig>): Listener[] {
  const listeners: Listener[] = [
    { name: 'mqtt port', what: 'MQTT', port: config.mqtt.port, option: '--mqtt-port' },
    { name: 'http port', what: 'HTTP', port: config.http.port, option: '--http-port' },
  ];
  if (config.tls.certFile !== '') {
    listeners.push({ name: 'mqtt tls port', what: 'MQTT over TLS', port: config.tls.mqttPort, option: "config key 'tls.mqttPort'" });
    listeners.push({ name: 'https port', what: 'HTTPS', port: config.tls.httpsPort, option: "config key 'tls.httpsPort'" });
  }
  return listeners;
}

/**
 * A listener's port: `outcome` is 'free' or the code listening failed with; `running` is the
 * /healthz answer of a gateway on this machine's HTTP port, when one answered.
 */
export function portCheck(l: Listener, host: string, outcome: string, running: Health | undefined, all: readonly Listener[]): CheckResult {
  const where = `port ${l.port} on ${host}`;
  const twin = all.find((other) => other.name !== l.name && other.port === l.port && l.port !== 0);
  if (twin !== undefined) {
    return { name: l.name, status: 'fail', finding: `port ${l.port} is configured for both ${l.what} and ${twin.what}`, fix: `give each listener its own port (${l.option}, ${twin.option})` };
  }
  if (l.port === 0) return { name: l.name, status: 'ok', finding: 'port 0: a free port is picked at start (logged in the start-up line)' };
  if (outcome === 'free') return { name: l.name, status: 'ok', finding: `${where} is free` };
  if (outcome === 'EADDRINUSE') {
    // The HTTP port answered /healthz itself; another port is the gateway's when /healthz lists it.
    if (running !== undefined && (l.name === 'http port' || Object.values(running.ports).includes(l.port))) {
      const id = running.gatewayId === undefined ? '' : ` (gateway ${running.gatewayId})`;
      const mqtt = l.name === 'http port' && running.ports['mqtt'] !== undefined ? `; its MQTT port is ${running.ports['mqtt']}` : '';
      return { name: l.name, status: 'ok', finding: `port ${l.port}: an edgelog gateway is already running here${id}${mqtt}` };
    }
    return {
      name: l.name,
      status: 'fail',
      finding: `port ${l.port} is taken by another program`,
      fix: `stop it (find it with: ss -ltnp 'sport = :${l.port}') or choose another port with ${l.option} (0 picks a free one)`,
    };
  }
  if (outcome === 'EACCES') {
    return { name: l.name, status: 'fail', finding: `${where} needs privileges (ports below 1024)`, fix: `choose a port from 1024 up with ${l.option}, or grant the gateway CAP_NET_BIND_SERVICE` };
  }
  return { name: l.name, status: 'fail', finding: `cannot listen on ${where}: ${outcome}`, fix: `choose another port with ${l.option}, or check the host's network setup` };
}

/** One server address of a bridge, to connect to. */
export interface UpstreamTarget {
  bridge: string;
  /** The config key the address comes from, for fix lines. */
  key: string;
  url: string;
  host: string;
  port: number;
  protocol: 'mqtt' | 'nats';
  /** Handshake TLS: mqtts://, tls://, or the bridge has tls settings. */
  tls: boolean;
  tlsFiles: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
}

const DEFAULT_PORTS: Record<string, number> = { 'mqtt:': 1883, 'mqtts:': 8883, 'nats:': 4222, 'tls:': 4222 };

/** Every server address of every bridge (bridges/config.ts has validated their form). */
export function upstreamTargets(bridges: readonly BridgeConfig[]): UpstreamTarget[] {
  return bridges.flatMap((b, i) => {
    const urls = b.type === 'mqtt' ? [b.mqtt.url] : b.nats.servers;
    const tlsFiles = b.type === 'mqtt' ? b.mqtt.tls : b.nats.tls;
    return urls.map((url, j): UpstreamTarget => {
      const parsed = new URL(url);
      return {
        bridge: b.settings.name,
        key: b.type === 'mqtt' ? `bridges[${i}].mqtt.url` : `bridges[${i}].nats.servers${urls.length > 1 ? `[${j}]` : ''}`,
        url,
        host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: parsed.port === '' ? (DEFAULT_PORTS[parsed.protocol] ?? 0) : Number(parsed.port),
        protocol: b.type,
        tls: parsed.protocol === 'mqtts:' || parsed.protocol === 'tls:' || tlsFiles !== undefined,
        tlsFiles,
      };
    });
  });
}

/** The SNI name to send: a host name, never an IP address (RFC 6066 §3). */
export function serverName(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/** A failed connection to an upstream as a reason and the fix for it. */
export function connectFailure(t: UpstreamTarget, stage: 'tcp' | 'tls', error: unknown, timeoutMs: number): { reason: string; fix: string } {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = (error as Error | undefined)?.message ?? String(error);
  const where = `${t.host}:${t.port}`;
  if (code === 'ETIMEDOUT') {
    return { reason: `timed out after ${timeoutMs / 1000} s${stage === 'tls' ? ' in the TLS handshake' : ''}`, fix: `check the network path and any firewall to ${where}; the bridge keeps retrying, but replicates nothing until it connects` };
  }
  if (stage === 'tls') {
    return {
      reason: `TLS error: ${message}`,
      fix: `check ${t.key.replace(/\.(url|servers.*)$/, '.tls.caFile')} names the CA that signed the server's certificate and that the host in ${t.key} matches the certificate`,
    };
  }
  if (code === 'ECONNREFUSED') return { reason: 'connection refused', fix: `start the ${t.protocol === 'mqtt' ? 'broker' : 'NATS server'} at ${where}, or correct ${t.key}` };
  if (code === 'ENOTFOUND') return { reason: `DNS name not found: ${t.host}`, fix: `correct the host name in ${t.key}, or check the DNS settings (/etc/resolv.conf)` };
  if (code === 'EAI_AGAIN') return { reason: `DNS lookup of ${t.host} failed for now`, fix: 'check the DNS server is reachable (/etc/resolv.conf); the link may be down' };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { reason: `no route to ${t.host} (${code})`, fix: 'check the network link, the routes and the address in ' + t.key };
  return { reason: `${code ?? 'error'}: ${message}`, fix: `check the network and the upstream at ${where} (${t.key})` };
}

/** Bytes in binary units, one decimal below 10 (config/edgelog.yaml speaks MiB). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

const LABELS: Record<CheckStatus, string> = { ok: 'ok', warn: 'warn', fail: 'FAIL', skip: 'skip' };

/** The report for people: status, check name, finding; a `fix:` line under each warn and fail. */
export function formatReport(checks: readonly CheckResult[]): string {
  const nameWidth = Math.max(12, ...checks.map((c) => c.name.length));
  const indent = ' '.repeat(6);
  return checks
    .map((c) => {
      const line = `${LABELS[c.status].padEnd(6)}${c.name.padEnd(nameWidth)}  ${c.finding}\n`;
      return c.fix !== undefined && (c.status === 'warn' || c.status === 'fail') ? `${line}${indent}fix: ${c.fix}\n` : line;
    })
    .join('');
}
