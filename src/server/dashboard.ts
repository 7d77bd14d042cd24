/**
 * Serves the dashboard's static files (src/server/dashboard/: one page, its script and its
 * style; no framework, no build step) at `/` and `/dashboard/…`. The files hold no data, so they
 * are served to anyone; the data comes from /api/live and /api, which need the admin access.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EdgelogError } from '../errors.js';
import { sendError } from './http-json.js';
import { pathOf, type HttpRoute } from './http-server.js';

export const DASHBOARD_PREFIX = '/dashboard';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Same-origin everything, no inline script: a value shown on the page (a device id, a
 * dead-letter reason) can never run as code, even if the page had a bug that inserted it as HTML.
 */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  body: Buffer;
  contentType: string;
}

/** The dashboard's files, read once at start (a few tens of KB). */
export class Dashboard {
  private constructor(private readonly assets: ReadonlyMap<string, Asset>) {}

  static load(dir = defaultDashboardDir()): Dashboard {
    const assets = new Map<string, Asset>();
    for (const name of readdirSync(dir)) {
      const contentType = CONTENT_TYPES[extname(name)];
      if (contentType !== undefined) assets.set(name, { body: readFileSync(join(dir, name)), contentType });
    }
    if (!assets.has('index.html')) throw new EdgelogError('INTERNAL', `the dashboard's index.html is missing from ${dir}`);
    return new Dashboard(assets);
  }

  /** `/` (the page) and `/dashboard/…` (its files). */
  routes(): HttpRoute[] {
    return [
      { prefix: '/', exact: true, handler: (req, res) => this.serve('index.html', req, res) },
      { prefix: DASHBOARD_PREFIX, handler: (req, res) => this.serve(pathOf(req).slice(DASHBOARD_PREFIX.length + 1), req, res) },
    ];
  }

  private serve(name: string, req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, new EdgelogError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not served at ${pathOf(req)}; use GET`), { allow: 'GET, HEAD' });
    }
    const asset = this.assets.get(name);
    if (asset === undefined) {
      return sendError(res, new EdgelogError('UNKNOWN_ROUTE', `no dashboard file ${JSON.stringify(name.slice(0, 80))}; the dashboard is at /`));
    }
    // no-cache: revalidated on every load, so a gateway upgrade never leaves an old script running.
    res.writeHead(200, { 'content-type': asset.contentType, 'content-length': String(asset.body.length), 'cache-control': 'no-cache', ...SECURITY_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }
}

/** src/server/dashboard from here (tsx) or from dist/src/server (compiled; tsc copies no assets). */
function defaultDashboardDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'dashboard'), resolve(here, '..', '..', '..', 'src', 'server', 'dashboard')];
  const found = candidates.find((dir) => existsSync(join(dir, 'index.html')));
  if (found === undefined) throw new EdgelogError('INTERNAL', `the dashboard's files are missing: looked in ${candidates.join(' and ')}`);
  return found;
}
