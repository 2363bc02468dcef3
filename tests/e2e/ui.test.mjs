// The Control Center web UI in a real browser: logging in and out, navigation, the member's
// refusal, eligibility, provisioning each resource type through the form (checking the Resource
// Specification before submitting), server-side validation, and escaping of display names.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertPageClean, assertSpecNumbers, balance, cell, closeRowMenu, dateRegex, eventually, launchBrowser, login,
  menuActions, openOverview, openRowMenu, provisionViaApi, row, screenshot, seedCompany, settle,
  startServer,
} from './harness.mjs';

const TABS = {
  text_generation: 'Text Generation Resources',
  embeddings_generation: 'Embeddings Generation Resources',
  knowledge_base: 'Knowledge Base Resources',
};
const ENTERPRISE_MESSAGE = "We couldn't retrieve your correct platform account, which is required to access available tokens and create resources. Please contact Mendix Support for assistance.";

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

async function assertTabSelected(page, type) {
  for (const [t, label] of Object.entries(TABS)) {
    const tab = page.getByRole('tab', { name: label, exact: true });
    assert.equal(await tab.getAttribute('aria-selected'), t === type ? 'true' : 'false',
      `tab "${label}" aria-selected on the ${type} overview`);
  }
}

/** Picks an option as a user would: only when it is not already the selected one. */
async function choose(page, label, value) {
  const select = page.getByLabel(label, { exact: true });
  if ((await select.inputValue()) !== value) {
    await select.selectOption(value);
    await settle(page);
  }
}

/** Fills the provision form field by field, letting htmx swap after each change. */
async function fillProvisionForm(page, f) {
  const byLabel = (label) => page.getByLabel(label, { exact: true });
  await byLabel('Display Name').fill(f.name);
  await byLabel('Display Name').press('Tab');
  await settle(page);
  await choose(page, 'Environment', f.environment);
  await choose(page, 'Region', f.region);
  // Knowledge-base forms may leave the checkbox out (the server then uses false).
  if (f.cri || (await byLabel('Cross-region inference').count()) > 0) {
    await byLabel('Cross-region inference').setChecked(f.cri); // clicks only when it changes
    await settle(page);
  }
  if (f.model) await choose(page, 'Model', f.model);
  await choose(page, 'Plan Size', f.plan);
  if (f.embeddings) await choose(page, 'Embeddings Resource', f.embeddings);
  await byLabel('User Name').fill(f.userName);
  await byLabel('User Name').press('Tab');
  await settle(page);
  await byLabel('User Email').fill(f.userEmail);
  await byLabel('User Email').press('Tab');
  await settle(page);

  // A swap must not have lost anything that was entered.
  assert.equal(await byLabel('Display Name').inputValue(), f.name, 'Display Name kept');
  assert.equal(await byLabel('Environment').inputValue(), f.environment, 'Environment kept');
  assert.equal(await byLabel('Region').inputValue(), f.region, 'Region kept');
  if ((await byLabel('Cross-region inference').count()) > 0) {
    assert.equal(await byLabel('Cross-region inference').isChecked(), f.cri, 'Cross-region inference kept');
  }
  if (f.model) assert.equal(await byLabel('Model').inputValue(), f.model, 'Model kept');
  assert.equal(await byLabel('Plan Size').inputValue(), f.plan, 'Plan Size kept');
  if (f.embeddings) assert.equal(await byLabel('Embeddings Resource').inputValue(), f.embeddings, 'Embeddings Resource kept');
  assert.equal(await byLabel('User Name').inputValue(), f.userName, 'User Name kept');
  assert.equal(await byLabel('User Email').inputValue(), f.userEmail, 'User Email kept');
}

/** Checks the Resource Specification panel (numbers may carry thousands separators). */
async function assertSpecification(page, { cloudTokens, before: availableBefore, after: availableAfter, quota, name }) {
  const spec = page.locator('section#specification');
  await eventually(async () => {
    await assertSpecNumbers(spec, 'cloud_tokens', [cloudTokens]);
    await assertSpecNumbers(spec, 'available_before', [availableBefore]);
    await assertSpecNumbers(spec, 'available_after', [availableAfter]);
  });
  if (typeof quota === 'function') {
    const text = await spec.locator('[data-spec="quota"]').innerText();
    assert.ok(quota(text), `[data-spec="quota"] shows the plan's quota (text: ${JSON.stringify(text)})`);
  } else {
    await assertSpecNumbers(spec, 'quota', quota);
  }
  const month = norm(await spec.locator('[data-spec="first_bundle_month"]').innerText());
  assert.match(month, dateRegex('2026-02-12'), `[data-spec="first_bundle_month"] starts on 12 Feb 2026 (text: ${JSON.stringify(month)})`);
  assert.match(month, /(1[12] Mar[a-z]* 2026|2026-03-1[12])/, `[data-spec="first_bundle_month"] ends in March 2026 (text: ${JSON.stringify(month)})`);
  // SPEC §6: the panel shows everything entered.
  assert.ok(norm(await spec.innerText()).includes(name), `section#specification shows the display name "${name}"`);
}

/** Submits the provision form and returns the new row (on the overview of `type`). */
async function submitProvision(page, type, name) {
  await page.getByRole('button', { name: 'Provision Resource', exact: true }).click();
  await page.waitForURL((url) => url.pathname === '/resources' && url.searchParams.get('type') === type);
  const r = row(page, { name });
  await r.waitFor();
  return r;
}

async function assertActiveRow(page, r, { name, id, model, plan, createdFor }) {
  const status = norm(await (await cell(page, r, 'Status')).innerText());
  assert.ok(status.includes('ACTIVE') && !status.includes('SCHEDULED'), `Status is ACTIVE (got ${JSON.stringify(status)})`);
  const nameCell = await cell(page, r, 'Name');
  const link = nameCell.getByRole('link', { name, exact: true });
  assert.equal(await link.getAttribute('href'), `/portal/resources/${id}`, 'the Name links to the Portal page');
  assert.equal(await link.getAttribute('target'), '_blank', 'the Portal page opens in a new tab');
  if (model) assert.match(await (await cell(page, r, 'Model')).innerText(), model);
  assert.match(await (await cell(page, r, 'Plan')).innerText(), new RegExp(plan, 'i'));
  assert.ok((await (await cell(page, r, 'Created For')).innerText()).includes(createdFor), `Created For shows ${createdFor}`);
  await cell(page, r, 'Usage');
}

describe('Control Center UI', () => {
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

  it('redirects anonymous visitors to the login form, refuses a wrong password, logs in and out', async () => {
    const company = await seedCompany(server);
    const page = await browser.newPage();
    await page.goto(server.base + '/');
    await page.waitForURL((url) => url.pathname === '/login');

    await page.getByLabel('Email', { exact: true }).fill(company.admin.email);
    await page.getByLabel('Password', { exact: true }).fill('wrong password!');
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.ok(norm(await alert.innerText()).length > 0, 'the login error has a message');
    assert.equal(new URL(page.url()).pathname, '/login');

    await login(page, server, company.admin);
    await assertTabSelected(page, 'text_generation');
    const b = await balance(page);
    assert.deepEqual(b, { available: 500, allocated: 0, pending: 0 });
    assert.match(await page.locator('#balance').innerText(), /500/, '#balance shows the available tokens');

    await page.getByRole('button', { name: 'Log out', exact: true }).click();
    await page.waitForLoadState('load');
    await page.goto(server.base + '/resources?type=text_generation');
    await page.waitForURL((url) => url.pathname === '/login');
    assertPageClean(page);
    await page.close();
  });

  it('shows a member a 403 page saying only company admins may use the Control Center', async () => {
    const company = await seedCompany(server, { member: true });
    const page = await browser.newPage();
    // A member lands on the GenAI Portal (tests/e2e/portal.test.mjs covers it); the Control
    // Center answers them with a refusal.
    await login(page, server, company.member, { expectPath: '/portal' });
    const res = await page.goto(server.base + '/resources?type=text_generation');
    assert.equal(res.status(), 403);
    await page.getByRole('heading', { name: /Only company admins/ }).waitFor();
    assert.equal(await page.locator('#resources').count(), 0, 'no resource table for a member');
    await screenshot(page, 'member-refused');
    assertPageClean(page);
    await page.close();
  });

  it('switches tabs and links the header to the Cloud Tokens and Audit Log pages', async () => {
    const company = await seedCompany(server);
    const page = await browser.newPage();
    await login(page, server, company.admin);
    for (const type of ['embeddings_generation', 'knowledge_base', 'text_generation']) {
      await page.getByRole('tab', { name: TABS[type], exact: true }).click();
      await page.waitForURL((url) => url.searchParams.get('type') === type);
      await assertTabSelected(page, type);
      if (type === 'knowledge_base') {
        // Without an embeddings resource a knowledge base cannot be provisioned: the button says why.
        assert.ok(await page.getByRole('button', { name: 'Provision Resource', exact: true }).isDisabled());
        assert.match(await page.locator('#provision-disabled-reason').innerText(), /embeddings/i);
      } else {
        const provision = page.getByRole('link', { name: 'Provision Resource', exact: true });
        assert.equal(await provision.getAttribute('href'), `/resources/new?type=${type}`);
      }
    }
    assert.equal(await page.locator('#eligibility').count(), 0, 'no eligibility problems shown for an eligible company');

    await page.getByRole('link', { name: 'Cloud Tokens', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/transactions');
    const grants = page.locator('#transactions tbody tr');
    assert.ok((await grants.count()) >= 1, 'the grant is listed in #transactions');
    assert.match(await page.locator('#transactions').innerText(), /500/);
    await balance(page); // the header is on every page

    await provisionViaApi(server, company, { name: 'Audited bot' });
    await page.getByRole('link', { name: 'Audit Log', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/audit');
    assert.ok((await page.locator('#audit tbody tr').count()) >= 1, 'the provisioning is listed in #audit');
    assert.match(await page.locator('#audit').innerText(), /Audited bot|provision/i);
    await balance(page);
    assertPageClean(page);
    await page.close();
  });

  it('provisions a text generation, an embeddings and a knowledge base resource through the form', async () => {
    const company = await seedCompany(server);
    const page = await browser.newPage();
    await login(page, server, company.admin);

    // Text generation, small: 30 cloud tokens, 500 → 470.
    await page.getByRole('link', { name: 'Provision Resource', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/resources/new' && url.searchParams.get('type') === 'text_generation');
    const text = {
      name: 'Support bot', environment: 'production', region: 'eu-central-1', cri: true,
      model: 'claude-sonnet-4.6', plan: 'small', userName: 'Ada Lovelace', userEmail: 'ada@e2e.example',
    };
    await fillProvisionForm(page, text);
    await assertSpecification(page, { cloudTokens: 30, before: 500, after: 470, quota: [2500000, 1250000], name: text.name });
    await screenshot(page, 'provision-form');
    assertPageClean(page);
    let r = await submitProvision(page, 'text_generation', text.name);
    const textId = await r.getAttribute('data-resource-id');
    const headers = (await page.locator('#resources thead th').allTextContents()).map(norm).filter(Boolean);
    assert.deepEqual(headers.slice(0, 6), ['Status', 'Name', 'Model', 'Plan', 'Created For', 'Usage'], '#resources columns');
    await assertActiveRow(page, r, { ...text, id: textId, model: /Claude Sonnet 4\.6|claude-sonnet-4\.6/, createdFor: 'Ada Lovelace' });
    assert.deepEqual(await balance(page), { available: 470, allocated: 30, pending: 0 });
    let actions = await menuActions(await openRowMenu(page, text.name));
    assert.deepEqual(actions.sort(), ['Adjust Plan Size', 'Deprovision Resource'], 'an active text resource offers exactly these actions');
    await closeRowMenu(page, text.name);
    await screenshot(page, 'overview');

    // Embeddings, small: 6 cloud tokens, 470 → 464.
    await page.getByRole('tab', { name: TABS.embeddings_generation, exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('type') === 'embeddings_generation');
    await page.getByRole('link', { name: 'Provision Resource', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/resources/new' && url.searchParams.get('type') === 'embeddings_generation');
    const emb = {
      name: 'Search embeddings', environment: 'test', region: 'eu-central-1', cri: true,
      model: 'cohere-embed-v4', plan: 'small', userName: 'Grace Hopper', userEmail: 'grace@e2e.example',
    };
    await fillProvisionForm(page, emb);
    await assertSpecification(page, { cloudTokens: 6, before: 470, after: 464, quota: [5000000], name: emb.name });
    r = await submitProvision(page, 'embeddings_generation', emb.name);
    const embId = await r.getAttribute('data-resource-id');
    await assertActiveRow(page, r, { ...emb, id: embId, model: /Cohere Embed v4|cohere-embed-v4/, createdFor: 'Grace Hopper' });
    assert.deepEqual(await balance(page), { available: 464, allocated: 36, pending: 0 });

    // Knowledge base linked to the embeddings resource: 48 cloud tokens, 464 → 416.
    await page.getByRole('tab', { name: TABS.knowledge_base, exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('type') === 'knowledge_base');
    await page.getByRole('link', { name: 'Provision Resource', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/resources/new' && url.searchParams.get('type') === 'knowledge_base');
    assert.equal(await page.getByLabel('Model', { exact: true }).count(), 0, 'a knowledge base has no Model field');
    const kb = {
      name: 'Handbook KB', environment: 'acceptance', region: 'eu-central-1', cri: false,
      plan: 'standard', embeddings: embId, userName: 'Alan Turing', userEmail: 'alan@e2e.example',
    };
    await fillProvisionForm(page, kb);
    await assertSpecification(page, {
      cloudTokens: 48, before: 464, after: 416, name: kb.name,
      quota: (t) => /10\s*GB/i.test(t) || /10[,.\u202f\u00a0]?737[,.\u202f\u00a0]?418[,.\u202f\u00a0]?240/.test(t),
    });
    await screenshot(page, 'provision-form-knowledge-base');
    r = await submitProvision(page, 'knowledge_base', kb.name);
    const kbId = await r.getAttribute('data-resource-id');
    await assertActiveRow(page, r, { ...kb, id: kbId, createdFor: 'Alan Turing' });
    assert.deepEqual(await balance(page), { available: 416, allocated: 84, pending: 0 });
    actions = await menuActions(await openRowMenu(page, kb.name));
    assert.deepEqual(actions, ['Deprovision Resource'], 'a knowledge base offers no plan adjustment');
    assertPageClean(page);
    await page.close();
  });

  it('offers in the Model select the models of the chosen region and inference mode', async () => {
    const company = await seedCompany(server);
    const page = await browser.newPage();
    await login(page, server, company.admin);
    const model = page.getByLabel('Model', { exact: true });
    const options = async () => model.locator('option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
    const cri = page.getByLabel('Cross-region inference', { exact: true });

    await page.goto(server.base + '/resources/new?type=embeddings_generation');
    await cri.setChecked(true);
    await settle(page);
    await eventually(async () => assert.deepEqual((await options()).sort(), ['all-minilm-l6-v2', 'cohere-embed-v4'], 'eu-central-1 with cross-region inference'));
    await cri.setChecked(false);
    await settle(page);
    await eventually(async () => {
      assert.equal(await model.count(), 1, 'the Model select is still there after unchecking Cross-region inference');
      assert.deepEqual((await options()).sort(), ['all-minilm-l6-v2', 'cohere-embed-english-v3', 'cohere-embed-multilingual-v3'], 'eu-central-1 in-region');
    });

    await page.goto(server.base + '/resources/new?type=text_generation');
    await page.getByLabel('Region', { exact: true }).selectOption('ca-central-1');
    await settle(page);
    await cri.setChecked(false);
    await settle(page);
    await eventually(async () => {
      assert.equal(await model.count(), 1, 'the Model select is still there after choosing a region');
      assert.deepEqual((await options()).sort(), ['claude-sonnet-3', 'smollm2-135m-instruct'], 'ca-central-1 in-region');
    });
    await model.selectOption('claude-sonnet-3');
    await settle(page);
    await assertSpecNumbers(page.locator('section#specification'), 'cloud_tokens', [30]);
    assertPageClean(page);
    await page.close();
  });

  it('disables Provision Resource, with the reason, while the chosen plan costs more than is available', async () => {
    const company = await seedCompany(server, { tokens: 40 });
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await page.goto(server.base + '/resources/new?type=text_generation');
    const button = page.getByRole('button', { name: 'Provision Resource', exact: true });
    await page.getByLabel('Display Name', { exact: true }).fill('Too big');
    await choose(page, 'Plan Size', 'small');
    await assertSpecNumbers(page.locator('section#specification'), 'available_after', [10]);
    assert.ok(await button.isEnabled(), 'small (30 of 40) can be provisioned');
    await choose(page, 'Plan Size', 'medium');
    await eventually(async () => assertSpecNumbers(page.locator('section#specification'), 'available_after', [-20]));
    // SPEC §6: the button is disabled, with the reason, while the balance is insufficient.
    await eventually(async () => {
      assert.ok(await button.isDisabled(), 'Provision Resource is disabled for medium (60 of 40)');
      assert.ok(norm(await page.locator('#provision-disabled-reason').innerText()).length > 0, '#provision-disabled-reason gives the reason');
    });
    assertPageClean(page);
    await page.close();
  });

  it('shows server-side validation errors per field and creates nothing', async () => {
    const company = await seedCompany(server);
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await page.goto(server.base + '/resources/new?type=text_generation');
    await fillProvisionForm(page, {
      name: 'placeholder', environment: 'test', region: 'eu-central-1', cri: true,
      model: 'claude-sonnet-4.6', plan: 'small', userName: 'Ada Lovelace', userEmail: 'ada@e2e.example',
    });
    // Empty after trimming, and an address that is not one. The browser's own checks (required,
    // type=email) are switched off so that the server's answer is what is tested.
    await page.getByLabel('Display Name', { exact: true }).fill('   ');
    await page.getByLabel('User Email', { exact: true }).fill('not-an-email');
    await page.getByLabel('User Email', { exact: true }).press('Tab');
    await settle(page);
    await page.locator('form').filter({ has: page.getByRole('button', { name: 'Provision Resource', exact: true }) })
      .evaluate((form) => { form.noValidate = true; });
    await page.getByRole('button', { name: 'Provision Resource', exact: true }).click();
    const nameError = page.locator('#error-display_name');
    await nameError.waitFor();
    assert.ok(norm(await nameError.innerText()).length > 0, '#error-display_name has a message');
    const emailError = page.locator('#error-user-email');
    await emailError.waitFor();
    assert.ok(norm(await emailError.innerText()).length > 0, '#error-user-email has a message');
    assert.equal(await page.getByLabel('User Name', { exact: true }).inputValue(), 'Ada Lovelace', 'the other fields keep what was entered');
    await screenshot(page, 'provision-form-errors');
    assert.deepEqual(await balance(page), { available: 500, allocated: 0, pending: 0 }, 'nothing was allocated');
    await openOverview(page, server, 'text_generation');
    assert.equal(await page.locator('#resources tr[data-resource-id]').count(), 0, 'nothing was created');
    assertPageClean(page);
    await page.close();
  });

  it('shows display names as text, never as markup', async () => {
    const company = await seedCompany(server);
    const name = '<script>alert(1)</script>';
    const created = await provisionViaApi(server, company, { name });
    const page = await browser.newPage();
    await login(page, server, company.admin);
    const r = row(page, { id: created.id });
    await r.waitFor();
    const nameCell = await cell(page, r, 'Name');
    const link = nameCell.getByRole('link');
    assert.equal(await link.innerText(), name, 'the Name link shows the name literally');
    assert.equal(await nameCell.locator('script').count(), 0, 'no script element in the Name cell');
    assert.equal(await page.locator('#resources script').count(), 0, 'no script element in the table');
    const details = await openRowMenu(page, name);
    assert.ok((await menuActions(details)).includes('Deprovision Resource'));

    // Typed into the form, the name reaches the specification panel as text too.
    await page.goto(server.base + '/resources/new?type=text_generation');
    await page.getByLabel('Display Name', { exact: true }).fill('<img src=x onerror=alert(2)>');
    await page.getByLabel('Display Name', { exact: true }).press('Tab');
    await settle(page);
    assert.equal(await page.locator('section#specification img').count(), 0, 'no img element in the specification');
    await page.waitForTimeout(300);
    assertPageClean(page); // no alert() fired anywhere
    await page.close();
  });

  it('explains why provisioning is not possible for a company that is not eligible', async () => {
    const noSubscription = await seedCompany(server, { tokens: 500, enterpriseSubscriptions: 0 });
    const page = await browser.newPage();
    await login(page, server, noSubscription.admin);
    const eligibility = page.locator('#eligibility');
    await eligibility.waitFor();
    assert.ok(norm(await eligibility.innerText()).includes(ENTERPRISE_MESSAGE), '#eligibility shows the enterprise subscription message verbatim');
    const disabled = page.getByRole('button', { name: 'Provision Resource', exact: true });
    assert.ok(await disabled.isDisabled(), 'the Provision Resource button is disabled');
    assert.equal(await page.getByRole('link', { name: 'Provision Resource', exact: true }).count(), 0, 'no Provision Resource link');
    assert.ok(norm(await page.locator('#provision-disabled-reason').innerText()).length > 0, '#provision-disabled-reason gives the reason');
    await screenshot(page, 'overview-not-eligible');

    const oldPlan = await seedCompany(server, { tokens: 500, priceList: 'FY20' });
    await login(page, server, oldPlan.admin);
    await eligibility.waitFor();
    assert.match(norm(await eligibility.innerText()), /FY2[01]|price list|subscription plan/i, '#eligibility names the price-list problem');
    assert.ok(await page.getByRole('button', { name: 'Provision Resource', exact: true }).isDisabled());

    const noTokens = await seedCompany(server, { tokens: 0 });
    await login(page, server, noTokens.admin);
    await eligibility.waitFor();
    assert.ok(norm(await eligibility.innerText()).length > 0, '#eligibility lists the missing tokens');
    assert.ok(await page.getByRole('button', { name: 'Provision Resource', exact: true }).isDisabled());
    assert.deepEqual(await balance(page), { available: 0, allocated: 0, pending: 0 });
    assertPageClean(page);
    await page.close();
  });
});
