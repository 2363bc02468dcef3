// Deprovisioning through the confirmation dialog, cancelling it, and the row menu and dialog with
// the keyboard only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertPageClean, balance, cell, dateRegex, eventually, launchBrowser, login, menuActions, menuItem,
  openOverview, openRowMenu, provisionViaApi, row, screenshot, seedCompany, startServer, statusMessage,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

async function statusText(page, r) {
  return norm(await (await cell(page, r, 'Status')).innerText());
}

/** Waits for the open confirmation dialog (a modal in place, or the page of its own). */
async function confirmationDialog(page) {
  const dialog = page.locator('dialog[open]');
  await dialog.waitFor();
  return dialog;
}

describe('Deprovision Resource', () => {
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

  it('confirms in a dialog showing the resource and the date, schedules it, and can cancel it', async () => {
    const company = await seedCompany(server);
    const name = 'Retired bot';
    const res = await provisionViaApi(server, company, { name, plan: 'small' });
    const page = await browser.newPage();
    await login(page, server, company.admin);
    const r = row(page, { id: res.id });

    // Open the dialog and cancel: nothing changes.
    let details = await openRowMenu(page, name);
    let link = menuItem(details, 'Deprovision Resource');
    assert.equal(await link.getAttribute('href'), `/resources/${res.id}/deprovision`);
    await link.click();
    let dialog = await confirmationDialog(page);
    await dialog.getByRole('heading', { name: 'Deprovision Resource', exact: true }).waitFor();
    assert.ok(norm(await dialog.innerText()).includes(name), 'the dialog names the resource');
    const effective = norm(await dialog.locator('[data-spec="effective_at"]').innerText());
    assert.match(effective, dateRegex('2026-03-12'), `the dialog shows when it takes effect (text: ${JSON.stringify(effective)})`);
    await screenshot(page, 'deprovision-dialog');
    await dialog.getByRole('link', { name: 'Cancel', exact: true })
      .or(dialog.getByRole('button', { name: 'Cancel', exact: true })).click();
    await eventually(async () => assert.equal(await page.locator('dialog[open]').count(), 0, 'Cancel closed the dialog'));
    if (new URL(page.url()).pathname !== '/resources') await openOverview(page, server, 'text_generation');
    assert.ok((await statusText(page, r)).includes('ACTIVE'), 'still active after Cancel');
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 0 });

    // Confirm: scheduled for the end of the bundle month.
    details = await openRowMenu(page, name);
    await menuItem(details, 'Deprovision Resource').click();
    dialog = await confirmationDialog(page);
    await dialog.getByRole('button', { name: 'Deprovision', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/resources');
    assert.ok((await statusMessage(page)).length > 0);
    await eventually(async () => assert.equal(await statusText(page, r), 'DEPROVISIONING SCHEDULED · 12 Mar 2026'));
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 30 });
    assert.deepEqual(await menuActions(await openRowMenu(page, name)), ['Cancel Deprovisioning'],
      'a resource scheduled for deprovisioning only offers to cancel it');
    await screenshot(page, 'overview-deprovisioning-scheduled');

    // Cancel the deprovisioning.
    details = await openRowMenu(page, name);
    await menuItem(details, 'Cancel Deprovisioning').click();
    await page.waitForURL((url) => url.pathname === '/resources');
    assert.ok((await statusMessage(page)).length > 0);
    await eventually(async () => assert.equal(await statusText(page, r), 'ACTIVE'));
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 0 });
    assertPageClean(page);
    await page.close();
  });

  it('opens the row menu, reaches Deprovision Resource and closes the dialog with the keyboard', async (t) => {
    const company = await seedCompany(server);
    const name = 'Keyboard bot';
    await provisionViaApi(server, company, { name, plan: 'small' });
    const page = await browser.newPage();
    await login(page, server, company.admin);
    const summaryLabel = `Actions for ${name}`;
    const summary = page.getByLabel(summaryLabel, { exact: true });
    const details = page.locator('details.row-menu').filter({ has: summary });

    // Tab from the top of the page to the row's menu button.
    await page.locator('body').focus();
    let reached = false;
    for (let i = 0; i < 80 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate((label) => document.activeElement?.getAttribute('aria-label') === label, summaryLabel);
    }
    assert.ok(reached, `Tab reaches the summary "${summaryLabel}"`);
    await page.keyboard.press('Enter');
    await eventually(async () => assert.notEqual(await details.getAttribute('open'), null, 'Enter opened the row menu'));

    // Focus may move into the menu on opening; otherwise Tab goes on into it.
    const focusOnItem = () => details.evaluate((d) => d.contains(document.activeElement) && document.activeElement.textContent.trim() === 'Deprovision Resource');
    let onItem = await focusOnItem();
    for (let i = 0; i < 6 && !onItem; i += 1) {
      await page.keyboard.press('Tab');
      onItem = await focusOnItem();
    }
    assert.ok(onItem, 'Tab reaches "Deprovision Resource" inside the open menu');
    const before = page.url();
    await page.keyboard.press('Enter');
    const dialog = await confirmationDialog(page);
    await dialog.getByRole('heading', { name: 'Deprovision Resource', exact: true }).waitFor();
    if (page.url() === before) {
      // Opened in place as a modal: Escape closes it and the page is unchanged.
      assert.ok(await dialog.evaluate((d) => d.matches(':modal')), 'the in-place dialog is modal');
      assert.ok(await dialog.evaluate((d) => d.contains(document.activeElement)), 'focus moved into the dialog');
      await page.keyboard.press('Escape');
      await eventually(async () => assert.equal(await page.locator('dialog[open]').count(), 0, 'Escape closed the dialog'));
      assert.equal(page.url(), before);
      // Focus goes back where the user was (the row's menu), not to the top of the page.
      await eventually(async () => {
        const focused = await page.evaluate(() => {
          const el = document.activeElement;
          return el ? `<${el.tagName.toLowerCase()}> "${el.textContent.trim().replace(/\s+/g, ' ').slice(0, 40)}"` : 'nothing';
        });
        assert.ok(await details.evaluate((d) => d.contains(document.activeElement) && document.activeElement.checkVisibility()),
          `after Escape, focus returns to the row's menu (focused: ${focused})`);
      }, { timeoutMs: 2_000 });
    } else {
      t.diagnostic('the dialog opened as a page of its own; Escape-closes-in-place not applicable');
      assert.equal(new URL(page.url()).pathname.endsWith('/deprovision'), true);
    }
    assertPageClean(page);
    await page.close();
  });
});
