// The Portal and the Runtime API together, through the real path: a key created in the browser
// calls the Runtime API (OpenAI's format) of the real binary, which forwards to a fake
// OpenAI-compatible upstream (a few lines of Node here: it answers every chat with fixed usage)
// and meters the call; the Consumption tab then shows that usage, the key shows when it was last
// used, and once revoked in the browser the key is refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertPageClean, eventually, launchBrowser, login, provisionViaApi, screenshot, seedCompany, settle, startServer,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const PROMPT_TOKENS = 1234;
const COMPLETION_TOKENS = 56;

/** A fake OpenAI-compatible upstream: every chat answer reports the same usage. */
function startUpstream() {
  const calls = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      calls.push({ path: req.url, body });
      if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not here', type: 'invalid_request_error', code: null } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id: 'chatcmpl-e2e', object: 'chat.completion', created: 1770883200, model: 'fake-chat',
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the fake upstream.' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: COMPLETION_TOKENS, total_tokens: PROMPT_TOKENS + COMPLETION_TOKENS },
      }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    base: `http://127.0.0.1:${server.address().port}/v1`,
    calls,
    close: () => new Promise((r) => server.close(r)),
  })));
}

async function chat(server, secret) {
  const res = await fetch(`${server.base}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'claude-sonnet-4.6', max_tokens: 100, messages: [{ role: 'user', content: 'Hello?' }] }),
  });
  return { status: res.status, json: await res.json().catch(() => undefined) };
}

describe('GenAI Portal with the Runtime API', () => {
  let upstream;
  let server;
  let browser;
  let dir;

  before(async () => {
    upstream = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'genai-e2e-providers-'));
    const providers = join(dir, 'providers.toml');
    writeFileSync(providers, `[providers.fake]\nkind = "openai"\nbase_url = "${upstream.base}"\ntimeout_seconds = 5\n\n`
      + '[models."claude-sonnet-4.6"]\nprovider = "fake"\nupstream_model = "fake-chat"\n');
    server = await startServer({ args: ['--providers', providers] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('meters a call made with a key created in the browser, and refuses it once revoked', async () => {
    const company = await seedCompany(server, { member: true });
    const text = await provisionViaApi(server, company, { name: 'Live Bot', user: { name: company.member.name, email: company.member.email } });
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });
    await page.goto(`${server.base}/portal/resources/${text.id}/keys`);
    await page.getByRole('link', { name: 'Create Key' }).click();
    const ask = page.getByRole('dialog', { name: 'Create Key' });
    await ask.getByLabel('Description').fill('e2e runtime');
    await ask.getByRole('button', { name: 'Create Key' }).click();
    const shown = page.getByRole('dialog', { name: /Key created/ });
    await shown.waitFor();
    const secret = await shown.getByLabel(/^Secret/).inputValue();

    // Two calls through the Runtime API, each forwarded to the upstream.
    for (let i = 0; i < 2; i += 1) {
      const r = await chat(server, secret);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.usage.prompt_tokens, PROMPT_TOKENS);
    }
    assert.equal(upstream.calls.filter((c) => c.path.endsWith('/chat/completions')).length, 2);

    // Consumption shows them (the group commit makes them durable in a moment).
    await eventually(async () => {
      await page.goto(`${server.base}/portal/resources/${text.id}`);
      assert.equal(Number(await page.locator('#used-calls').getAttribute('data-used')), 2);
    }, { timeoutMs: 15_000, intervalMs: 500 });
    assert.equal(Number(await page.locator('#used-input').getAttribute('data-used')), 2 * PROMPT_TOKENS);
    assert.equal(Number(await page.locator('#used-output').getAttribute('data-used')), 2 * COMPLETION_TOKENS);
    assert.equal(norm(await page.locator('#used-input .percent').innerText()), '<1%', 'a little use is not shown as 0%');
    assert.equal(await page.locator('#chart-calls rect.bar').count(), 1, 'one day with calls');
    assert.equal(await page.locator('#days tbody tr').count(), 1);
    assert.equal(norm(await page.locator('#days tbody tr td').last().innerText()), '2');
    await screenshot(page, 'portal-consumption-runtime');

    // The key's "last used" follows (it may lag a little behind the call).
    await eventually(async () => {
      await page.goto(`${server.base}/portal/resources/${text.id}/keys`);
      const row = page.locator('#keys-table tbody tr').filter({ hasText: 'e2e runtime' });
      assert.doesNotMatch(norm(await row.innerText()), /never/);
    }, { timeoutMs: 75_000, intervalMs: 1_000 });

    // Revoked in the browser: refused from then on.
    await page.getByRole('link', { name: 'Revoke e2e runtime' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke key' });
    await confirm.getByRole('button', { name: 'Revoke', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'revoked');
    await settle(page);
    const refused = await chat(server, secret);
    assert.equal(refused.status, 401, JSON.stringify(refused.json));
    assertPageClean(page);
    await page.close();
  });
});
