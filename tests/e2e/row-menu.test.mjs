// The ⋯ menu of an overview row must show every one of its items in full, whatever the number
// of rows and the size of the window: the table sits in a sideways scroll box, and a menu drawn
// inside that box was cut off by it (issue 7: with one resource only "Deprovision Resource"
// showed, "Adjust Plan Size" could not be reached). Keyboard use is covered by
// deprovision.test.mjs.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, assertFullyVisible, assertNoSidewaysScroll, assertPageClean, launchBrowser, login, menuActions, menuItem,
  openRowMenu, provisionViaApi, screenshot, seedCompany, startServer,
} from './harness.mjs';

/** Every item of the open menu `details` is whole, inside the window and clickable. */
async function assertMenuUsable(details, expected, what) {
  assert.deepEqual((await menuActions(details)).sort(), [...expected].sort(), `${what}: the menu's items`);
  for (const name of expected) {
    await assertFullyVisible(menuItem(details, name), `${what}: "${name}"`);
  }
}

describe('row menu', () => {
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

  it('shows every item of the only row at 1366×850, and Adjust Plan Size can be clicked', async () => {
    const company = await seedCompany(server);
    const name = 'Lonely bot';
    const res = await provisionViaApi(server, company, { name, plan: 'small' });
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1366, height: 850 });
    await login(page, server, company.admin);
    await assertNoSidewaysScroll(page, 'the overview at 1366 px');

    const details = await openRowMenu(page, name);
    await screenshot(page, 'row-menu-one-resource', { fullPage: false });
    await assertMenuUsable(details, ['Deprovision Resource', 'Adjust Plan Size'], 'one row at 1366×850');

    // A real click, at the place where the item is drawn (no forcing, no scrolling by script).
    const box = await menuItem(details, 'Adjust Plan Size').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForURL((url) => url.pathname === `/resources/${res.id}/plan`);
    assertPageClean(page);
    await page.close();
  });

  it('opens the menu of the last of many rows where it can be seen, near the bottom of the window', async () => {
    const company = await seedCompany(server);
    const names = [];
    for (let i = 1; i <= 14; i += 1) {
      const name = `Fleet bot ${String(i).padStart(2, '0')}`;
      await provisionViaApi(server, company, { name, plan: 'small' });
      names.push(name);
    }
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1366, height: 850 });
    await login(page, server, company.admin);
    // The last row of the table, its ⋯ brought to the bottom edge of the window.
    const lastLabel = await page.locator('#resources tr[data-resource-id]').last().locator('summary').getAttribute('aria-label');
    const last = lastLabel.replace(/^Actions for /, '');
    assert.ok(names.includes(last), `the last row is one of the bots (${lastLabel})`);
    const summary = page.getByLabel(lastLabel, { exact: true });
    await summary.evaluate((s) => s.scrollIntoView({ block: 'end' }));
    const bottom = await summary.evaluate((s) => window.innerHeight - s.getBoundingClientRect().bottom);
    assert.ok(bottom < 120, `the last row's ⋯ is near the bottom of the window (${bottom} px above it)`);

    const details = await openRowMenu(page, last);
    await screenshot(page, 'row-menu-last-row', { fullPage: false });
    await assertMenuUsable(details, ['Deprovision Resource', 'Adjust Plan Size'], 'the last of 14 rows');

    // Scrolling the page while the menu is open keeps it next to its row.
    await page.mouse.wheel(0, -200);
    await page.waitForTimeout(150);
    if ((await details.getAttribute('open')) !== null) {
      const gap = await details.evaluate((d) => {
        const s = d.querySelector('summary').getBoundingClientRect();
        const m = d.querySelector('.menu').getBoundingClientRect();
        return Math.min(Math.abs(m.top - s.bottom), Math.abs(s.top - m.bottom));
      });
      assert.ok(gap < 12, `after scrolling, the open menu still touches its ⋯ (gap ${gap} px)`);
      await assertMenuUsable(details, ['Deprovision Resource', 'Adjust Plan Size'], 'after scrolling');
    }

    const box = await menuItem(await openRowMenu(page, last), 'Adjust Plan Size').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForURL((url) => /^\/resources\/[^/]+\/plan$/.test(url.pathname));
    assert.match(await page.getByRole('heading', { level: 1 }).innerText(), new RegExp(last));
    assertPageClean(page);
    await page.close();
  });

  it('keeps the menu inside a narrow window (800 px), right next to the ⋯', async () => {
    const company = await seedCompany(server);
    const name = 'Narrow window bot with a rather long display name';
    const res = await provisionViaApi(server, company, { name, plan: 'medium' });
    await api(server, 'POST', `/api/v1/resources/${res.id}/plan`, { token: company.admin.token, body: { plan: 'small' }, expect: 200 });
    const page = await browser.newPage();
    await page.setViewportSize({ width: 800, height: 700 });
    await login(page, server, company.admin);
    const details = await openRowMenu(page, name);
    await screenshot(page, 'row-menu-narrow', { fullPage: false });
    await assertMenuUsable(details, ['Deprovision Resource', 'Adjust Plan Size', 'Cancel Plan Downgrade'], 'an 800 px window');
    await menuItem(details, 'Cancel Plan Downgrade').click();
    await page.waitForURL((url) => url.pathname === '/resources' && url.searchParams.get('done') === 'downgrade_cancelled');
    assertPageClean(page);
    await page.close();
  });

  it('opens the menu in its row when JavaScript is off, where nothing can clip it', async () => {
    const company = await seedCompany(server);
    const name = 'No script bot';
    const res = await provisionViaApi(server, company, { name, plan: 'small' });
    const plain = await launchBrowser({ javaScriptEnabled: false });
    try {
      const page = await plain.newPage();
      await login(page, server, company.admin);
      const details = await openRowMenu(page, name);
      await screenshot(page, 'row-menu-without-javascript', { fullPage: false });
      await assertMenuUsable(details, ['Deprovision Resource', 'Adjust Plan Size'], 'without JavaScript');
      await menuItem(details, 'Adjust Plan Size').click();
      await page.waitForURL((url) => url.pathname === `/resources/${res.id}/plan`);
      await page.close();
    } finally {
      await plain.close();
    }
  });
});
