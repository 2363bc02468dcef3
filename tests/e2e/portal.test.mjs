// The GenAI Portal in the browser (RUNTIME.md §7): a member lands on /portal after logging in and
// never sees the Control Center; a resource's tabs Consumption (charts, period, CSV export),
// Team (add, remove, the last member refused), Keys (Create Key shows the secret once, revoke)
// and Settings (the linked embeddings resource / knowledge bases).
//
// Usage is seeded with `seedUsage` (harness.mjs): rows written into the server's SQLite database
// exactly as the runtime's group commit writes them (`usage_days`, `usage_months`), since the
// Runtime API is not exercised by these browser tests.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, assertNoSidewaysScroll, assertPageClean, advanceClock, eventually, launchBrowser, login, openOverview,
  provisionViaApi, row, screenshot, seedCompany, seedUsage, settle, startServer, statusMessage,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

/** The usage of the e2e resource: the previous bundle month (12 Feb – 12 Mar 2026) and the current one up to "today" (20 Mar). */
function usageDays() {
  const previous = [];
  for (let d = 13; d <= 28; d += 3) previous.push({ day: `2026-02-${String(d).padStart(2, '0')}`, input: 40_000 + d * 1000, output: 10_000 + d * 100, calls: 20 + d });
  previous.push({ day: '2026-03-05', input: 90_000, output: 30_000, calls: 77 });
  const current = [];
  for (let d = 12; d <= 20; d += 1) {
    if (d === 15) continue; // a day without usage
    current.push({ day: `2026-03-${d}`, input: 100_000 + (d - 12) * 25_000, output: 40_000 + (d - 12) * 5_000, calls: 100 + (d - 12) * 10 });
  }
  return { previous, current };
}

const sum = (rows, k) => rows.reduce((a, r) => a + r[k], 0);

describe('GenAI Portal', () => {
  let server;
  let browser;
  let company;
  let text; // a text resource whose team is the company's member
  let embeddings;
  let kb;
  let usage;
  let other; // a resource whose team the member is not on

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    company = await seedCompany(server, { tokens: 500, member: true });
    const member = { name: company.member.name, email: company.member.email };
    text = await provisionViaApi(server, company, { name: 'Support Bot', user: member });
    embeddings = await provisionViaApi(server, company, { type: 'embeddings_generation', name: 'Doc Embeddings', user: member });
    kb = await provisionViaApi(server, company, { type: 'knowledge_base', name: 'Handbook KB', embeddingsResourceId: embeddings.id, user: member });
    // Five weeks later: the second bundle month of the resources (12 Mar – 12 Apr 2026).
    await advanceClock(server, '2026-03-20T10:00:00Z');
    usage = usageDays();
    seedUsage(server, text.id, {
      days: [...usage.previous, ...usage.current],
      months: [
        { start: '2026-02-12T08:00:00Z', input: sum(usage.previous, 'input'), output: sum(usage.previous, 'output'), calls: sum(usage.previous, 'calls') },
        { start: '2026-03-12T08:00:00Z', input: sum(usage.current, 'input'), output: sum(usage.current, 'output'), calls: sum(usage.current, 'calls') },
      ],
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('sends a member to /portal after logging in, lists their resources and keeps the Control Center from them', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    await page.getByRole('heading', { name: 'GenAI Portal', level: 1 }).waitFor();
    const names = norm(await page.locator('#portal-resources tbody').innerText());
    for (const n of ['Support Bot', 'Doc Embeddings', 'Handbook KB']) assert.ok(names.includes(n), `${n} is listed: ${names}`);
    // This month's usage in the list.
    const r = page.locator(`#portal-resources tr[data-resource-id="${text.id}"]`);
    assert.match(norm(await r.innerText()), new RegExp(`${sum(usage.current, 'input').toLocaleString('en-US')} / 2,500,000`));
    // No Control Center in the header.
    const nav = page.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Resources', exact: true }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'Cloud Tokens', exact: true }).count(), 0);
    assert.equal(await page.locator('#balance').count(), 0);
    await assertNoSidewaysScroll(page, 'the Portal list');
    await screenshot(page, 'portal-list');
    for (const path of ['/resources?type=text_generation', '/transactions', '/audit', `/resources/${text.id}/plan`]) {
      const res = await page.goto(server.base + path);
      assert.equal(res.status(), 403, path);
      await page.getByRole('heading', { name: /Only company admins/ }).waitFor();
      assert.equal(await page.locator('#resources').count(), 0);
    }
    await page.getByRole('link', { name: 'Go to the GenAI Portal' }).click();
    await page.waitForURL((url) => url.pathname === '/portal');
    // A member of another resource's team only: someone else's resource does not exist for them.
    other = await provisionViaApi(server, company, { name: 'Not Theirs' });
    const res = await page.goto(`${server.base}/portal/resources/${other.id}`);
    assert.equal(res.status(), 404);
    assertPageClean(page);
    await page.close();
  });

  it('links the Control Center and the Portal for a company admin', async () => {
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await openOverview(page, server);
    // The overview's usage column shows this bundle month's real usage.
    const overviewRow = row(page, { id: text.id });
    const usageText = norm(await overviewRow.locator('td.usage').innerText());
    assert.ok(usageText.includes(`${sum(usage.current, 'input').toLocaleString('en-US')} / 2,500,000`), usageText);
    assert.ok(usageText.includes(`${sum(usage.current, 'output').toLocaleString('en-US')} / 1,250,000`), usageText);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Portal', exact: true }).click();
    await page.waitForURL((url) => url.pathname === '/portal');
    assert.ok(norm(await page.locator('#portal-resources').innerText()).includes('Not Theirs'), 'an admin sees every resource');
    await page.getByRole('link', { name: 'Support Bot', exact: true }).click();
    await page.waitForURL((url) => url.pathname === `/portal/resources/${text.id}`);
    await page.getByRole('link', { name: 'Open in the Control Center' }).click();
    await page.waitForURL((url) => url.pathname === '/resources');
    assertPageClean(page);
    await page.close();
  });

  it('shows consumption against the quota with per-day charts, a period choice and a CSV export', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    await page.getByRole('link', { name: 'Support Bot', exact: true }).click();
    await page.waitForURL((url) => url.pathname === `/portal/resources/${text.id}`);
    assert.equal(await page.getByRole('link', { name: 'Consumption', exact: true }).getAttribute('aria-current'), 'page');
    const inUsed = sum(usage.current, 'input');
    const outUsed = sum(usage.current, 'output');
    const input = page.locator('#used-input');
    assert.equal(Number(await input.getAttribute('data-used')), inUsed);
    assert.equal(Number(await input.getAttribute('data-quota')), 2_500_000);
    assert.equal(Number(await input.getAttribute('data-percent')), Math.floor((inUsed * 100) / 2_500_000));
    assert.ok(norm(await input.innerText()).includes(`${Math.floor((inUsed * 100) / 2_500_000)}%`));
    assert.equal(Number(await page.locator('#used-output').getAttribute('data-used')), outUsed);
    assert.equal(Number(await page.locator('#used-calls').getAttribute('data-used')), sum(usage.current, 'calls'));
    assert.match(norm(await page.locator('#refill').innerText()), /12 Apr 2026, 08:00 UTC/);
    // Three charts; a bar per day with usage; the dashed limit on the token charts only.
    for (const id of ['input', 'output', 'calls']) {
      const chart = page.locator(`#chart-${id}`);
      assert.equal(await chart.locator('rect.bar').count(), usage.current.length, `${id}: one bar per day with usage`);
      assert.equal(await chart.locator('line.limit').count(), id === 'calls' ? 0 : 1, `${id}: the monthly limit`);
      assert.ok((await chart.locator('polyline.running').count()) >= 1, `${id}: the running total`);
    }
    assert.equal(Number(await page.locator('#chart-input').getAttribute('data-total')), inUsed);
    assert.equal(await page.locator('.empty-note').count(), 0);
    assert.match(await page.locator('#chart-input line.limit').evaluate((l) => getComputedStyle(l).strokeDasharray), /\d/);
    assert.equal(norm(await page.locator('#chart-input .limit-label').textContent()), 'limit 2.5M');
    // The bar of 20 Mar says its day and the running total.
    const last = usage.current[usage.current.length - 1];
    const titles = await page.locator('#chart-input rect.bar title').allTextContents();
    assert.ok(titles.some((t) => t.startsWith('20 Mar 2026: ' + last.input.toLocaleString('en-US')) && t.includes(`${inUsed.toLocaleString('en-US')} so far`)), titles.join('\n'));
    // The table of days, newest first.
    const rows = page.locator('#days tbody tr');
    assert.equal(await rows.count(), usage.current.length);
    assert.equal(await rows.first().getAttribute('data-date'), '2026-03-20');
    await assertNoSidewaysScroll(page, 'Consumption');
    await screenshot(page, 'portal-consumption');

    // Export: the CSV of the period shown, the same as the API's.
    const href = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    assert.equal(href, `/portal/resources/${text.id}/consumption.csv?from=2026-03-12&to=2026-04-12`);
    const csv = await page.request.get(server.base + href);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-type'], /^text\/csv/);
    assert.match(csv.headers()['content-disposition'], /attachment; filename="consumption-/);
    const expected = ['date,input_tokens,output_tokens,api_calls', ...usage.current.map((d) => `${d.day},${d.input},${d.output},${d.calls}`)].join('\n') + '\n';
    assert.equal(await csv.text(), expected);
    const viaApi = await api(server, 'GET', `/api/v1/resources/${text.id}/consumption.csv?from=2026-03-12&to=2026-04-12`, { token: company.admin.token, expect: 200 });
    assert.equal(viaApi.text, expected);

    // The previous bundle month.
    await Promise.all([
      page.waitForURL((url) => url.searchParams.get('period') === 'prev-1'),
      page.getByLabel('Period').selectOption({ label: '12 Feb 2026 – 12 Mar 2026' }),
    ]);
    await page.locator('#chart-input').waitFor();
    // Days are UTC days: 12 Mar, the day the bundle months change (at 08:00), belongs to both.
    const previousShown = [...usage.previous, usage.current[0]];
    assert.equal(await page.locator('#days tbody tr').count(), previousShown.length);
    assert.equal(await page.locator('#chart-input rect.bar').count(), previousShown.length);
    assert.equal(Number(await page.locator('#chart-input').getAttribute('data-total')), sum(previousShown, 'input'));
    // The running total restarts on 12 Mar: two lines.
    assert.equal(await page.locator('#chart-input polyline.running').count(), 2);
    // The figures of the current month do not change with the period.
    assert.equal(Number(await page.locator('#used-input').getAttribute('data-used')), inUsed);
    assert.equal(await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href'),
      `/portal/resources/${text.id}/consumption.csv?from=2026-02-12&to=2026-03-12`);
    await screenshot(page, 'portal-consumption-previous');

    // The last 7 days (14–20 Mar; 15 Mar had no usage): the running total carries 12–13 Mar.
    await Promise.all([
      page.waitForURL((url) => url.searchParams.get('period') === '7d'),
      page.getByLabel('Period').selectOption({ label: 'Last 7 days' }),
    ]);
    await page.locator('#chart-input').waitFor();
    const week = usage.current.filter((d) => d.day >= '2026-03-14');
    assert.equal(await page.locator('#chart-input rect.bar').count(), week.length);
    assert.equal(await page.locator('#days tbody tr').count(), week.length);
    const weekTitles = await page.locator('#chart-input rect.bar title').allTextContents();
    assert.ok(weekTitles.some((t) => t.startsWith('20 Mar 2026') && t.includes(`${inUsed.toLocaleString('en-US')} so far`)), weekTitles.join('\n'));
    await screenshot(page, 'portal-consumption-week');
    // A narrow window: the charts stack, nothing scrolls sideways.
    await page.setViewportSize({ width: 800, height: 850 });
    await assertNoSidewaysScroll(page, 'Consumption at 800 px');
    await screenshot(page, 'portal-consumption-narrow');
    await page.setViewportSize({ width: 1366, height: 850 });

    // An embeddings resource without usage: input tokens and API calls only, and an empty state.
    await page.goto(`${server.base}/portal/resources/${embeddings.id}`);
    assert.deepEqual(await page.locator('figure.chart').evaluateAll((fs) => fs.map((f) => f.id)), ['chart-input', 'chart-calls']);
    assert.equal(await page.locator('#used-output').count(), 0);
    assert.equal(Number(await page.locator('#used-input').getAttribute('data-quota')), 5_000_000);
    assert.equal(await page.locator('rect.bar').count(), 0);
    assert.equal(await page.locator('#chart-input .empty-note').textContent(), 'No usage in this period');
    assert.match(norm(await page.locator('#no-usage').innerText()), /No usage in this bundle month/);
    await screenshot(page, 'portal-consumption-empty');
    assertPageClean(page);
    await page.close();
  });

  it('adds and removes team members, and refuses to remove the last one', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    await page.goto(`${server.base}/portal/resources/${embeddings.id}/team`);
    const members = page.locator('#members tbody tr');
    assert.equal(await members.count(), 1);
    // A bad email is refused, naming the field.
    await page.getByLabel('Email', { exact: true }).fill('not an email');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.locator('#error-email').filter({ hasText: /\S/ }).waitFor();
    assert.equal(await members.count(), 1);
    // A new person joins (and becomes a user of the company).
    await page.getByLabel('Email', { exact: true }).fill('grace@e2e.example');
    await page.getByLabel('Name (optional)').fill('Grace <Hopper>');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'added');
    assert.match(await statusMessage(page), /added/);
    assert.equal(await members.count(), 2);
    assert.ok(norm(await page.locator('#members').innerText()).includes('Grace <Hopper>'), 'the name is shown as text');
    await screenshot(page, 'portal-team');
    // Remove them, after a confirmation.
    await page.getByRole('link', { name: 'Remove grace@e2e.example' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove member' });
    await dialog.waitFor();
    assert.match(norm(await dialog.innerText()), /grace@e2e\.example/);
    await screenshot(page, 'portal-team-remove', { fullPage: false });
    await dialog.getByRole('button', { name: 'Remove', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'removed');
    assert.equal(await members.count(), 1);
    const team = await api(server, 'GET', `/api/v1/resources/${embeddings.id}/members`, { token: company.admin.token, expect: 200 });
    assert.deepEqual(team.json.members.map((m) => m.email), [company.member.email.toLowerCase()]);
    // The last member: refused with the use case's message (here the member leaving).
    await page.getByRole('link', { name: 'Leave the team' }).click();
    const leave = page.getByRole('dialog', { name: 'Leave the team' });
    await leave.waitFor();
    await leave.getByRole('button', { name: 'Leave', exact: true }).click();
    const error = page.locator('#team-error');
    await error.waitFor();
    assert.match(norm(await error.innerText()), /only member of this resource's team/);
    assert.ok(norm(await error.innerText()).startsWith(company.member.email.toLowerCase()), 'the email is written as it is');
    assert.equal(await members.count(), 1);
    await screenshot(page, 'portal-team-last-member');
    assertPageClean(page);
    await page.close();
  });

  it('creates a key whose secret is shown once, lists it and revokes it after a confirmation', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    await page.goto(`${server.base}/portal/resources/${text.id}/keys`);
    await page.getByText('No keys yet.').waitFor();
    await page.getByRole('link', { name: 'Create Key' }).click();
    const ask = page.getByRole('dialog', { name: 'Create Key' });
    await ask.waitFor();
    // No description: refused in the dialog.
    await ask.getByRole('button', { name: 'Create Key' }).click();
    await settle(page);
    await page.locator('#error-description').waitFor();
    assert.match(norm(await page.locator('#error-description').innerText()), /description/i);
    await screenshot(page, 'portal-key-new', { fullPage: false });
    await ask.getByLabel('Description').fill('chatbot <prod>');
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith(`/portal/resources/${text.id}/keys`)),
      ask.getByRole('button', { name: 'Create Key' }).click(),
    ]);
    assert.equal(answer.headers()['cache-control'], 'no-store');
    const shown = page.getByRole('dialog', { name: /Key created/ });
    await shown.waitFor();
    assert.match(norm(await shown.innerText()), /Store it securely\. The key is shown only once\./);
    const secret = await shown.getByLabel(/^Secret/).inputValue();
    assert.match(secret, /^gr_/);
    const configuration = await shown.getByLabel(/^Configuration key/).inputValue();
    const decoded = JSON.parse(Buffer.from(configuration, 'base64').toString('utf8'));
    assert.equal(decoded.accessToken, secret);
    assert.equal(decoded.id, text.id);
    assert.equal(decoded.keyName, 'chatbot <prod>');
    await shown.getByRole('button', { name: 'Copy the secret' }).click();
    await shown.getByRole('button', { name: 'Copy the secret' }).filter({ hasText: 'Copied' }).waitFor();
    await screenshot(page, 'portal-key-created', { fullPage: false });
    // The list behind the dialog already has it.
    await shown.getByRole('link', { name: 'Done' }).click();
    await eventually(async () => assert.equal(await page.getByRole('dialog').count(), 0));
    const keyRow = page.locator('#keys-table tbody tr').filter({ hasText: 'chatbot <prod>' });
    await keyRow.waitFor();
    assert.match(norm(await keyRow.innerText()), /ACTIVE/);
    assert.match(norm(await keyRow.innerText()), /never/);
    assert.ok(norm(await keyRow.innerText()).includes(company.member.email.toLowerCase()), 'created by the member');
    // Gone after a reload: the page never shows it again.
    await page.reload();
    await keyRow.waitFor();
    assert.ok(!(await page.content()).includes(secret), 'the secret is not on the page after a reload');
    assert.equal(await page.getByRole('dialog').count(), 0);
    await screenshot(page, 'portal-keys');
    // Revoke, after a confirmation.
    await keyRow.getByRole('link', { name: 'Revoke chatbot <prod>' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke key' });
    await confirm.waitFor();
    await screenshot(page, 'portal-key-revoke', { fullPage: false });
    await confirm.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'revoked');
    assert.match(norm(await keyRow.innerText()), /REVOKED/);
    assert.equal(await keyRow.getByRole('link', { name: /Revoke/ }).count(), 0);
    const keys = await api(server, 'GET', `/api/v1/resources/${text.id}/keys`, { token: company.admin.token, expect: 200 });
    assert.equal(keys.json.keys.length, 1);
    assert.ok(keys.json.keys[0].revoked_at, 'revoked in the store');
    assertPageClean(page);
    await page.close();
  });

  it('creates a key and switches periods without JavaScript', async () => {
    const plain = await launchBrowser({ javaScriptEnabled: false });
    try {
      const page = await plain.newPage();
      await login(page, server, company.member, { expectPath: '/portal' });
      await page.goto(`${server.base}/portal/resources/${embeddings.id}/keys`);
      await page.getByRole('link', { name: 'Create Key' }).click();
      await page.waitForURL((url) => url.pathname.endsWith('/keys/new'));
      const ask = page.getByRole('dialog', { name: 'Create Key' });
      await ask.getByLabel('Description').fill('batch embeddings');
      await ask.getByRole('button', { name: 'Create Key' }).click();
      const shown = page.getByRole('dialog', { name: /Key created/ });
      await shown.waitFor();
      const secret = await shown.getByLabel(/^Secret/).inputValue();
      assert.match(secret, /^gr_/);
      await screenshot(page, 'portal-key-created-without-javascript', { fullPage: false });
      await shown.getByRole('link', { name: 'Done' }).click();
      await page.waitForURL((url) => url.pathname.endsWith('/keys'));
      assert.ok(!(await page.content()).includes(secret));
      await page.locator('#keys-table tbody tr').filter({ hasText: 'batch embeddings' }).waitFor();
      // The period: chosen, then "Show".
      await page.goto(`${server.base}/portal/resources/${text.id}`);
      await page.getByLabel('Period').selectOption({ label: 'Last 7 days' });
      await page.getByRole('button', { name: 'Show', exact: true }).click();
      await page.waitForURL((url) => url.searchParams.get('period') === '7d');
      await page.locator('#chart-input').waitFor();
      assertPageClean(page);
      await page.close();
    } finally {
      await plain.close();
    }
  });

  it('shows settings with the linked embeddings resource and knowledge bases', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    // A knowledge base opens on Settings (it has no token quota, so no Consumption tab).
    await page.goto(`${server.base}/portal/resources/${kb.id}`);
    const tabs = await page.getByRole('navigation', { name: 'Resource' }).getByRole('link').allTextContents();
    assert.deepEqual(tabs.map(norm), ['Team', 'Keys', 'Settings']);
    const settingsCard = page.locator('#settings');
    assert.match(norm(await settingsCard.innerText()), /Knowledge Base/);
    await settingsCard.getByRole('link', { name: 'Doc Embeddings' }).waitFor();
    await screenshot(page, 'portal-settings-knowledge-base');
    await settingsCard.getByRole('link', { name: 'Doc Embeddings' }).click();
    await page.waitForURL((url) => url.pathname === `/portal/resources/${embeddings.id}`);
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.locator('#settings').getByRole('link', { name: 'Handbook KB' }).waitFor();
    await page.goto(`${server.base}/portal/resources/${text.id}/settings`);
    const s = norm(await page.locator('#settings').innerText());
    for (const part of [text.id, 'Claude', 'small', 'eu-central-1']) assert.ok(s.includes(part), `${part} in ${s}`);
    await screenshot(page, 'portal-settings');
    assertPageClean(page);
    await page.close();
  });

  it('shows a deprovisioned resource read-only (last: it moves the clock past the deprovisioning)', async () => {
    await api(server, 'POST', `/api/v1/resources/${other.id}/deprovision`, { token: company.admin.token, expect: 200 });
    // It was provisioned on 20 Mar at 10:00, so its first bundle month ends on 20 Apr at 10:00.
    await advanceClock(server, '2026-04-20T11:00:00Z');
    const page = await browser.newPage();
    await login(page, server, company.admin);
    await page.goto(`${server.base}/portal`);
    assert.ok(!norm(await page.locator('#portal-resources').innerText()).includes('Not Theirs'), 'the list shows live resources');
    const res = await page.goto(`${server.base}/portal/resources/${other.id}`);
    assert.equal(res.status(), 200);
    assert.match(norm(await page.locator('.resource-sub').innerText()), /DEPROVISIONED/);
    assert.equal(await page.locator('#refill').count(), 0, 'no refill for a deprovisioned resource');
    assert.match(norm(await page.locator('#month-heading').innerText()), /^Its last bundle month 20 Mar 2026 – 20 Apr 2026/);
    await screenshot(page, 'portal-deprovisioned');
    await page.getByRole('link', { name: 'Keys', exact: true }).click();
    await page.waitForURL((url) => url.pathname.endsWith('/keys'));
    assert.equal(await page.getByRole('link', { name: 'Create Key' }).count(), 0);
    await page.getByRole('link', { name: 'Team', exact: true }).click();
    await page.waitForURL((url) => url.pathname.endsWith('/team'));
    assert.equal(await page.getByRole('button', { name: 'Add member' }).count(), 0);
    await page.getByText('its team is kept for history').waitFor();
    assertPageClean(page);
    await page.close();
  });
});

