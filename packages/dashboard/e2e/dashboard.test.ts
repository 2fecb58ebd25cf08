/**
 * The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
 * Sleigh server: every page, steering included, with a second browser watching live, at laptop
 * and phone widths, by keyboard, and with no console errors. Screenshots of each page are
 * saved under test-results/dashboard.
 */
import { DRIVERS } from '@sleigh/engine/testing';
import { makeFunctionReference as ref } from 'convex/server';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_KEY,
  checkPrerequisites,
  launchBrowser,
  openContext,
  PHONE,
  screenshot,
  signIn,
  startDashboard,
} from './harness.js';

const tasks = {
  add: ref<'mutation', { title: string; priority: number; done?: boolean }, string>('tasks:add'),
  list: ref<'query', Record<string, never>, Array<{ _id: string; title: string }>>('tasks:list'),
  addLater: ref<'mutation', { title: string; delayMs: number }, string>('tasks:addLater'),
  fail: ref<'mutation', { reason: string }, null>('tasks:fail'),
};
const builds = {
  start: ref<'mutation', { gate: string }, Record<string, string>>('builds:start'),
  open: ref<'mutation', { gate: string }, null>('builds:open'),
};

let browser: Browser;
beforeAll(async () => {
  checkPrerequisites();
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

const [sqlite] = DRIVERS;

/** The states the graph's nodes show, by job name. */
async function nodeStates(page: Page): Promise<Record<string, string>> {
  const nodes = page.getByTestId('graph-node');
  const out: Record<string, string> = {};
  for (const node of await nodes.all()) {
    const label = (await node.getAttribute('aria-label')) ?? '';
    out[label.split(':')[0]!] = (await node.getAttribute('data-state')) ?? '';
  }
  return out;
}

describe('the dashboard in Chromium', () => {
  it('refuses access without the admin key, and keeps an accepted key for the session', async () => {
    const { server } = await startDashboard(sqlite!);
    const { page, context, errors } = await openContext(browser);
    await page.goto(`${server.url}/dashboard/data`);
    await expect(page.getByTestId('sign-in').isVisible()).resolves.toBe(true);
    await screenshot(page, 'sign-in');
    await page.getByLabel('Admin key').fill('not-the-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page
      .getByRole('alert')
      .filter({ hasText: /refused/i })
      .waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
    expect(await page.getByTestId('page-data').count()).toBe(0);

    // By keyboard: the key field has focus, Enter submits.
    await page.getByLabel('Admin key').fill('');
    await page.getByLabel('Admin key').focus();
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press('Enter');
    await page.getByTestId('page-data').waitFor();
    // A reload keeps the session's key; a new browser session asks again.
    await page.reload();
    await page.getByTestId('page-data').waitFor();
    const other = await context.browser()!.newContext();
    const fresh = await other.newPage();
    await fresh.goto(`${server.url}/dashboard/data`);
    await fresh.getByTestId('sign-in').waitFor();
    await other.close();
    // Signing out forgets it.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('sign-in').waitFor();
    expect(errors).toEqual([]);
  });

  it('Data: browses and edits documents, refuses a bad edit, and a second browser sees it live', async () => {
    const { server, client } = await startDashboard(sqlite!);
    for (const [title, priority] of [
      ['wrap presents', 2],
      ['feed reindeer', 1],
      ['polish sleigh', 3],
    ] as const) {
      await client.mutation(tasks.add, { title, priority });
    }
    const [target] = (await client.query(tasks.list, {})).filter(
      (t) => t.title === 'feed reindeer',
    );
    const editor = await openContext(browser);
    const watcher = await openContext(browser);
    await signIn(watcher.page, `${server.url}/dashboard/data/tasks`);
    await watcher.page.getByText('feed reindeer').waitFor();
    await screenshot(watcher.page, 'data-table');

    await signIn(editor.page, `${server.url}/dashboard/data/tasks/${target!._id}`);
    await editor.page.getByRole('button', { name: 'Edit document' }).click();
    const text = editor.page.getByLabel('Document (JSON)');
    const doc = JSON.parse(await text.inputValue()) as Record<string, unknown>;
    // A value the schema refuses: the error names the field and nothing changes.
    await text.fill(JSON.stringify({ ...doc, priority: 'urgent' }, null, 2));
    await editor.page.getByRole('button', { name: 'Save' }).click();
    await expect
      .poll(async () => await editor.page.getByTestId('editor-error').textContent())
      .toMatch(/priority/);
    await screenshot(editor.page, 'data-edit-refused');
    await text.fill(JSON.stringify({ ...doc, title: 'feed all nine reindeer' }, null, 2));
    await editor.page.getByRole('button', { name: 'Save' }).click();
    // The other browser, untouched, shows the edit.
    await watcher.page.getByText('feed all nine reindeer').waitFor();
    await screenshot(editor.page, 'data-document');

    // Filter by a field's value.
    await watcher.page.getByRole('button', { name: 'Add filter' }).click();
    await watcher.page.getByLabel('Field 1').fill('priority');
    await watcher.page.getByLabel('Value 1 (JSON)').fill('3');
    await watcher.page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(async () => await watcher.page.getByText('wrap presents').count()).toBe(0);
    await watcher.page.getByText('polish sleigh').waitFor();

    // Delete it: gone for the watcher too.
    await editor.page.getByRole('button', { name: 'Delete document' }).click();
    await editor.page.getByRole('button', { name: 'Confirm delete' }).click();
    await editor.page.getByTestId('page-data').waitFor();
    await expect.poll(async () => (await client.query(tasks.list, {})).length).toBe(2);
    expect(editor.errors).toEqual([]);
    expect(watcher.errors).toEqual([]);
  });

  it('Functions and Logs: runs a function from its generated form and sees it in the live log', async () => {
    const { server, client } = await startDashboard(sqlite!);
    const { page, errors } = await openContext(browser);
    await signIn(page, `${server.url}/dashboard/logs`);
    await page.getByTestId('page-logs').waitFor();

    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Functions' }).click();
    await page.getByTestId('page-functions').waitFor();
    await page.locator('[data-function="tasks:add"]').click();
    await page.getByLabel('title', { exact: true }).fill('from the form');
    await page.getByLabel('priority', { exact: true }).fill('7');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    const result = page.getByRole('region', { name: 'Result' });
    await result.getByText('adding from the form').waitFor();
    await expect.poll(async () => await result.textContent()).toMatch(/\d+(\.\d+)? ?ms/);
    await screenshot(page, 'functions-run');
    const added = (await client.query(tasks.list, {})).find((t) => t.title === 'from the form');
    expect(added).toMatchObject({ priority: 7, done: false });

    await expect(client.mutation(tasks.fail, { reason: 'for the log' })).rejects.toThrow();
    await nav.getByRole('link', { name: 'Logs' }).click();
    await page.locator('tr[data-path="tasks:add"]').first().waitFor();
    await page.getByLabel('Outcome').selectOption('failure');
    await expect.poll(async () => await page.locator('tr[data-outcome="success"]').count()).toBe(0);
    const failed = page.locator('tr[data-path="tasks:fail"]').first();
    await failed.getByRole('button', { name: /Show details/ }).click();
    await page
      .getByTestId('execution-details')
      .getByText('failed on purpose: for the log')
      .waitFor();
    await screenshot(page, 'logs');
    // Live: a run made elsewhere appears without a reload.
    await page.getByLabel('Outcome').selectOption('');
    const adds = page.locator('tr[data-path="tasks:add"]');
    const before = await adds.count();
    await client.mutation(tasks.add, { title: 'live one', priority: 1 });
    await expect.poll(async () => await adds.count()).toBe(before + 1);
    expect(errors).toEqual([]);
  });

  it('Schedules: cancels a scheduled function and shows the crons', async () => {
    const { server, client } = await startDashboard(sqlite!);
    const id = await client.mutation(tasks.addLater, { title: 'later', delayMs: 60_000 });
    const { page, errors } = await openContext(browser);
    await signIn(page, `${server.url}/dashboard/schedules`);
    await page.getByText('hourly task').waitFor();
    const cancel = page.getByRole('button', { name: new RegExp(`Cancel .*${id}`) });
    await cancel.waitFor();
    await screenshot(page, 'schedules');
    await cancel.click();
    await expect.poll(async () => await cancel.count()).toBe(0);
    await page.getByRole('button', { name: 'canceled' }).click();
    await page.getByRole('cell', { name: /"later"/ }).waitFor();
    expect(errors).toEqual([]);
  });

  it.each(DRIVERS)(
    'Pools and Graph: watches a job graph turn from pending to done on $name',
    async (driver) => {
      const { server, client } = await startDashboard(driver);
      const ids = await client.mutation(builds.start, { gate: 'g1' });
      const { page, errors } = await openContext(browser);
      await signIn(page, `${server.url}/dashboard/jobs/${ids.ship}/graph`);
      await expect.poll(async () => Object.keys(await nodeStates(page)).length).toBe(4);
      const before = await nodeStates(page);
      expect(before.ship).toBe('waiting');
      expect(Object.values(before).includes('finished')).toBe(false);
      await screenshot(page, `graph-pending-${driver.name}`);
      await client.mutation(builds.open, { gate: 'g1' });
      await expect
        .poll(async () => Object.values(await nodeStates(page)), { timeout: 15_000 })
        .toEqual(['finished', 'finished', 'finished', 'finished']);
      await screenshot(page, `graph-done-${driver.name}`);

      // The job's page: attempts, sizes, and the steering buttons.
      await page.goto(`${server.url}/dashboard/jobs/${ids.compile}`);
      await page.getByTestId('page-job').waitFor();
      await expect
        .poll(async () => await page.getByTestId('job-state').getAttribute('data-state'))
        .toBe('finished');
      await screenshot(page, `job-${driver.name}`);
      await page.getByRole('button', { name: 'Re-run downstream' }).click();
      await page.getByText('2 jobs set to run again').waitFor();
      await expect
        .poll(async () => await page.getByTestId('job-state').getAttribute('data-state'), {
          timeout: 15_000,
        })
        .toBe('finished');

      await page
        .getByRole('navigation', { name: 'Main' })
        .getByRole('link', { name: 'Pools' })
        .click();
      await page.getByTestId('page-pools').waitFor();
      await page.getByRole('link', { name: 'builds' }).first().click();
      await page
        .getByRole('img', { name: /throughput/i })
        .first()
        .waitFor();
      await screenshot(page, `pool-${driver.name}`);

      // Paused from its page, the pool starts nothing: a build started meanwhile waits, its
      // gate open, and runs once the pool is resumed.
      await page.getByRole('button', { name: 'Pause pool' }).click();
      await page.getByText(/Paused builds: no job starts until it is resumed/).waitFor();
      const card = page.getByTestId('pool-card');
      await card.getByText('paused', { exact: true }).waitFor();
      const later = await client.mutation(builds.start, { gate: 'g2' });
      await client.mutation(builds.open, { gate: 'g2' });
      const pending = card.locator('[data-state="pending"] dd');
      await expect.poll(async () => await pending.textContent()).toBe('1');
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await pending.textContent()).toBe('1');
      await screenshot(page, `pool-paused-${driver.name}`);
      await page.getByRole('button', { name: 'Resume pool' }).click();
      await page.getByText(/Resumed builds/).waitFor();
      await expect
        .poll(async () => await card.getByText('paused', { exact: true }).count())
        .toBe(0);
      await page.goto(`${server.url}/dashboard/jobs/${later.ship}`);
      await expect
        .poll(async () => await page.getByTestId('job-state').getAttribute('data-state'), {
          timeout: 15_000,
        })
        .toBe('finished');
      expect(errors).toEqual([]);
    },
  );

  it('Health: servers, commit rate, subscriptions and lag, live', async () => {
    const { server, client } = await startDashboard(sqlite!);
    const { page, errors } = await openContext(browser);
    await signIn(page, `${server.url}/dashboard/health`);
    await page.getByTestId('page-health').waitFor();
    await page.getByText(String(process.pid)).waitFor();
    // The code each server runs: the hash of its functions folder.
    await page
      .getByTestId('servers')
      .getByText(/^[0-9a-f]{16}$/)
      .waitFor();
    await client.mutation(tasks.add, { title: 'tick', priority: 1 });
    await screenshot(page, 'health');
    expect(errors).toEqual([]);
  });

  it('fits a phone: the menu opens by keyboard and every page renders', async () => {
    const { server, client } = await startDashboard(sqlite!);
    await client.mutation(tasks.add, { title: 'small screen', priority: 1 });
    const { page, errors } = await openContext(browser, PHONE);
    await signIn(page, `${server.url}/dashboard/data`);
    for (const [name, testId] of [
      ['Data', 'page-data'],
      ['Functions', 'page-functions'],
      ['Logs', 'page-logs'],
      ['Schedules', 'page-schedules'],
      ['Pools', 'page-pools'],
      ['Health', 'page-health'],
    ] as const) {
      const menu = page.getByRole('button', { name: 'Menu' });
      if ((await menu.getAttribute('aria-expanded')) !== 'true') {
        await menu.focus();
        await page.keyboard.press('Enter');
      }
      const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
      await link.focus();
      await page.keyboard.press('Enter');
      await page.getByTestId(testId).waitFor();
      if (name !== 'Data') {
        // The new page has the focus (Data is where it started: no navigation).
        await expect
          .poll(async () => await page.evaluate(() => document.activeElement?.id))
          .toBe('main');
      }
      await screenshot(page, `phone-${name.toLowerCase()}`);
      // Nothing wider than the screen (wide tables scroll inside their own box).
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth,
      );
      expect(overflow, `${name} overflows the phone screen`).toBeLessThanOrEqual(0);
    }
    expect(errors).toEqual([]);
  });
});
