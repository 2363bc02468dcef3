// The Portal's Content tab of a knowledge base (RUNTIME.md §8), through the real binary: files
// uploaded in the browser are extracted, chunked, embedded by the linked embeddings resource
// (whose route goes to a fake OpenAI-compatible upstream here: a few lines of Node answering
// /embeddings) and stored; the embedding calls are metered on the embeddings resource; refusals
// (a PDF without text, an unsupported file, bad metadata, the embeddings quota spent) say why and
// store nothing; a collection is deleted after a confirmation; the activity log says who did
// what. Fixtures: tests/fixtures/knowledge (see its README for how they were made).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  REPO_ROOT, api, assertNoSidewaysScroll, assertPageClean, eventually, launchBrowser, login, provisionViaApi, screenshot,
  seedCompany, settle, startServer,
} from './harness.mjs';

const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const FIXTURES = join(REPO_ROOT, 'tests', 'fixtures', 'knowledge');

/** A fake OpenAI-compatible upstream answering /embeddings with 8-float vectors. */
function startUpstream() {
  const state = { calls: [], tokensPerCall: 10, delayMs: 0 };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (req.method !== 'POST' || !req.url.endsWith('/embeddings')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'not here', type: 'invalid_request_error', code: null } }));
        return;
      }
      const request = JSON.parse(body);
      const inputs = Array.isArray(request.input) ? request.input : [request.input];
      state.calls.push({ inputs, tokens: state.tokensPerCall });
      const data = inputs.map((text, index) => {
        const v = new Array(8).fill(0);
        for (const w of String(text).toLowerCase().split(/\W+/).filter(Boolean)) {
          let h = 7;
          for (const ch of w) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
          v[h % 8] += 1;
        }
        v[7] += 0.01;
        return { object: 'embedding', index, embedding: v };
      });
      const answer = JSON.stringify({
        object: 'list', data, model: 'fake-embed',
        usage: { prompt_tokens: state.tokensPerCall, total_tokens: state.tokensPerCall },
      });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(answer);
      }, state.delayMs);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    base: `http://127.0.0.1:${server.address().port}/v1`,
    state,
    close: () => new Promise((r) => server.close(r)),
  })));
}

async function upload(page, file, { collection, newCollection, metadata } = {}) {
  const form = page.locator('#upload-form');
  await form.getByLabel('File').setInputFiles(file);
  if (collection) await form.getByLabel('Collection', { exact: true }).selectOption({ label: collection });
  if (newCollection !== undefined) await form.getByLabel(/New collection's name/).fill(newCollection);
  if (metadata !== undefined) await form.getByLabel(/Metadata/).fill(metadata);
  await form.getByRole('button', { name: 'Upload' }).click();
}

async function collections(page) {
  const rows = page.locator('#collections tbody tr');
  const out = {};
  for (let i = 0; i < await rows.count(); i += 1) {
    const r = rows.nth(i);
    out[await r.getAttribute('data-collection')] = Number(await r.getAttribute('data-chunks'));
  }
  return out;
}

describe('GenAI Portal, Content tab of a knowledge base', () => {
  let upstream;
  let server;
  let browser;
  let dir;
  let company;
  let kb;
  let emb;

  before(async () => {
    upstream = await startUpstream();
    dir = mkdtempSync(join(tmpdir(), 'genai-e2e-content-'));
    const providers = join(dir, 'providers.toml');
    writeFileSync(providers, `[providers.fake]\nkind = "openai"\nbase_url = "${upstream.base}"\ntimeout_seconds = 10\n\n`
      + '[models."cohere-embed-english-v3"]\nprovider = "fake"\nupstream_model = "fake-embed"\n');
    writeFileSync(join(dir, 'notes.docx'), 'PK\u0003\u0004 not really a Word file');
    server = await startServer({ args: ['--providers', providers] });
    browser = await launchBrowser();
    company = await seedCompany(server, { member: true });
    const user = { name: company.member.name, email: company.member.email };
    emb = await provisionViaApi(server, company, { type: 'embeddings_generation', name: 'Docs Embeddings', user });
    kb = await provisionViaApi(server, company, {
      type: 'knowledge_base', name: 'Company Docs', embeddingsResourceId: emb.id, user,
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('uploads TXT and PDF with metadata, meters the embeddings, refuses what it cannot store, deletes after confirming', async () => {
    const page = await browser.newPage();
    await login(page, server, company.member, { expectPath: '/portal' });

    // The knowledge base opens on its Content tab, empty.
    await page.goto(`${server.base}/portal/resources/${kb.id}`);
    const tabs = page.getByRole('navigation', { name: 'Resource' });
    assert.deepEqual((await tabs.getByRole('link').allInnerTexts()).map(norm), ['Content', 'Team', 'Keys', 'Settings']);
    assert.equal(await tabs.getByRole('link', { name: 'Content' }).getAttribute('aria-current'), 'page');
    await page.locator('#no-collections').waitFor();
    assert.equal(Number(await page.locator('#storage').getAttribute('data-used')), 0);
    assert.equal(Number(await page.locator('#storage').getAttribute('data-quota')), 10_000_000_000);
    assert.match(norm(await page.locator('#storage').innerText()), /0 B of 10 GB/);
    assert.match(norm(await page.locator('#upload-form').innerText()), /Only TXT and PDF files are supported, up to 32 MB/);
    await screenshot(page, 'portal-content-empty');

    // A TXT file with metadata into the default collection.
    const before = upstream.state.calls.length;
    await upload(page, join(FIXTURES, 'notes.txt'), { metadata: 'team=docs\nyear = 2026' });
    await page.waitForURL((url) => url.searchParams.get('done') === 'uploaded');
    const flash = norm(await page.getByRole('status').innerText());
    const m = flash.match(/Uploaded notes\.txt into the collection default: (\d+) chunks?,/);
    assert.ok(m, flash);
    const notesChunks = Number(m[1]);
    assert.ok(notesChunks >= 1);
    assert.deepEqual(await collections(page), { default: notesChunks });
    const embedded = upstream.state.calls.slice(before).flatMap((c) => c.inputs);
    assert.equal(embedded.length, notesChunks, 'one embedding per chunk');
    assert.match(embedded.join('\n'), /Coffee is free for everyone/);
    assert.ok(embedded.every((t) => t.length <= 2048));
    const usedAfterTxt = Number(await page.locator('#storage').getAttribute('data-used'));
    assert.ok(usedAfterTxt > 0);
    const first = page.locator('#activity tbody tr').first();
    assert.match(norm(await first.innerText()), new RegExp(`${company.member.name}.*Uploaded default notes\\.txt: ${notesChunks} chunks?,`));

    // A PDF with text into a new collection; a slow upstream shows the progress honestly.
    upstream.state.delayMs = 1500;
    await upload(page, join(FIXTURES, 'handbook.pdf'), { collection: 'New collection…', newCollection: 'handbook' });
    await page.locator('#upload-progress').waitFor({ state: 'visible' });
    await page.getByText('Extracting, embedding and storing the text…').waitFor();
    await screenshot(page, 'portal-content-progress', { fullPage: false });
    await page.getByRole('status').filter({ hasText: 'handbook.pdf' }).waitFor({ timeout: 15_000 });
    upstream.state.delayMs = 0;
    const pdfFlash = norm(await page.getByRole('status').innerText());
    assert.match(pdfFlash, /Uploaded handbook\.pdf into the collection handbook: \d+ chunks?,/);
    const pdfText = upstream.state.calls.at(-1).inputs.join('\n');
    assert.match(pdfText, /Hotel rooms are paid by the company up to 120 euros a night/);
    const both = await collections(page);
    assert.deepEqual(Object.keys(both).sort(), ['default', 'handbook']);
    assert.ok(Number(await page.locator('#storage').getAttribute('data-used')) > usedAfterTxt);
    await screenshot(page, 'portal-content');
    await assertNoSidewaysScroll(page, 'the Content tab');
    // The Portal's list shows the same storage used.
    const shown = norm(await page.locator('#storage .used-figure strong').innerText());
    await page.goto(`${server.base}/portal`);
    const kbRow = page.locator('tr').filter({ hasText: 'Company Docs' });
    assert.match(norm(await kbRow.innerText()), new RegExp(`Storage ${shown.replace('.', '\\.')} / 10 GB`));
    await page.goBack();
    await page.setViewportSize({ width: 800, height: 850 });
    await assertNoSidewaysScroll(page, 'the Content tab at 800 px');
    await screenshot(page, 'portal-content-narrow');
    await page.setViewportSize({ width: 1366, height: 850 });

    // Refusals: nothing is stored, the reason is shown by the field.
    const stored = await collections(page);
    const calls = upstream.state.calls.length;
    await upload(page, join(FIXTURES, 'scanned.pdf'));
    await page.locator('#error-file').filter({ hasText: /text/i }).waitFor();
    const noText = norm(await page.locator('#error-file').innerText());
    assert.match(noText, /no text/i, noText);
    await screenshot(page, 'portal-content-no-text');
    await upload(page, join(dir, 'notes.docx'));
    await page.locator('#error-file').filter({ hasText: 'Only TXT and PDF files are supported.' }).waitFor();
    await upload(page, join(FIXTURES, 'notes.txt'), { metadata: 'team=docs\nno pair here' });
    await page.locator('#error-metadata').filter({ hasText: 'line 2' }).waitFor();
    assert.equal(await page.locator('#upload-metadata').inputValue(), 'team=docs\nno pair here', 'the form keeps what was typed');
    await upload(page, join(FIXTURES, 'notes.txt'), { collection: 'New collection…', newCollection: 'has space', metadata: '' });
    await page.locator('#error-collection').filter({ hasText: /whitespace/ }).waitFor();
    assert.match(norm(await page.locator('#error-collection').innerText()), /collection/i);
    await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    assert.deepEqual(await collections(page), stored);
    assert.equal(upstream.state.calls.length, calls, 'a refused document is never embedded');

    // The embeddings were metered on the embeddings resource.
    const tokens = upstream.state.calls.reduce((s, c) => s + c.tokens, 0);
    await eventually(async () => {
      await page.goto(`${server.base}/portal/resources/${emb.id}`);
      assert.equal(Number(await page.locator('#used-input').getAttribute('data-used')), tokens);
    }, { timeoutMs: 15_000, intervalMs: 500 });

    // Its quota spent (the upstream reports a huge call): the next upload is refused, saying so.
    upstream.state.tokensPerCall = 5_000_000;
    await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    await upload(page, join(FIXTURES, 'notes.txt'), { collection: 'handbook' });
    await page.waitForURL((url) => url.searchParams.get('done') === 'uploaded');
    await upload(page, join(FIXTURES, 'handbook.pdf'), { collection: 'handbook' });
    const spent = page.locator('#upload-error');
    await spent.waitFor();
    assert.match(norm(await spent.innerText()), /Nothing was stored: the linked embeddings resource Docs Embeddings \(res_\w+\) could not embed the text\. The prompt/);
    assert.match(norm(await spent.innerText()), /quota/i);
    await screenshot(page, 'portal-content-quota-spent');
    upstream.state.tokensPerCall = 10;

    // Deleting a collection asks first; Cancel keeps it.
    await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    const handbookChunks = (await collections(page)).handbook;
    await page.getByRole('link', { name: 'Delete the collection handbook' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete collection' });
    await dialog.waitFor();
    assert.match(norm(await dialog.innerText()), new RegExp(`Delete the collection “handbook” and its ${handbookChunks} chunks?`));
    await screenshot(page, 'portal-content-delete', { fullPage: false });
    await dialog.getByRole('link', { name: 'Cancel' }).click();
    await settle(page);
    assert.ok('handbook' in await collections(page));
    await page.getByRole('link', { name: 'Delete the collection handbook' }).click();
    await page.getByRole('dialog', { name: 'Delete collection' }).getByRole('button', { name: 'Delete', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'deleted');
    assert.match(norm(await page.getByRole('status').innerText()), new RegExp(`Deleted the collection handbook and its ${handbookChunks} chunks?`));
    assert.deepEqual(Object.keys(await collections(page)), ['default']);
    assert.match(norm(await page.locator('#activity tbody tr').first().innerText()), /Deleted collection handbook/);

    // An empty collection can be made; a bad name is refused by the field.
    await page.getByLabel('New empty collection').fill('bad name');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.locator('#error-create').waitFor();
    await page.getByLabel('New empty collection').fill('faq');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL((url) => url.searchParams.get('done') === 'created');
    assert.equal((await collections(page)).faq, 0);
    await screenshot(page, 'portal-content-activity');

    // A form that did not come from this session is refused and changes nothing.
    const forged = await page.request.post(`${server.base}/portal/resources/${kb.id}/content/upload`, {
      multipart: { file: { name: 'x.txt', mimeType: 'text/plain', buffer: readFileSync(join(FIXTURES, 'notes.txt')) } },
      maxRedirects: 0,
    });
    assert.equal(forged.status(), 403);
    const forgedDelete = await page.request.post(`${server.base}/portal/resources/${kb.id}/content/collections/faq/delete`, {
      form: { csrf_token: 'nope' }, maxRedirects: 0,
    });
    assert.equal(forgedDelete.status(), 403);
    await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    assert.deepEqual(Object.keys(await collections(page)).sort(), ['default', 'faq']);

    // A deletion through the Runtime API (a key of the knowledge base) is in the log too.
    const key = await api(server, 'POST', `/api/v1/resources/${kb.id}/keys`, {
      token: company.admin.token, body: { description: 'e2e runtime' }, expect: 201,
    });
    const del = await fetch(`${server.base}/runtime/v1/resources/${kb.id}/knowledge-bases/faq`, {
      method: 'DELETE', headers: { 'x-api-key': key.json.secret },
    });
    assert.equal(del.status, 204);
    await page.reload();
    assert.deepEqual(Object.keys(await collections(page)), ['default']);
    assert.match(norm(await page.locator('#activity tbody tr').first().innerText()), /a Runtime API key Deleted collection faq/);
    assertPageClean(page);
    await page.close();
  });

  it('works without JavaScript: upload, refusal and the delete confirmation as pages', async () => {
    const plain = await launchBrowser({ javaScriptEnabled: false });
    try {
      // Resources of its own: the first test spent the other embeddings resource's quota.
      const user = { name: company.member.name, email: company.member.email };
      const emb2 = await provisionViaApi(server, company, { type: 'embeddings_generation', name: 'Plain Embeddings', user });
      const kb2 = await provisionViaApi(server, company, {
        type: 'knowledge_base', name: 'Plain Docs', embeddingsResourceId: emb2.id, user,
      });
      const page = await plain.newPage();
      await login(page, server, company.member, { expectPath: '/portal' });
      await page.goto(`${server.base}/portal/resources/${kb2.id}/content`);
      await upload(page, join(FIXTURES, 'handbook.pdf'), { collection: 'New collection…', newCollection: 'nojs' });
      await page.waitForURL((url) => url.searchParams.get('done') === 'uploaded');
      assert.ok((await collections(page)).nojs >= 1);
      await upload(page, join(FIXTURES, 'scanned.pdf'));
      await page.locator('#error-file').filter({ hasText: /text/i }).waitFor();
      await page.getByRole('link', { name: 'Delete the collection nojs' }).click();
      await page.waitForURL((url) => url.pathname.endsWith('/collections/nojs/delete'));
      await page.getByRole('button', { name: 'Delete', exact: true }).click();
      await page.waitForURL((url) => url.searchParams.get('done') === 'deleted');
      assert.ok(!('nojs' in await collections(page)));
      // Names are shown as text: a file name with markup is escaped in the result line and the log.
      await page.locator('#upload-form').getByLabel('File').setInputFiles({
        name: '<img src=x onerror=alert(1)>.txt', mimeType: 'text/plain', buffer: Buffer.from('Plain words in a file.'),
      });
      await page.locator('#upload-form').getByRole('button', { name: 'Upload' }).click();
      await page.getByRole('status').filter({ hasText: '<img src=x onerror=alert(1)>.txt' }).waitFor();
      assert.equal(await page.locator('main img').count(), 0, 'no markup from a file name');
      assert.match(norm(await page.locator('#activity tbody tr').first().innerText()), /<img src=x onerror=alert\(1\)>\.txt: 1 chunk/);
      await page.close();
    } finally {
      await plain.close();
    }
  });

  it('is the team\'s only (a member of another company gets a 404), and only a knowledge base\'s', async () => {
    const other = await seedCompany(server, { member: true });
    const page = await browser.newPage();
    await login(page, server, other.member, { expectPath: '/portal' });
    const res = await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    assert.equal(res.status(), 404);
    // Only knowledge bases have content: another type's Content address is not there either.
    await login(page, server, company.member, { expectPath: '/portal' });
    assert.equal((await page.goto(`${server.base}/portal/resources/${emb.id}/content`)).status(), 404);
    // Deleting a collection that is not there says so (404), it is no server error.
    const tab = await page.goto(`${server.base}/portal/resources/${kb.id}/content`);
    assert.equal(tab.status(), 200);
    const csrf = await page.locator('#upload-form input[name=csrf_token]').inputValue();
    const gone = await page.request.post(`${server.base}/portal/resources/${kb.id}/content/collections/nothing-here/delete`, {
      form: { csrf_token: csrf }, maxRedirects: 0,
    });
    assert.equal(gone.status(), 404);

    // Over the limit: refused naming it (413), before any of it is looked at.
    const big = await page.request.post(`${server.base}/portal/resources/${kb.id}/content/upload`, {
      multipart: {
        csrf_token: csrf,
        file: { name: 'big.txt', mimeType: 'text/plain', buffer: Buffer.alloc(32_000_001, 'a') },
      },
      maxRedirects: 0,
    });
    assert.equal(big.status(), 413);
    assert.match(norm(await big.text()), /The file is too large: an upload may be at most 32 MB/);
    // A large file within the limit reaches the use case whole (5 MB of sentences: thousands of
    // chunks); this knowledge base's embeddings quota was spent above, so it is refused there.
    const sentences = 'The quick brown fox jumps over the lazy dog again and again. '.repeat(85_000);
    const large = await page.request.post(`${server.base}/portal/resources/${kb.id}/content/upload`, {
      multipart: { csrf_token: csrf, file: { name: 'large.txt', mimeType: 'text/plain', buffer: Buffer.from(sentences) } },
      maxRedirects: 0,
    });
    assert.equal(large.status(), 429);
    assert.match(norm(await large.text()), /Nothing was stored: the linked embeddings resource Docs Embeddings/);

    assertPageClean(page);
    await page.close();
  });
});
