import { spawn } from 'node:child_process';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { DEADLETTER_TOPIC } from '../../src/ingest/intake.js';
import { chromiumSkipReason, launchBrowser, openPage } from '../helpers/browser.js';
import { startGateway, writeRegistry } from '../helpers/gateway.js';

/**
 * The dashboard (src/server/dashboard/) in a real Chromium against a real gateway, with
 * firmware-sim fleets publishing over MQTT as separate processes, as an operator would run them.
 */

const skip = chromiumSkipReason();
const CLI = join(import.meta.dirname, '../../firmware-sim/cli.ts');
const ENVIRONMENT_PROFILE = join(import.meta.dirname, '../../devices/profiles/environment-sensor.json');
/** The environment sensor's streams: the topics its readings land in (default topic rule). */
const STREAMS = ['climate', 'status'];
/** Small, so a stopped device turns quiet within a few seconds. */
const QUIET_AFTER_MS = 3000;
/** Bounds on waiting for the page: frames come every second, but the machine is shared and slow. */
const PAGE_TIMEOUT_MS = 20_000;

/** Runs firmware-sim against the gateway as a child process; stopped by its PID when the test finishes. */
function runFleet(gateway: Gateway, args: readonly string[]): { exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CLI, '--gateway', `mqtt://127.0.0.1:${gateway.ports.mqtt}`, '--profile', ENVIRONMENT_PROFILE, '--seed', '7', '--ramp', '100', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await exited;
  });
  return { exited, stderr: () => stderr };
}

async function openDashboard(gateway: Gateway, viewport?: { width: number; height: number }) {
  const browser = await launchBrowser();
  return openPage(browser, `http://127.0.0.1:${gateway.ports.http}/`, viewport);
}

/** The exact value behind a formatted number on the page (its data-value). */
async function numberOf(page: Page, testId: string): Promise<number> {
  return Number(await page.getByTestId(testId).getAttribute('data-value'));
}

async function liveState(page: Page): Promise<string | null> {
  return page.getByTestId('live-state').getAttribute('data-state');
}

async function waitConnected(page: Page): Promise<void> {
  await expect.poll(() => liveState(page), { timeout: PAGE_TIMEOUT_MS }).toBe('connected');
}

describe.skipIf(skip !== undefined)('the dashboard in a browser', () => {
  it('shows the gateway and its ingest live while a fleet publishes', async () => {
    const gateway = await startGateway({ gatewayId: 'dash-gw-live', 'devices.quietAfterMs': String(QUIET_AFTER_MS) });
    const { page, errors } = await openDashboard(gateway);
    await waitConnected(page);
    expect(await page.getByTestId('gateway-id').textContent()).toBe('dash-gw-live');
    expect(await page.getByTestId('gateway-version').textContent()).toMatch(/^v\d+\.\d+\.\d+/);
    expect(await numberOf(page, 'stored-total')).toBe(0);

    runFleet(gateway, ['--devices', '5', '--rate', '5', '--duration', '60']);
    await expect.poll(() => numberOf(page, 'stored-total'), { timeout: PAGE_TIMEOUT_MS }).toBeGreaterThan(0);
    const first = await numberOf(page, 'stored-total');
    await expect.poll(() => numberOf(page, 'stored-total'), { timeout: PAGE_TIMEOUT_MS }).toBeGreaterThan(first);
    await expect.poll(() => numberOf(page, 'ingest-rate'), { timeout: PAGE_TIMEOUT_MS }).toBeGreaterThan(0);
    expect(await page.getByTestId('ingest-rate').textContent()).toMatch(/^\d+(\.\d+)?k?$/);
    // Shown as the page receives it: the stored count matches the gateway's own within a frame or two.
    expect(await numberOf(page, 'stored-total')).toBeLessThanOrEqual(gateway.intake.stats().stored);

    for (const stream of STREAMS) {
      await page.locator(`[data-testid="topic-row"][data-topic="${stream}"]`).waitFor({ timeout: PAGE_TIMEOUT_MS });
    }
    expect(await page.getByTestId('topic-row').count()).toBe(STREAMS.length);
    await expect.poll(() => page.getByTestId('device-row').count(), { timeout: PAGE_TIMEOUT_MS }).toBe(5);
    expect(await page.getByTestId('rate-legend').textContent()).toContain('climate');

    // A topic expands to its partitions.
    const climate = page.locator('[data-testid="topic-row"][data-topic="climate"]');
    await climate.getByRole('button').click();
    const partitions = page.locator('tbody:has([data-topic="climate"]) tr.detail table tbody tr');
    await expect.poll(() => partitions.count(), { timeout: PAGE_TIMEOUT_MS }).toBe(gateway.log.describeTopic('climate').partitions.length);
    expect(errors).toEqual([]);
  });

  it('marks a device that stopped sending as quiet, first in the list, while the others stay active', async () => {
    const gateway = await startGateway({ gatewayId: 'dash-gw-quiet', 'devices.quietAfterMs': String(QUIET_AFTER_MS) });
    const { page, errors } = await openDashboard(gateway);
    runFleet(gateway, ['--id-prefix', 'busy-', '--devices', '2', '--rate', '5', '--duration', '60']);
    const stopped = runFleet(gateway, ['--id-prefix', 'gone-', '--devices', '1', '--rate', '5', '--duration', '1']);
    const row = (id: string) => page.locator(`[data-testid="device-row"][data-device="${id}"]`);

    await expect.poll(() => row('gone-0001').getAttribute('data-quiet'), { timeout: PAGE_TIMEOUT_MS }).toBe('false');
    expect(await stopped.exited, stopped.stderr()).toBe(0);
    await expect.poll(() => row('gone-0001').getAttribute('data-quiet'), { timeout: PAGE_TIMEOUT_MS }).toBe('true');
    for (const id of ['busy-0001', 'busy-0002']) {
      expect(await row(id).getAttribute('data-quiet')).toBe('false');
      expect(await row(id).getByText('quiet', { exact: true }).isVisible()).toBe(false);
    }
    expect(await row('gone-0001').getByText('quiet', { exact: true }).isVisible()).toBe(true);
    expect(await page.getByTestId('device-row').first().getAttribute('data-device')).toBe('gone-0001');
    expect(await page.getByTestId('devices-counts').textContent()).toContain('1 quiet');
    expect(errors).toEqual([]);
  });

  it('asks for the admin token, shows the refusal of a wrong one and the data with the right one', async () => {
    const token = 'dash-admin-token-0123456789';
    const gateway = await startGateway({ gatewayId: 'dash-gw-token', 'admin.token': token });
    const { page, errors } = await openDashboard(gateway);
    const form = page.getByTestId('token-form-card');
    await form.waitFor({ timeout: PAGE_TIMEOUT_MS });
    expect(await liveState(page)).toBe('token');
    expect(await page.getByTestId('data').isVisible()).toBe(false);
    expect(await page.getByTestId('gateway-id').textContent()).not.toBe('dash-gw-token');
    expect(await page.getByTestId('token-error').isVisible()).toBe(false);

    await page.getByTestId('token-input').fill('wrong-token-0123456789');
    await page.getByTestId('token-submit').click();
    await page.getByTestId('token-error').waitFor({ timeout: PAGE_TIMEOUT_MS });
    expect(await page.getByTestId('token-error').textContent()).toContain('the admin token is wrong');
    expect(await page.getByTestId('data').isVisible()).toBe(false);

    await page.getByTestId('token-input').fill(token);
    await page.getByTestId('token-submit').click();
    await waitConnected(page);
    expect(await page.getByTestId('data').isVisible()).toBe(true);
    expect(await form.isVisible()).toBe(false);
    expect(await page.getByTestId('gateway-id').textContent()).toBe('dash-gw-token');
    // Kept for this tab only (remember was not ticked): a reload connects without asking.
    expect(await page.evaluate("[sessionStorage.getItem('edgelog.adminToken'), localStorage.getItem('edgelog.adminToken')]")).toEqual([token, null]);
    await page.reload();
    await waitConnected(page);
    expect(await form.isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('shows that it is reconnecting while the gateway is down, and the data again once it is back', async () => {
    const before = await startGateway({ gatewayId: 'dash-gw-before' });
    const port = before.ports.http;
    const { page, errors } = await openDashboard(before);
    await waitConnected(page);
    await before.close();
    await expect.poll(() => liveState(page), { timeout: PAGE_TIMEOUT_MS }).toBe('reconnecting');
    expect(await page.getByTestId('banner').textContent()).toContain('gateway shutting down');

    // The same address again, as after a restart: the page finds it on its own.
    await startGateway({ gatewayId: 'dash-gw-after', 'http.port': String(port) });
    await waitConnected(page);
    expect(await page.getByTestId('gateway-id').textContent()).toBe('dash-gw-after');
    expect(await page.getByTestId('banner').isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('fits a phone without sideways scrolling and lays out in columns on a desktop', async () => {
    const gateway = await startGateway({ gatewayId: 'dash-gw-layout', 'devices.quietAfterMs': String(QUIET_AFTER_MS) });
    runFleet(gateway, ['--devices', '6', '--rate', '4', '--duration', '60']);
    const browser = await launchBrowser();
    const sections = ['section-ingest', 'section-disk', 'section-devices', 'section-topics', 'section-deadletters', 'section-groups', 'section-bridges'];
    const shots = [
      { viewport: { width: 375, height: 740 }, file: '/tmp/edgelog-dashboard-phone.png' },
      { viewport: { width: 1280, height: 800 }, file: '/tmp/edgelog-dashboard-desktop.png' },
    ];
    for (const { viewport, file } of shots) {
      const { page, errors } = await openPage(browser, `http://127.0.0.1:${gateway.ports.http}/`, viewport);
      await waitConnected(page);
      await expect.poll(() => page.getByTestId('device-row').count(), { timeout: PAGE_TIMEOUT_MS }).toBe(6);
      await expect.poll(() => page.getByTestId('topic-row').count(), { timeout: PAGE_TIMEOUT_MS }).toBe(STREAMS.length);
      await expect.poll(() => numberOf(page, 'ingest-rate'), { timeout: PAGE_TIMEOUT_MS }).toBeGreaterThan(0);
      expect(Number(await page.evaluate('document.documentElement.scrollWidth'))).toBeLessThanOrEqual(viewport.width);
      for (const section of sections) expect(await page.getByTestId(section).isVisible(), section).toBe(true);
      expect(await page.getByTestId('live-state').isVisible()).toBe(true);
      expect(await page.getByTestId('disk-bar').isVisible()).toBe(true);
      // One column on a phone (disk below ingest), side by side on a desktop.
      const ingest = await page.getByTestId('section-ingest').boundingBox();
      const disk = await page.getByTestId('section-disk').boundingBox();
      if (viewport.width < 700) expect(disk!.y).toBeGreaterThan(ingest!.y + ingest!.height);
      else expect(disk!.y).toBe(ingest!.y);
      await page.screenshot({ path: file, fullPage: true });
      expect(errors).toEqual([]);
      await page.context().close();
    }
  });

  it('shows the count of dead letters and their reasons as plain text', async () => {
    const device = { id: 'env-0001', profile: 'environment-sensor', password: 'pw-env-0001-secret' };
    const gateway = await startGateway({ gatewayId: 'dash-gw-dead', 'devices.registryFile': await writeRegistry([device]) });
    const { page, errors } = await openDashboard(gateway);
    await waitConnected(page);
    expect(await numberOf(page, 'deadletter-total')).toBe(0);

    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gateway.ports.mqtt}`, { clientId: device.id, username: device.id, password: device.password, reconnectPeriod: 0 });
    onTestFinished(() => client.endAsync(true));
    // Markup in a payload: if the page inserted the reason as HTML, a <b> element would appear.
    await client.publishAsync(`devices/${device.id}/climate`, '{"seq":<b>not a reading</b>}', { qos: 1 });
    const [record] = gateway.log.read(DEADLETTER_TOPIC, 0, 0).records;
    const reason = String(record!.headers['deadletter-reason']);
    expect(reason).toContain('<b>');

    await expect.poll(() => numberOf(page, 'deadletter-total'), { timeout: PAGE_TIMEOUT_MS }).toBe(1);
    const shown = page.getByTestId('deadletter-row');
    await expect.poll(() => shown.count(), { timeout: PAGE_TIMEOUT_MS }).toBe(1);
    expect(await shown.locator('.reason').textContent()).toBe(reason);
    expect(await shown.textContent()).toContain(device.id);
    expect(await shown.textContent()).toContain('climate');
    expect(await page.locator('[data-testid="section-deadletters"] b, [data-testid="section-devices"] b').count()).toBe(0);
    const row = page.locator(`[data-testid="device-row"][data-device="${device.id}"]`);
    await expect.poll(() => row.textContent(), { timeout: PAGE_TIMEOUT_MS }).toContain('INVALID_PAYLOAD');
    expect(errors).toEqual([]);
  });
});
