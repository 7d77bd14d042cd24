/**
 * The admin API under `/api` (docs/api.md): JSON over HTTP for the log's topics and the consumer
 * groups, used by `edgelog topics` and `edgelog groups`. Loopback only until the admin token of
 * issue 7 protects it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { EdgelogError } from '../errors.js';
import type { GroupCoordinator } from '../groups/coordinator.js';
import type { CommitLog } from '../log/commit-log.js';
import { validateGroupId } from '../log/offsets.js';
import { validateTopicName } from '../log/topic-config.js';
import type { DeviceActivity, DeviceReport } from '../ingest/device-activity.js';
import { decodeSegment, parseCreateTopic, parseDeviceQuery, parseResetOffsets } from './api-requests.js';
import type { Overview } from './overview.js';
import { pathOf } from './http-server.js';
import { readJsonBody, sendError, sendJson } from './http-json.js';

/** Where the API is served on the gateway's HTTP port. */
export const API_PREFIX = '/api';

/**
 * Admin calls come from people and scripts, one at a time; 16 in flight is plenty and bounds the
 * request bodies held at once to 16 × 64 KiB = 1 MiB.
 */
export const MAX_CONCURRENT_API_REQUESTS = 16;

/** Member ids a refusal lists at most, so the message stays one readable line. */
const MAX_LISTED_MEMBERS = 10;

export interface AdminApiOptions {
  log: CommitLog;
  groups: GroupCoordinator;
  /** The status of each upstream bridge (bridges/bridge.ts BridgeStatus), named. */
  bridges?: () => ReadonlyArray<{ readonly name: string }>;
  /** What each device sent lately, and the registered ids (a registered device may not have sent anything yet). */
  devices?: { activity: DeviceActivity; registered: () => readonly string[] };
  /** The dashboard's overview (GET /api/overview). */
  overview?: () => Overview;
  /** Why the gateway is not ready, empty when it is (GET /api/health). */
  readiness?: () => string[];
  logger: Logger;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** A route's handler gets the URL-decoded path parameters. */
type Handler = (params: string[], req: IncomingMessage, res: ServerResponse) => Answer | Promise<Answer>;

interface Route {
  /** Path segments after /api; `{…}` is a parameter. */
  segments: string[];
  methods: Record<string, Handler>;
}

/** Serves `/api`; {@link handle} is the HttpServer route handler. */
export class AdminApi {
  private readonly routes: Route[];
  private readonly logger: Logger;
  private inFlight = 0;

  constructor(private readonly opts: AdminApiOptions) {
    this.logger = opts.logger.child({ component: 'api' });
    this.routes = [
      { segments: ['topics'], methods: { GET: () => this.listTopics(), POST: (_, req, res) => this.createTopic(req, res) } },
      { segments: ['topics', '{name}'], methods: { GET: ([name]) => this.describeTopic(name!), DELETE: ([name]) => this.deleteTopic(name!) } },
      { segments: ['groups'], methods: { GET: () => this.listGroups() } },
      { segments: ['groups', '{id}'], methods: { GET: ([id]) => this.describeGroup(id!), DELETE: ([id], req) => this.deleteGroup(id!, req) } },
      { segments: ['groups', '{id}', 'reset-offsets'], methods: { POST: ([id], req, res) => this.resetOffsets(id!, req, res) } },
      { segments: ['bridges'], methods: { GET: () => ({ status: 200, body: { bridges: this.bridgeStatus() } }) } },
      { segments: ['bridges', '{name}'], methods: { GET: ([name]) => this.describeBridge(name!) } },
      { segments: ['devices'], methods: { GET: (_, req) => this.listDevices(req) } },
      { segments: ['devices', '{id}'], methods: { GET: ([id]) => this.describeDevice(id!) } },
      { segments: ['overview'], methods: { GET: () => ({ status: 200, body: this.opts.overview?.() ?? {} }) } },
      { segments: ['health'], methods: { GET: () => this.health() } },
    ];
  }

  /** Answers one request under /api; never throws, never sends a stack trace. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    // Who may call it is the HTTP server's admin access check (access.ts).
    if (this.inFlight >= MAX_CONCURRENT_API_REQUESTS) {
      return sendError(res, new EdgelogError('API_BUSY', `the admin API is already handling ${this.inFlight} requests, the most at once (${MAX_CONCURRENT_API_REQUESTS}); retry shortly`));
    }
    this.inFlight++;
    res.once('close', () => this.inFlight--);
    void this.dispatch(req, res).catch((error: unknown) => {
      if (error instanceof EdgelogError) return sendError(res, error);
      this.logger.error({ err: error, method: req.method, path: pathOf(req) }, 'admin API request failed');
      sendError(res, new EdgelogError('INTERNAL', 'the gateway failed to handle this request (a bug; it logged the cause)'));
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    const rest = path.slice(API_PREFIX.length).replace(/\/$/, '');
    const segments = rest === '' ? [] : rest.slice(1).split('/');
    const match = this.match(segments);
    if (!match) {
      throw new EdgelogError('UNKNOWN_ROUTE', `no API route at ${JSON.stringify(path.slice(0, 120))}; the routes are ${this.describeRoutes()} (docs/api.md)`);
    }
    const method = req.method ?? 'GET';
    const handler = match.route.methods[method];
    if (!handler) {
      const allowed = Object.keys(match.route.methods);
      const error = new EdgelogError('METHOD_NOT_ALLOWED', `${method} is not served at ${routePath(match.route)}; use ${allowed.join(' or ')}`);
      return sendError(res, error, { allow: allowed.join(', ') });
    }
    const answer = await handler(match.params, req, res);
    sendJson(res, answer.status, answer.body, answer.headers);
  }

  private match(segments: string[]): { route: Route; params: string[] } | null {
    for (const route of this.routes) {
      if (route.segments.length !== segments.length) continue;
      if (!route.segments.every((s, i) => s.startsWith('{') || s === segments[i])) continue;
      // Decoded only once the route fits: a bad escape is then a 400 about this route's parameter.
      const params = route.segments.flatMap((s, i) => (s.startsWith('{') ? [decodeSegment(segments[i]!, s.slice(1, -1))] : []));
      return { route, params };
    }
    return null;
  }

  private describeRoutes(): string {
    return this.routes.flatMap((r) => Object.keys(r.methods).map((m) => `${m} ${routePath(r)}`)).join(', ');
  }

  // ---------------------------------------------------------------- topics

  private listTopics(): Answer {
    const { log } = this.opts;
    const topics = log.listTopics().map((name) => {
      const { partitions } = log.describeTopic(name);
      return {
        name,
        partitions: partitions.length,
        records: partitions.reduce((sum, p) => sum + p.records, 0),
        bytes: partitions.reduce((sum, p) => sum + p.bytes, 0),
      };
    });
    return { status: 200, body: { topics } };
  }

  private async createTopic(req: IncomingMessage, res: ServerResponse): Promise<Answer> {
    const { name, config } = parseCreateTopic(await readJsonBody(req, res));
    const description = await this.opts.log.createTopic(name, config);
    return { status: 201, body: description, headers: { location: `${API_PREFIX}/topics/${encodeURIComponent(name)}` } };
  }

  private describeTopic(name: string): Answer {
    return { status: 200, body: this.opts.log.describeTopic(validateTopicName(name)) };
  }

  private async deleteTopic(name: string): Promise<Answer> {
    await this.opts.log.deleteTopic(validateTopicName(name));
    return { status: 200, body: { name, deleted: true } };
  }

  // ---------------------------------------------------------------- bridges

  private bridgeStatus(): ReadonlyArray<{ readonly name: string }> {
    return this.opts.bridges?.() ?? [];
  }

  private describeBridge(name: string): Answer {
    const all = this.bridgeStatus();
    const status = all.find((b) => b.name === name);
    if (status === undefined) {
      throw new EdgelogError('UNKNOWN_BRIDGE', `unknown bridge ${JSON.stringify(name.slice(0, 80))}: the configured bridges are ${all.map((b) => b.name).join(', ') || 'none (config key bridges)'}`);
    }
    return { status: 200, body: status };
  }

  // ---------------------------------------------------------------- devices

  /** Registered and seen devices by id, a page at a time (`?state=quiet|active|all&limit=N&after=ID`). */
  private listDevices(req: IncomingMessage): Answer {
    const { state, limit, after } = parseDeviceQuery(new URL(req.url ?? '/', 'http://gateway').searchParams);
    const devices = this.opts.devices;
    if (devices === undefined) return { status: 200, body: { devices: [], total: 0, next: null } };
    // One instant for the whole listing, on the activity table's monotonic clock (its silence math).
    const nowMs = devices.activity.monotonicNowMs();
    const ids = [...new Set([...devices.registered(), ...devices.activity.seenIds()])].sort();
    const matching = ids.map((id) => devices.activity.report(id, nowMs)).filter((d) => state === 'all' || (state === 'quiet') === d.quiet);
    const start = after === undefined ? 0 : matching.findIndex((d) => d.deviceId > after);
    const page: DeviceReport[] = start < 0 ? [] : matching.slice(start, start + limit);
    const more = start >= 0 && start + limit < matching.length;
    return {
      status: 200,
      body: { devices: page, total: matching.length, quietAfterMs: devices.activity.opts.quietAfterMs, next: more ? page.at(-1)!.deviceId : null },
    };
  }

  private describeDevice(id: string): Answer {
    const devices = this.opts.devices;
    const registered = devices?.registered().includes(id) ?? false;
    if (devices === undefined || (!registered && !devices.activity.has(id))) {
      throw new EdgelogError('UNKNOWN_DEVICE', `unknown device ${JSON.stringify(id.slice(0, 80))}: it is not registered and has sent nothing since the gateway started (GET /api/devices lists the devices)`);
    }
    return { status: 200, body: { ...devices.activity.report(id), registered } };
  }

  /** Ready or not and why, with what an operator checks first. */
  private health(): Answer {
    const reasons = this.opts.readiness?.() ?? [];
    const bridges = (this.bridgeStatus() as ReadonlyArray<{ name: string; state?: string; backlogRecords?: number }>).map(({ name, state, backlogRecords }) => ({ name, state, backlogRecords }));
    return { status: 200, body: { ready: reasons.length === 0, reasons, bridges } };
  }

  // ---------------------------------------------------------------- groups

  /** Groups with members and groups with only committed offsets: the coordinator's list joins both. */
  private listGroups(): Answer {
    return { status: 200, body: { groups: this.opts.groups.list() } };
  }

  private describeGroup(id: string): Answer {
    const description = this.opts.groups.describe(id);
    if (description.members.length === 0 && description.offsets.length === 0) throw unknownGroup(id);
    return { status: 200, body: description };
  }

  private async resetOffsets(id: string, req: IncomingMessage, res: ServerResponse): Promise<Answer> {
    validateGroupId(id);
    const { topic, to, partition } = parseResetOffsets(await readJsonBody(req, res));
    // Checked in the same turn as the coordinator's own check, so no member can join in between.
    this.checkEmpty(id, 'resetting its offsets');
    const offsets = await this.opts.groups.resetOffsets(id, topic, to, partition);
    return { status: 200, body: { groupId: id, topic, offsets: offsets.map(({ partition, offset }) => ({ partition, offset })) } };
  }

  private async deleteGroup(id: string, req: IncomingMessage): Promise<Answer> {
    validateGroupId(id);
    this.checkEmpty(id, 'deleting it');
    if (!this.opts.log.listGroups().includes(id)) throw unknownGroup(id);
    const deletedOffsets = await this.opts.log.deleteGroupOffsets(id);
    this.logger.info({ group: id, deletedOffsets, remote: req.socket.remoteAddress }, 'group deleted');
    return { status: 200, body: { groupId: id, deletedOffsets } };
  }

  /** Refuses with GROUP_NOT_EMPTY while the group has members: they would commit over the change. */
  private checkEmpty(id: string, doing: string): void {
    const members = this.opts.groups.describe(id).members.map((m) => m.memberId);
    if (members.length === 0) return;
    const listed = members.length <= MAX_LISTED_MEMBERS ? members.join(', ') : `${members.slice(0, MAX_LISTED_MEMBERS).join(', ')} and ${members.length - MAX_LISTED_MEMBERS} more`;
    throw new EdgelogError(
      'GROUP_NOT_EMPTY',
      `group '${id}' has ${members.length} active member(s) (${listed}): stop its consumers (or wait for their session timeout) before ${doing}`,
    );
  }
}

function unknownGroup(id: string): EdgelogError {
  return new EdgelogError('UNKNOWN_GROUP', `unknown group '${id}': it has no members and no committed offsets (edgelog groups list shows the groups)`);
}

function routePath(route: Route): string {
  return `${API_PREFIX}/${route.segments.join('/')}`;
}
