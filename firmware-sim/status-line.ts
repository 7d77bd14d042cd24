import type { FleetSnapshot } from './fleet.js';
import type { FleetReport } from './report.js';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

/** One status line from two snapshots about a second apart and the latency of that interval. */
export function formatStatusLine(previous: FleetSnapshot, now: FleetSnapshot, latency: { p50Ms: number; p99Ms: number; count: number }): string {
  const seconds = Math.max((now.elapsedMs - previous.elapsedMs) / 1000, 0.001);
  const sentPerS = (now.published - previous.published) / seconds;
  const ackedPerS = (now.publishAcks - previous.publishAcks) / seconds;
  const lat = latency.count === 0 ? 'ack p50 - p99 -' : `ack p50 ${ms(latency.p50Ms)} ms p99 ${ms(latency.p99Ms)} ms`;
  return (
    `${(now.elapsedMs / 1000).toFixed(0)}s ${now.phase} | connected ${int(now.connected)}/${int(now.devices)} | ` +
    `sent ${int(sentPerS)}/s acked ${int(ackedPerS)}/s | ${lat} | errors ${int(now.errors)} | ` +
    `buffered ${int(now.buffered + now.inflight)} | dropped ${int(now.dropped)}`
  );
}

/** The end-of-run summary printed on stdout. */
export function formatSummary(r: FleetReport): string {
  const s = r.settings;
  const lines = [
    `firmware-sim: ${int(s.devices)} devices × ${s.ratePerSecond}/s for ${s.durationS} s to ${s.gateway} (${s.transport === 'ws-ingest' ? 'WebSocket ingest' : `QoS ${s.qos}`}, seed ${s.seed}, start time ${s.startTimeMs}) in ${(r.elapsedMs / 1000).toFixed(1)} s`,
    `  readings   generated ${int(r.readings.generated)}, sent ${int(r.readings.sent)}, acknowledged ${int(r.readings.acknowledged)}` +
      (s.transport === 'ws-ingest' ? ` (${int(r.readings.deadLettered)} dead-lettered), rejected ${int(r.readings.rejected)}` : '') +
      `, dropped ${int(r.readings.dropped)} (${int(r.readings.droppedAfterSend)} after a send), unsent ${int(r.readings.unsent)}`,
    `  publishes  ${int(r.publishes.total)} (acknowledged ${int(r.publishes.acknowledged)}, resent ${int(r.publishes.resent)}, ` +
      `duplicated ${int(r.publishes.duplicatedOnPurpose)}, malformed ${int(r.publishes.malformedOnPurpose)}, oversize ${int(r.publishes.oversizeOnPurpose)} on purpose)`,
    ...(r.publishes.refused > 0
      ? [`  refused    ${int(r.publishes.refused)} by the gateway (${Object.entries(r.publishes.refusedByCode).map(([k, v]) => `${k} ${v}`).join(', ')})`]
      : []),
    `  rate       ${int(r.readings.generated / Math.max(r.elapsedMs / 1000, 0.001))} readings/s over the whole run`,
    `  ack        p50 ${ms(r.latency.p50)} ms, p90 ${ms(r.latency.p90)} ms, p99 ${ms(r.latency.p99)} ms, max ${ms(r.latency.max)} ms (${int(r.latency.count)} acks)`,
    `  network    ${int(r.connections.connects)} connects, ${int(r.connections.errors)} errors` +
      (Object.keys(r.connections.errorsByCode).length > 0 ? ` (${Object.entries(r.connections.errorsByCode).map(([k, v]) => `${k} ${v}`).join(', ')})` : '') +
      (r.faults.flaps > 0 || r.faults.bursts > 0 ? `, ${int(r.faults.flaps)} flaps, ${int(r.faults.bursts)} bursts` : ''),
  ];
  return `${lines.join('\n')}\n`;
}
