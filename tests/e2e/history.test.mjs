// The Cloud Tokens and Audit Log pages read like a bank statement (issue 7): readable dates, the
// resource's name linked to its Portal page instead of raw ids, signed amounts right-aligned, the
// balance after each line, nothing wider than the window (1366 px, and still readable at 800 px),
// and older lines behind an "Older" link instead of one endless (or silently cut) table.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  advanceClock, api, assertNoSidewaysScroll, assertPageClean, integersIn, launchBrowser, login, provisionViaApi,
  screenshot, seedCompany, startServer,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
/** "12 Feb 2026, 08:00 UTC". */
const READABLE_DATE = /^\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}, \d{2}:\d{2} UTC$/;
const RFC3339 = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** The cells of `table`'s body rows, by header text: [{ header: cellLocator }]. */
async function tableRows(page, table) {
  const headers = (await page.locator(`${table} thead th`).allTextContents()).map(norm);
  const rows = page.locator(`${table} tbody tr`);
  const out = [];
  for (let i = 0; i < (await rows.count()); i += 1) {
    const cells = rows.nth(i).locator('th, td');
    const row = {};
    for (let j = 0; j < headers.length; j += 1) row[headers[j]] = cells.nth(j);
    out.push(row);
  }
  return { headers, rows: out };
}

async function textAlign(locator) {
  return locator.evaluate((el) => getComputedStyle(el).textAlign);
}

/** A company with a grant, two provisionings, an upgrade and a deprovisioning that took effect. */
async function seedHistory(server) {
  const company = await seedCompany(server, { tokens: 500 });
  const auth = { token: company.admin.token };
  const support = await provisionViaApi(server, company, { name: 'Support bot', plan: 'small' });
  await api(server, 'POST', `/api/v1/resources/${support.id}/plan`, { ...auth, body: { plan: 'medium' }, expect: 200 });
  const search = await provisionViaApi(server, company, { type: 'embeddings_generation', name: 'Search embeddings', plan: 'small' });
  await api(server, 'POST', `/api/v1/resources/${search.id}/deprovision`, { ...auth, expect: 200 });
  return { company, support, search };
}

describe('Cloud Tokens and Audit Log', () => {
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

  it('shows Cloud Tokens like a bank statement, fitting the window at 1366 and 800 px', async () => {
    const { company, support, search } = await seedHistory(server);
    // Past the boundary of the server's company: the deprovisioning releases its 6 tokens.
    await advanceClock(server, '2026-03-12T08:00:00Z');
    const ledger = (await api(server, 'GET', '/api/v1/tokens/transactions', { token: company.admin.token, expect: 200 })).json.transactions;
    assert.deepEqual(ledger.map((t) => t.kind), ['release', 'allocate', 'allocate', 'allocate', 'grant']);

    const page = await browser.newPage();
    await page.setViewportSize({ width: 1366, height: 850 });
    await login(page, server, company.admin);
    await page.goto(`${server.base}/transactions`);
    await screenshot(page, 'cloud-tokens');
    await assertNoSidewaysScroll(page, 'Cloud Tokens at 1366 px');

    const { headers, rows } = await tableRows(page, '#transactions');
    assert.deepEqual(headers, ['Date', 'Description', 'Amount', 'Available after'], '#transactions columns');
    assert.equal(rows.length, ledger.length, 'one line per ledger transaction');
    const tableText = await page.locator('#transactions').innerText();
    assert.doesNotMatch(tableText, RFC3339, 'no RFC 3339 instants');
    for (const r of [support, search]) assert.ok(!tableText.includes(r.id), `no raw resource id (${r.id})`);
    assert.doesNotMatch(tableText, /resource:|operator →|→ available/, 'no account names');

    for (const [i, t] of ledger.entries()) {
      const row = rows[i];
      const date = norm(await row.Date.innerText());
      assert.match(date, READABLE_DATE, `line ${i + 1}: a readable date (got ${JSON.stringify(date)})`);
      assert.equal(await row.Date.locator('time').getAttribute('datetime'), t.at, `line ${i + 1}: <time datetime> is the instant`);

      const amount = norm(await row.Amount.innerText());
      const sign = t.kind === 'allocate' ? '−' : '+';
      assert.equal(amount, `${sign}${t.tokens}`, `line ${i + 1} (${t.kind}): the signed amount`);
      assert.equal(await textAlign(row.Amount), 'right', 'amounts are right-aligned');
      assert.deepEqual(integersIn(await row['Available after'].innerText()), [t.available_after], `line ${i + 1}: available after`);
      assert.equal(await textAlign(row['Available after']), 'right', 'balances are right-aligned');

      const description = norm(await row.Description.innerText());
      if (t.kind === 'grant') {
        assert.match(description, /grant/i, 'a grant says so');
        assert.match(description, /e2e seed/, 'with its note');
      } else {
        const named = t.resource_id === support.id ? 'Support bot' : 'Search embeddings';
        const link = row.Description.getByRole('link', { name: named, exact: true });
        assert.equal(await link.getAttribute('href'), `/portal/resources/${t.resource_id}`, `line ${i + 1}: the resource's name links to its Portal page`);
        assert.match(description, t.kind === 'allocate' ? /allocat/i : /release/i, `line ${i + 1}: says what happened`);
      }
    }
    const heading = await page.locator('#transactions thead th').nth(2).evaluate((el) => getComputedStyle(el).textAlign);
    assert.equal(heading, 'right', 'the Amount heading is right-aligned over its numbers');

    await page.setViewportSize({ width: 800, height: 800 });
    await screenshot(page, 'cloud-tokens-narrow');
    await assertNoSidewaysScroll(page, 'Cloud Tokens at 800 px');
    assertPageClean(page);
    await page.close();
  });

  it('shows the Audit Log in words: date, who, what, the resource linked, details summarised', async () => {
    const { company, support, search } = await seedHistory(server);
    const events = (await api(server, 'GET', '/api/v1/audit-events', { token: company.admin.token, expect: 200 })).json.events;
    const page = await browser.newPage();
    await page.setViewportSize({ width: 1366, height: 850 });
    await login(page, server, company.admin);
    await page.goto(`${server.base}/audit`);
    await screenshot(page, 'audit-log');
    await assertNoSidewaysScroll(page, 'Audit Log at 1366 px');

    const { headers, rows } = await tableRows(page, '#audit');
    assert.deepEqual(headers, ['Date', 'Who', 'What', 'Resource', 'Details'], '#audit columns');
    assert.equal(rows.length, events.length, 'one line per audit event');
    const tableText = await page.locator('#audit').innerText();
    assert.doesNotMatch(tableText, RFC3339, 'no RFC 3339 instants');
    assert.doesNotMatch(tableText, /[{}]|"\w+":/, 'no raw JSON');
    assert.doesNotMatch(tableText, /\b(resource|tokens|company|user|api_token)\.[a-z_]+\b/, 'no machine action names');
    for (const r of [support, search]) assert.ok(!tableText.includes(r.id), `no raw resource id (${r.id})`);

    for (const [i, e] of events.entries()) {
      const row = rows[i];
      assert.match(norm(await row.Date.innerText()), READABLE_DATE, `event ${i + 1}: a readable date`);
      const who = norm(await row.Who.innerText());
      assert.ok(who.length > 0, `event ${i + 1}: who did it`);
      if (e.actor.includes('@')) assert.equal(who, e.actor, 'a person is shown by their email');
      assert.ok(norm(await row.What.innerText()).length > 0, `event ${i + 1}: what happened`);
      if (e.resource_id) {
        const named = e.resource_id === support.id ? 'Support bot' : 'Search embeddings';
        const link = row.Resource.getByRole('link', { name: named, exact: true });
        assert.equal(await link.getAttribute('href'), `/portal/resources/${e.resource_id}`, `event ${i + 1}: the resource is linked by name`);
      }
    }
    const byAction = (action) => rows[events.findIndex((e) => e.action === action && (e.resource_id ?? support.id) === support.id)];
    const provisioned = byAction('resource.provisioned');
    assert.match(norm(await provisioned.What.innerText()), /provisioned/i);
    assert.match(norm(await provisioned.Details.innerText()), /small/i, 'the provisioning names the plan');
    const upgraded = byAction('resource.upgraded');
    assert.match(norm(await upgraded.What.innerText()), /upgrade/i);
    assert.match(norm(await upgraded.Details.innerText()), /small\s*→\s*medium/i, 'the upgrade shows from → to');
    const scheduledAt = events.findIndex((e) => e.action === 'resource.deprovision_scheduled');
    const effective = new Date(events[scheduledAt].details.after.scheduled.effective_at);
    const day = effective.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
    assert.ok(norm(await rows[scheduledAt].Details.innerText()).includes(day), `the deprovisioning shows its date (${day})`);
    const granted = rows[events.findIndex((e) => e.action === 'tokens.granted')];
    assert.match(norm(await granted.Details.innerText()), /500/, 'the grant shows its amount');

    await page.setViewportSize({ width: 800, height: 800 });
    await screenshot(page, 'audit-log-narrow');
    await assertNoSidewaysScroll(page, 'Audit Log at 800 px');
    assertPageClean(page);
    await page.close();
  });

  it('pages long histories with an Older link, losing and repeating no line', async () => {
    const company = await seedCompany(server, { tokens: 1 });
    for (let i = 2; i <= 61; i += 1) {
      await api(server, 'POST', `/api/v1/operator/companies/${company.id}/token-grants`, {
        body: { tokens: i, note: `grant number ${i}` },
        expect: 201,
      });
    }
    const page = await browser.newPage();
    await login(page, server, company.admin);
    for (const [path, table, total] of [['/transactions', '#transactions', 61], ['/audit', '#audit', null]]) {
      await page.goto(server.base + path);
      const seen = [];
      const amounts = [];
      for (let pageNo = 1; ; pageNo += 1) {
        const lines = (await page.locator(`${table} tbody tr`).allInnerTexts()).map(norm);
        assert.ok(lines.length > 0 && lines.length <= 50, `${path} page ${pageNo} shows 1 to 50 lines (got ${lines.length})`);
        seen.push(...lines);
        if (table === '#transactions') {
          for (const a of await page.locator(`${table} tbody tr td:nth-child(3)`).allInnerTexts()) amounts.push(...integersIn(a));
        }
        const older = page.getByRole('link', { name: /Older/ });
        if ((await older.count()) === 0) break;
        assert.equal(lines.length, 50, `${path} page ${pageNo}: a full page before an Older link`);
        if (pageNo === 1) await screenshot(page, path === '/audit' ? 'audit-log-paged' : 'cloud-tokens-paged');
        await older.click();
        await page.waitForLoadState('load');
        assert.equal(await page.getByRole('link', { name: /Newest/ }).count(), 1, `${path} page ${pageNo + 1} links back to the newest lines`);
        assert.ok(pageNo < 10, 'paging ends');
      }
      if (total !== null) {
        assert.equal(seen.length, total, `${path}: every line once`);
        // Newest first: the grants of 61, 60, …, 1 tokens.
        assert.deepEqual(amounts, Array.from({ length: 61 }, (_, i) => 61 - i), `${path}: in order, none lost or repeated`);
      } else {
        const apiEvents = (await api(server, 'GET', '/api/v1/audit-events', { token: company.admin.token, expect: 200 })).json.events;
        assert.ok(apiEvents.length > 50, 'the audit log is longer than a page');
        assert.equal(seen.length, apiEvents.length, `${path}: every event once`);
        const grants = seen.filter((l) => /grant number (\d+)/.test(l)).map((l) => Number(l.match(/grant number (\d+)/)[1]));
        assert.deepEqual(grants, Array.from({ length: 60 }, (_, i) => 61 - i), `${path}: in order, none lost or repeated`);
      }
    }
    assertPageClean(page);
    await page.close();
  });
});
