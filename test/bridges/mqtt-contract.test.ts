import { pino } from 'pino';
import { describe, onTestFinished } from 'vitest';
import { MqttUpstream } from '../../bridges/mqtt/mqtt-upstream.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/mosquitto.js';
import { centralSubscriber } from './mqtt-central.js';
import { upstreamContract } from './upstream-contract.js';

const skip = mosquittoSkipReason();
const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
let clients = 0;

for (const protocolVersion of [5, 4] as const) {
  describe.skipIf(skip !== undefined)(`Mosquitto, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`, () => {
    upstreamContract(`MQTT ${protocolVersion}`, async ({ batch }) => {
      const broker = await startMosquitto();
      const central = await centralSubscriber(broker.url, protocolVersion);
      const upstream = new MqttUpstream({
        url: broker.url,
        protocolVersion,
        clientId: `contract-${process.pid}-${++clients}`,
        gatewayId: 'gw-contract',
        batch,
        commands: null,
        connectTimeoutMs: 5_000,
        ackTimeoutMs: 10_000,
        logger,
      });
      onTestFinished(() => upstream.disconnect());
      return { upstream, received: () => central.received(), stopServer: () => broker.stop(), startServer: () => broker.start() };
    });
  });
}
