import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { onTestFinished } from 'vitest';

/** Debian's Chromium: playwright-core downloads no browser, so tests drive the system one. */
export const CHROMIUM_BIN = '/usr/bin/chromium';

/**
 * Headless on a shared CI machine: no sandbox (containers lack the namespaces it needs), no GPU,
 * and none of the background traffic (updates, sync, QUIC probes) a test must not depend on.
 */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Why browser tests cannot run here, or undefined when they can. In CI (CI=true) a missing
 * Chromium is a failure, not a skip: .ci/run installs Debian's chromium package.
 */
export function chromiumSkipReason(): string | undefined {
  if (existsSync(CHROMIUM_BIN)) return undefined;
  if (process.env['CI'] === 'true') throw new Error(`${CHROMIUM_BIN} is missing in CI: .ci/run must install the chromium package`);
  return `${CHROMIUM_BIN} is not installed (apt-get install chromium); skipping the browser tests`;
}

/** Launches Chromium with a fresh temporary profile; closed when the test finishes. */
export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS });
  onTestFinished(() => browser.close());
  return browser;
}

export interface OpenedPage {
  page: Page;
  /**
   * Uncaught script errors and the console's errors (a Content-Security-Policy violation, a file
   * that failed to load): a test expects none. A WebSocket that cannot connect is not one: a page
   * that reconnects logs it by design.
   */
  errors: string[];
}

/** Opens `url` in a new context (its own storage) of the given viewport, recording script errors. */
export async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 800 }): Promise<OpenedPage> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('WebSocket connection to')) errors.push(message.text());
  });
  await page.goto(url);
  return { page, errors };
}
