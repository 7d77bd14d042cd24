/**
 * `edgelog devices status [ID]`: what the running gateway's devices sent lately (GET
 * /api/devices), quiet ones marked; the registry commands beside it work on the file instead.
 */
import type { DeviceReport } from '../ingest/device-activity.js';
import { ApiClient, segment } from './api-client.js';
import { adminToken, GATEWAY_OPTION_HELP, gatewayUrl } from './gateway-url.js';
import { formatTable, isoTime, printJson } from './output.js';
import { parseCommandLine, UsageError } from './usage-error.js';

export const DEVICE_STATUS_USAGE = `Usage: edgelog devices status [ID] [options]

The running gateway's devices: last seen, readings per second, readings, dead letters, refusals
and the last error; registered devices that sent nothing since it started are listed as never
seen. A device silent for devices.quietAfterMs (default 60 s) is quiet.

Options:
  --quiet                 Only the quiet devices.
  --active                Only the devices that are not quiet.
  --json                  Print the gateway's JSON answer, for scripts.
${GATEWAY_OPTION_HELP}
  -h, --help              Show this help.
`;

/** Devices asked for per request: the API's largest page. */
const PAGE_DEVICES = 1000;
/** Pages read at most (a million devices), so a misbehaving gateway cannot keep the command looping. */
const MAX_PAGES = 1000;

interface DevicePage {
  devices: DeviceReport[];
  total: number;
  quietAfterMs: number;
  next: string | null;
}

/** Runs `edgelog devices status ...` with the arguments after `status`. */
export async function deviceStatus(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(
    argv,
    { quiet: { type: 'boolean' }, active: { type: 'boolean' }, json: { type: 'boolean' }, gateway: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    DEVICE_STATUS_USAGE,
  );
  if (values.help) return void process.stdout.write(DEVICE_STATUS_USAGE);
  if (positionals.length > 1) throw new UsageError(`devices status: give at most one device ID, got ${positionals.length} arguments\n\n${DEVICE_STATUS_USAGE}`);
  if (values.quiet && values.active) throw new UsageError(`devices status: --quiet and --active exclude each other\n\n${DEVICE_STATUS_USAGE}`);
  const client = new ApiClient(gatewayUrl(values.gateway), adminToken(values.token));
  const id = positionals[0];
  if (id !== undefined) {
    const device = await client.get<DeviceReport & { registered: boolean }>(`/api/devices/${segment(id)}`);
    if (values.json) return printJson(device);
    return void process.stdout.write(formatTable(HEADERS, [row(device, Date.now())]));
  }
  const state = values.quiet ? 'quiet' : values.active ? 'active' : 'all';
  const devices: DeviceReport[] = [];
  let after: string | null = null;
  for (let page = 0; page < MAX_PAGES; page++) {
    const query: string = `state=${state}&limit=${PAGE_DEVICES}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const answer: DevicePage = await client.get<DevicePage>(`/api/devices?${query}`);
    devices.push(...answer.devices);
    after = answer.next;
    if (after === null) break;
  }
  if (values.json) return printJson({ devices });
  if (devices.length === 0) return void process.stdout.write(state === 'all' ? 'No devices: none is registered and none has sent anything since the gateway started.\n' : `No ${state} devices.\n`);
  const nowMs = Date.now();
  process.stdout.write(formatTable(HEADERS, devices.map((d) => row(d, nowMs))));
}

const HEADERS = ['DEVICE', 'STATE', 'LAST-SEEN', 'READINGS/S', 'READINGS', 'DEAD-LETTERS', 'REFUSALS', 'LAST-ERROR'];

function row(d: DeviceReport, nowMs: number): Array<string | number | null> {
  const seen = d.lastSeenMs === null ? 'never' : `${isoTime(d.lastSeenMs)} (${Math.round((nowMs - d.lastSeenMs) / 1000)} s ago)`;
  return [d.deviceId, d.quiet ? 'QUIET' : 'active', seen, Math.round(d.ratePerSecond * 100) / 100, d.readings, d.deadLetters, d.refusals, d.lastError === null ? null : `${d.lastError.code}: ${d.lastError.reason}`];
}
