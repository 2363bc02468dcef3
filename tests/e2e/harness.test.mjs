// Self-test of the harness: the server starts and is seeded through the Operator API, and headless
// Chromium starts and reaches it. When this file fails, the UI tests' failures say nothing about
// the UI.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, launchBrowser, seedCompany, startServer, T0 } from './harness.mjs';

describe('harness', () => {
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

  it('seeds a company with tokens and an admin through the Operator API', async () => {
    const company = await seedCompany(server, { tokens: 500, member: true });
    const tokens = await api(server, 'GET', '/api/v1/tokens', { token: company.admin.token, expect: 200 });
    assert.equal(tokens.json.available, 500);
    const clock = await api(server, 'GET', '/api/v1/operator/clock', { expect: 200 });
    assert.equal(clock.json.mode, 'manual');
    assert.equal(Date.parse(clock.json.now), Date.parse(T0));
  });

  it('drives headless Chromium against the server', async () => {
    const page = await browser.newPage();
    const health = await page.goto(server.base + '/healthz');
    assert.equal(health.status(), 200);
    const loginPage = await page.goto(server.base + '/login');
    assert.ok([200, 404].includes(loginPage.status()), `GET /login answers 200 (or 404 before the UI exists), got ${loginPage.status()}`);
    await page.close();
  });
});
