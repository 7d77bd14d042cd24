/**
 * `/healthz` and `/readyz` for supervisors (systemd watchdogs, Kubernetes probes, edgelog doctor).
 * Served to anyone: they say whether the gateway is up and ready, nothing of its data.
 */
import type { HttpRoute } from './http-server.js';
import { sendJson } from './http-json.js';

/** Why the gateway is not ready, or an empty list when it is. */
export type ReadinessCheck = () => string[];

/**
 * `/healthz`: the process answers (its event loop turns). `/readyz`: it takes readings, 503 with
 * the reasons while it starts, shuts down, or its log refuses appends.
 */
export function healthRoutes(identity: { gatewayId: string; ports: () => Record<string, number | null> }, readiness: ReadinessCheck): HttpRoute[] {
  return [
    { prefix: '/healthz', exact: true, handler: (_req, res) => sendJson(res, 200, { status: 'ok', service: 'edgelog', gatewayId: identity.gatewayId, ports: identity.ports() }) },
    {
      prefix: '/readyz',
      exact: true,
      handler: (_req, res) => {
        const reasons = readiness();
        sendJson(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
      },
    },
  ];
}
