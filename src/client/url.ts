import { EdgelogClientError } from './errors.js';

/**
 * The WebSocket URL of an endpoint (`/consume` or `/produce`) from what a caller gives: a full
 * endpoint URL (`ws://127.0.0.1:8080/consume`, used as is), or the gateway's base URL
 * (`ws://127.0.0.1:8080`, `http://127.0.0.1:8080`), to which the endpoint's path is added.
 * http: becomes ws: and https: becomes wss:.
 */
export function endpointUrl(url: string | URL, path: '/consume' | '/produce'): string {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new EdgelogClientError('INVALID_ARGUMENT', `url ${JSON.stringify(String(url))} is not a URL; give the gateway's address, e.g. ws://127.0.0.1:8080${path} or http://127.0.0.1:8080`);
  }
  const protocols: Record<string, string> = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };
  const protocol = protocols[parsed.protocol];
  if (protocol === undefined) {
    throw new EdgelogClientError('INVALID_ARGUMENT', `url ${JSON.stringify(String(url))} must start with ws://, wss://, http:// or https://, e.g. ws://127.0.0.1:8080${path}`);
  }
  parsed.protocol = protocol;
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = path;
  return parsed.toString();
}
