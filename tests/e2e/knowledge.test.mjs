// Knowledge bases in the Control Center: the overview's Knowledge Base tab shows each knowledge
// base's storage used (from its storage counter) against its plan's quota, after chunks were
// stored through the Runtime API with a key of the knowledge base.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  api, assertPageClean, cell, launchBrowser, login, openOverview, provisionViaApi, row, screenshot, seedCompany,
  startServer,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();

/** The server's byte formatting (views::bytes): 1,000-based units, one decimal when needed. */
function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u += 1;
  }
  if (u === 0) return `${n} B`;
  return Number.isInteger(v) ? `${v} ${units[u]}` : `${v.toFixed(1)} ${units[u]}`;
}

describe('Knowledge bases on the overview', () => {
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

  it('shows the storage a knowledge base uses, growing with what the Runtime API stores', async () => {
    const company = await seedCompany(server, { tokens: 500 });
    const emb = await provisionViaApi(server, company, { type: 'embeddings_generation', name: 'Embedder' });
    const kb = await provisionViaApi(server, company, {
      type: 'knowledge_base', name: 'Handbook KB', embeddingsResourceId: emb.id,
    });
    const key = await api(server, 'POST', `/api/v1/resources/${kb.id}/keys`, {
      token: company.admin.token, body: { description: 'e2e' }, expect: 201,
    });
    const chunks = Array.from({ length: 20 }, (_, i) => ({
      chunkId: `c${i}`, vector: Array.from({ length: 384 }, (_, j) => ((i * 7 + j) % 11) - 5 + 0.5).join(','),
      key: `Paragraph ${i} of the handbook. `.repeat(20), mxObjectId: `doc-${i % 3}`,
      metadata: [{ name: 'source', value: 'handbook' }],
    }));
    const res = await fetch(`${server.base}/runtime/v1/resources/${kb.id}/knowledge-bases/handbook/chunks`, {
      method: 'POST',
      headers: { 'x-api-key': key.json.secret, 'Content-Type': 'application/json' },
      body: JSON.stringify({ chunks }),
    });
    assert.equal(res.status, 201, await res.text());
    const stored = (await api(server, 'GET', `/api/v1/resources/${kb.id}`, { token: company.admin.token, expect: 200 }))
      .json.usage;
    assert.ok(stored.storage_bytes > 20 * 384 * 4, `storage counts vectors and text: ${JSON.stringify(stored)}`);

    const page = await browser.newPage();
    await login(page, server, company.admin);
    await openOverview(page, server, 'knowledge_base');
    const r = row(page, { id: kb.id });
    const usage = norm(await (await cell(page, r, 'Usage')).innerText());
    assert.ok(usage.includes(bytes(stored.storage_bytes)), `the row shows ${bytes(stored.storage_bytes)} used: ${usage}`);
    assert.ok(usage.includes(bytes(stored.storage_quota_bytes)), `and the quota: ${usage}`);
    await screenshot(page, 'knowledge-base-overview-storage');
    assertPageClean(page);
  });
});
