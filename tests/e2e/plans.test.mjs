// Adjusting a plan in the browser: an upgrade takes effect at once and costs the difference; a
// downgrade is scheduled for the next bundle month and can be cancelled; an upgrade the balance
// cannot pay for is refused before it is submitted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertPageClean, assertSpecNumbers, balance, cell, dateRegex, eventually, integersIn, launchBrowser,
  login, menuActions, menuItem, openRowMenu, provisionViaApi, row, screenshot, seedCompany, settle, startServer,
  statusMessage,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

async function statusText(page, r) {
  return norm(await (await cell(page, r, 'Status')).innerText());
}

/** From the overview: ⋯ → Adjust Plan Size → the plan page of `id`. */
async function openPlanPage(page, name, id) {
  const details = await openRowMenu(page, name);
  const link = menuItem(details, 'Adjust Plan Size');
  assert.equal(await link.getAttribute('href'), `/resources/${id}/plan`);
  await link.click();
  await page.waitForURL((url) => url.pathname === `/resources/${id}/plan`);
}

async function choosePlan(page, plan) {
  await page.getByLabel('New plan', { exact: true }).selectOption(plan);
  await settle(page);
}

async function submitPlan(page) {
  await page.getByRole('button', { name: 'Adjust Plan', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/resources');
  return statusMessage(page);
}

describe('Adjust Plan Size', () => {
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

  it('upgrades small → medium at once, then schedules a downgrade and cancels it', async () => {
    const company = await seedCompany(server);
    const name = 'Plan bot';
    const res = await provisionViaApi(server, company, { name, plan: 'small' });
    const page = await browser.newPage();
    await login(page, server, company.admin);
    const r = row(page, { id: res.id });
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 0 });

    // Upgrade: the difference (30) is allocated now.
    await openPlanPage(page, name, res.id);
    await choosePlan(page, 'medium');
    const spec = page.locator('section#specification');
    await eventually(async () => {
      const diff = integersIn(await spec.locator('[data-spec="cost_difference"]').innerText()).map(Math.abs);
      assert.ok(diff.includes(30), 'cost_difference shows 30');
      await assertSpecNumbers(spec, 'available_after', [440]);
    });
    await spec.locator('[data-spec="effective_at"]').waitFor();
    assert.ok(await page.getByRole('button', { name: 'Adjust Plan', exact: true }).isEnabled());
    await screenshot(page, 'adjust-plan');
    let message = await submitPlan(page);
    assert.ok(message.length > 0);
    assert.deepEqual(await balance(page), { available: 440, allocated: 60, pending: 0 }, 'the balance dropped by 30');
    assert.match(await (await cell(page, r, 'Plan')).innerText(), /medium/i);
    assert.ok((await statusText(page, r)).includes('ACTIVE'));

    // Downgrade: scheduled for the next bundle month (12 Mar 2026); nothing released yet.
    await openPlanPage(page, name, res.id);
    await choosePlan(page, 'small');
    await eventually(async () => {
      const effective = norm(await spec.locator('[data-spec="effective_at"]').innerText());
      assert.match(effective, dateRegex('2026-03-12'), `effective_at is 12 Mar 2026 (text: ${JSON.stringify(effective)})`);
      const diff = integersIn(await spec.locator('[data-spec="cost_difference"]').innerText()).map(Math.abs);
      assert.ok(diff.includes(30), 'cost_difference shows 30');
    });
    await screenshot(page, 'adjust-plan-downgrade');
    message = await submitPlan(page);
    assert.ok(message.length > 0);
    assert.equal(await statusText(page, r), 'PLAN DOWNGRADE SCHEDULED');
    assert.deepEqual(await balance(page), { available: 440, allocated: 60, pending: 30 }, 'the 30 tokens are pending, not available');
    const actions = await menuActions(await openRowMenu(page, name));
    assert.deepEqual(actions.sort(), ['Adjust Plan Size', 'Cancel Plan Downgrade', 'Deprovision Resource']);

    // Cancel the downgrade: back to active on the medium plan.
    const details = await openRowMenu(page, name);
    await menuItem(details, 'Cancel Plan Downgrade').click();
    await page.waitForURL((url) => url.pathname === '/resources');
    assert.ok((await statusMessage(page)).length > 0);
    await eventually(async () => assert.equal(await statusText(page, r), 'ACTIVE'));
    assert.match(await (await cell(page, r, 'Plan')).innerText(), /medium/i);
    assert.deepEqual(await balance(page), { available: 440, allocated: 60, pending: 0 });
    assert.deepEqual((await menuActions(await openRowMenu(page, name))).sort(), ['Adjust Plan Size', 'Deprovision Resource']);
    assertPageClean(page);
    await page.close();
  });

  it('disables Adjust Plan, with the reason, when the upgrade costs more than is available', async () => {
    const company = await seedCompany(server, { tokens: 40 });
    const name = 'Short bot';
    const res = await provisionViaApi(server, company, { name, plan: 'small' }); // 10 left
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await row(page, { id: res.id }).waitFor();
    await openPlanPage(page, name, res.id);
    await choosePlan(page, 'medium');
    await eventually(async () => {
      assert.ok(await page.getByRole('button', { name: 'Adjust Plan', exact: true }).isDisabled(), 'Adjust Plan is disabled');
      assert.ok(norm(await page.locator('#plan-disabled-reason').innerText()).length > 0, '#plan-disabled-reason gives the reason');
    });
    await screenshot(page, 'adjust-plan-insufficient');
    assert.deepEqual(await balance(page), { available: 10, allocated: 30, pending: 0 });
    assertPageClean(page);
    await page.close();
  });

  it('keeps a downgrade possible when an upgrade is not affordable (the button follows the select)', async () => {
    const company = await seedCompany(server, { tokens: 70 });
    const name = 'Medium bot';
    const res = await provisionViaApi(server, company, { name, plan: 'medium' }); // 10 left
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await row(page, { id: res.id }).waitFor();
    await openPlanPage(page, name, res.id);
    const button = page.getByRole('button', { name: 'Adjust Plan', exact: true });
    await choosePlan(page, 'large');
    await eventually(async () => assert.ok(await button.isDisabled(), 'Adjust Plan is disabled for large (60 more, 10 available)'));
    await choosePlan(page, 'small');
    await eventually(async () => {
      assert.ok(await button.isEnabled(), 'Adjust Plan is enabled again for a downgrade to small');
      assert.equal(await page.locator('#plan-disabled-reason').count(), 0, 'no stale #plan-disabled-reason');
    });
    await submitPlan(page);
    assert.equal(await statusText(page, row(page, { id: res.id })), 'PLAN DOWNGRADE SCHEDULED');
    assertPageClean(page);
    await page.close();
  });
});
