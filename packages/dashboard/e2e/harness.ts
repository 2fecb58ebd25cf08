/**
 * Browser tests' harness: a real Sleigh server (the `dashboard` test app) serving the built
 * dashboard, Debian's Chromium driven by playwright-core, an official client to make things
 * happen, a watch on every page's console (an error fails the test), and screenshots saved as
 * artifacts under test-results/dashboard (ignored by git).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Driver } from '@sleigh/engine/testing';
import type { SleighServer } from '@sleigh/server';
import { ADMIN_KEY, asAdmin, connect, startServer } from '@sleigh/server/testing';
import type { ConvexClient } from 'convex/browser';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect, onTestFinished } from 'vitest';
import { dashboardDir } from '../assets.js';

export { ADMIN_KEY };
export const CHROMIUM = '/usr/bin/chromium';
const here = dirname(fileURLToPath(import.meta.url));
export const SCREENSHOTS = join(here, '..', '..', '..', 'test-results', 'dashboard');
export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function checkPrerequisites(): void {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is needed (apt-get install chromium)`).toBe(true);
  expect(
    existsSync(join(dashboardDir, 'index.html')),
    'the dashboard is not built: npm run build -w @sleigh/dashboard',
  ).toBe(true);
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

export interface Running {
  readonly server: SleighServer;
  /** The app's functions, called as the admin (internal ones too). */
  readonly client: ConvexClient;
}

export async function startDashboard(driver: Driver): Promise<Running> {
  const server = await startServer(driver, { app: 'dashboard', dashboardDir });
  return { server, client: asAdmin(connect(server)) };
}

/** A fresh browser session (its own sessionStorage) whose console errors fail the test. */
export async function openContext(
  browser: Browser,
  viewport: { width: number; height: number } = LAPTOP,
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  onTestFinished(async () => {
    await context.close();
  });
  return { context, page, errors };
}

/** Signs in on the key screen the first visit shows. */
export async function signIn(page: Page, url: string, key = ADMIN_KEY): Promise<void> {
  await page.goto(url);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
