// Scheduled changes taking effect, as the overview shows them: the server runs on a manual clock
// that this file moves past the bundle-month boundary (12 Mar 2026) through the Operator API.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  advanceClock, api, assertPageClean, balance, cell, launchBrowser, login, openOverview,
  provisionViaApi, row, screenshot, seedCompany, startServer,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

describe('scheduled changes in the overview', () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('applies a downgrade and a deprovisioning at the boundary; deprovisioned rows are behind "Show deprovisioned"', async () => {
    const company = await seedCompany(server);
    const auth = { token: company.admin.token };
    const shrinking = await provisionViaApi(server, company, { name: 'Shrinking bot', plan: 'medium' });
    await api(server, 'POST', `/api/v1/resources/${shrinking.id}/plan`, { ...auth, body: { plan: 'small' }, expect: 200 });
    const leaving = await provisionViaApi(server, company, { name: 'Leaving bot', plan: 'small' });
    await api(server, 'POST', `/api/v1/resources/${leaving.id}/deprovision`, { ...auth, expect: 200 });

    const page = await browser.newPage();
    await login(page, server, company.admin);
    const shrinkingRow = row(page, { id: shrinking.id });
    const leavingRow = row(page, { id: leaving.id });
    assert.equal(norm(await (await cell(page, shrinkingRow, 'Status')).innerText()), 'PLAN DOWNGRADE SCHEDULED');
    assert.equal(norm(await (await cell(page, leavingRow, 'Status')).innerText()), 'DEPROVISIONING SCHEDULED · 12 Mar 2026');
    assert.deepEqual(await balance(page), { available: 410, allocated: 90, pending: 60 });

    const moved = await advanceClock(server, '2026-03-12T08:00:00Z');
    assert.equal(moved.applied, 2, 'both scheduled changes were applied');

    await openOverview(page, server, 'text_generation');
    assert.ok(norm(await (await cell(page, shrinkingRow, 'Status')).innerText()).includes('ACTIVE'));
    assert.match(await (await cell(page, shrinkingRow, 'Plan')).innerText(), /small/i);
    assert.equal(await leavingRow.count(), 0, 'a deprovisioned resource is hidden by default');
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 0 });

    await page.getByRole('link', { name: 'Show deprovisioned', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('show_deprovisioned') === '1');
    assert.equal(new URL(page.url()).searchParams.get('type'), 'text_generation', 'the tab is kept');
    await leavingRow.waitFor();
    assert.match(norm(await (await cell(page, leavingRow, 'Status')).innerText()), /DEPROVISIONED/);
    const leftActions = await leavingRow.locator('details.row-menu a, details.row-menu button').count();
    assert.equal(leftActions, 0, 'a deprovisioned resource offers no action');
    await screenshot(page, 'overview-show-deprovisioned');

    await page.getByRole('link', { name: 'Cloud Tokens', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/transactions');
    assert.match(await page.locator('#transactions').innerText(), /release/i, 'the releases are listed');
    assertPageClean(page);
    await page.close();
  });
});
