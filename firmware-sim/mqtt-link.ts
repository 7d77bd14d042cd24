import mqtt from 'mqtt';
import type { Link, LinkEvents, Outgoing, SendOutcome } from './link.js';
import type { FleetConfig } from './options.js';

/** A device's MQTT 3.1.1 connection (TCP, TLS or WebSocket): one PUBLISH per reading to devices/{deviceId}/{stream}. */
export function openMqttLink(config: FleetConfig, id: string, events: LinkEvents): Link {
  let ended = false;
  const client = mqtt.connect(config.gateway, {
    clientId: id,
    username: id,
    password: config.password?.replaceAll('{deviceId}', id),
    protocolVersion: 4, // MQTT 3.1.1: what sensors speak and what the gateway's aedes accepts (DESIGN "Traps")
    clean: true,
    // The device owns reconnects (backoff with jitter) and its buffer; mqtt.js must not queue or retry on its own.
    reconnectPeriod: 0,
    queueQoSZero: false,
    resubscribe: false,
    connectTimeout: config.connectTimeoutMs,
    keepalive: config.keepaliveS,
  });
  client.on('connect', () => {
    if (!ended) events.open();
  });
  client.on('error', (error: Error & { code?: string | number }) => {
    if (!ended) events.error(typeof error.code === 'string' ? error.code : error.message);
  });
  client.on('close', () => {
    if (ended) return;
    ended = true;
    events.closed('connection closed');
  });
  const acked: SendOutcome = { kind: config.qos === 1 ? 'acked' : 'sent' };
  return {
    send(items: readonly Outgoing[], done: (index: number, outcome: SendOutcome) => void): void {
      items.forEach((item, i) => {
        client.publish(`devices/${id}/${item.stream}`, item.payload, { qos: config.qos }, (error) => {
          // An error means the connection is going: the close event reports it, the device requeues.
          if (!ended && (error === undefined || error === null)) done(i, acked);
        });
      });
    },
    async end(graceful: boolean, timeoutMs: number): Promise<void> {
      const wasUp = !ended;
      ended = true;
      if (!graceful || !wasUp || !client.connected) {
        client.end(true); // flushes mqtt.js's own callbacks; `ended` makes them no-ops
        return;
      }
      // A DISCONNECT packet, as firmware going to sleep sends; bounded so a dead peer cannot hold us.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          client.end(true);
          resolve();
        }, timeoutMs);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
