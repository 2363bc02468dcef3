// Harness of the end-to-end browser tests: starts the real `genai` binary on a free port with a
// fresh SQLite database, seeds it through the Operator API, and drives headless Chromium
// (Debian's /usr/bin/chromium) through playwright-core. No browser is ever downloaded.
//
// Environment:
//   GENAI_BIN        the server binary (default ${CARGO_TARGET_DIR:-<repo>/target}/release/genai)
//   GENAI_CHROMIUM   the browser (default /usr/bin/chromium)
//   GENAI_E2E_SLOWMO milliseconds between browser actions, for watching a run (default 0)

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOT_DIR = join(REPO_ROOT, 'artifacts', 'screenshots');

/** The instant every manual-clock server starts at (a Thursday; next bundle month 12 Mar 2026). */
export const T0 = '2026-02-12T08:00:00Z';

export function serverBinary() {
  if (process.env.GENAI_BIN) {
    return isAbsolute(process.env.GENAI_BIN) ? process.env.GENAI_BIN : resolve(process.env.GENAI_BIN);
  }
  const target = process.env.CARGO_TARGET_DIR || 'target';
  return resolve(REPO_ROOT, target, 'release', 'genai');
}

export function chromiumBinary() {
  return process.env.GENAI_CHROMIUM || '/usr/bin/chromium';
}

function secret(prefix) {
  return prefix + randomBytes(16).toString('hex'); // the server wants operator tokens of >= 32 characters
}

// ---------------------------------------------------------------------------------------------
// The server

/**
 * Starts `genai serve` on 127.0.0.1:0 with a fresh SQLite database and waits for the line
 * "GenAI Resources listening on http://…" (`args`: more arguments of `serve`, e.g. `--providers FILE`).
 * Returns { base, operatorToken, dbPath, stop(), logTail() }.
 */
export async function startServer({ manualClock = T0, timeoutMs = 60_000, args: extraArgs = [] } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(`the server binary ${bin} does not exist: run \`cargo build --release -p genai-server\` or set GENAI_BIN`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'genai-e2e-server-'));
  const operatorToken = secret('op-');
  const args = ['serve', '--listen', '127.0.0.1:0', '--database', `sqlite://${tmp}/db.sqlite`];
  if (manualClock) args.push('--manual-clock', manualClock);
  args.push(...extraArgs);
  const proc = spawn(bin, args, {
    env: { ...process.env, GENAI_OPERATOR_TOKEN: operatorToken, GENAI_LOG: process.env.GENAI_LOG || 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  const remember = (line) => {
    log.push(line);
    if (log.length > 200) log.shift();
  };
  let exited = null;
  const exitPromise = new Promise((res) => proc.once('exit', (code, signal) => {
    exited = { code, signal };
    res(exited);
  }));
  createInterface({ input: proc.stderr }).on('line', remember);
  const base = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the server printed no "listening on" line within ${timeoutMs} ms:\n${log.join('\n')}`)), timeoutMs);
    createInterface({ input: proc.stdout }).on('line', (line) => {
      remember(line);
      const m = line.match(/GenAI Resources listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        res(m[1].replace(/\/$/, ''));
      }
    });
    exitPromise.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`the server exited (code ${code}, signal ${signal}) before listening:\n${log.join('\n')}`));
    });
  });
  const server = {
    base,
    operatorToken,
    dbPath: join(tmp, 'db.sqlite'),
    logTail: () => log.slice(-40).join('\n'),
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exitPromise;
        clearTimeout(killer);
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  return server;
}

// ---------------------------------------------------------------------------------------------
// HTTP seeding (Operator API and, for setting up state quickly, the Control Center API)

export async function api(server, method, path, { token = server.operatorToken, body, expect } = {}) {
  const res = await fetch(server.base + path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (expect !== undefined && res.status !== expect) {
    throw new Error(`${method} ${path} answered ${res.status} (expected ${expect}): ${text}`);
  }
  return { status: res.status, json, text };
}

let companyCounter = 0;

/**
 * A company with one company admin (and optionally a member), `tokens` granted.
 * Returns { id, name, admin: {id, name, email, password, token}, member?: {...} }.
 */
export async function seedCompany(server, {
  tokens = 500,
  priceList = 'FY21',
  accounts = 1,
  enterpriseSubscriptions = 1,
  member = false,
  apiToken = true,
} = {}) {
  companyCounter += 1;
  const tag = `${process.pid}-${companyCounter}-${randomBytes(3).toString('hex')}`;
  const name = `E2E Company ${tag}`;
  const company = await api(server, 'POST', '/api/v1/operator/companies', {
    body: { name, price_list: priceList, accounts, enterprise_subscriptions: enterpriseSubscriptions },
    expect: 201,
  });
  const id = company.json.id;
  if (tokens > 0) {
    await api(server, 'POST', `/api/v1/operator/companies/${id}/token-grants`, {
      body: { tokens, note: 'e2e seed' },
      expect: 201,
    });
  }
  const makeUser = async (role, who) => {
    const user = {
      name: `${who} ${tag}`,
      email: `${who.toLowerCase()}-${tag}@e2e.example`,
      password: secret('pw-'),
    };
    const created = await api(server, 'POST', `/api/v1/operator/companies/${id}/users`, {
      body: { name: user.name, email: user.email, role, password: user.password },
      expect: 201,
    });
    user.id = created.json.id;
    if (apiToken) {
      const tok = await api(server, 'POST', `/api/v1/operator/users/${user.id}/api-tokens`, {
        body: { description: 'e2e seeding' },
        expect: 201,
      });
      user.token = tok.json.token;
    }
    return user;
  };
  const result = { id, name, admin: await makeUser('company_admin', 'Admin') };
  if (member) result.member = await makeUser('member', 'Member');
  return result;
}

const MODEL_FOR = {
  text_generation: { model: 'claude-sonnet-4.6', cross_region_inference: true },
  embeddings_generation: { model: 'cohere-embed-english-v3', cross_region_inference: false },
  knowledge_base: { cross_region_inference: false },
};

/** Provisions through the Control Center API (for tests whose subject is not the form). */
export async function provisionViaApi(server, company, {
  type = 'text_generation',
  name,
  plan,
  embeddingsResourceId,
  user,
} = {}) {
  const body = {
    type,
    display_name: name,
    environment: 'test',
    region: 'eu-central-1',
    ...MODEL_FOR[type],
    plan: plan || (type === 'knowledge_base' ? 'standard' : 'small'),
    user: user || { name: 'Ada Lovelace', email: 'ada@e2e.example' },
  };
  if (embeddingsResourceId) body.embeddings_resource_id = embeddingsResourceId;
  const res = await api(server, 'POST', '/api/v1/resources', { token: company.admin.token, body, expect: 201 });
  return res.json;
}

/** Moves a manual clock forward; answers once every due change has been applied. */
export async function advanceClock(server, now) {
  return (await api(server, 'POST', '/api/v1/operator/clock', { body: { now }, expect: 200 })).json;
}

// ---------------------------------------------------------------------------------------------
// The browser

/**
 * Headless Chromium with a fresh profile (`{ javaScriptEnabled: false }` for the pages as they
 * work without app.js and htmx). Returns { context, newPage(), close() }.
 * Every page records uncaught page errors and JavaScript dialogs (alert/confirm/prompt, which
 * the UI never opens: one firing means injected script ran) in page.e2e.
 */
export async function launchBrowser({ javaScriptEnabled = true } = {}) {
  const executablePath = chromiumBinary();
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium is missing at ${executablePath} (apt-get install -y --no-install-recommends chromium, or set GENAI_CHROMIUM)`);
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'genai-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    // The window the UI is judged at (issue 7: 1366×850, a common laptop browser window).
    viewport: { width: 1366, height: 850 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    javaScriptEnabled,
    slowMo: Number(process.env.GENAI_E2E_SLOWMO || 0),
  });
  context.setDefaultTimeout(10_000);
  context.setDefaultNavigationTimeout(20_000);
  return {
    context,
    async newPage() {
      const page = await context.newPage();
      instrument(page);
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

function instrument(page) {
  page.e2e = { pageErrors: [], dialogs: [], inflight: 0, lastActivity: Date.now() };
  page.on('pageerror', (err) => page.e2e.pageErrors.push(String(err)));
  page.on('dialog', (dialog) => {
    page.e2e.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  const start = () => {
    page.e2e.inflight += 1;
    page.e2e.lastActivity = Date.now();
  };
  const end = () => {
    page.e2e.inflight = Math.max(0, page.e2e.inflight - 1);
    page.e2e.lastActivity = Date.now();
  };
  page.on('request', start);
  page.on('requestfinished', end);
  page.on('requestfailed', end);
}

/** Fails when the page raised an uncaught error or opened a JavaScript dialog. */
export function assertPageClean(page) {
  assert.deepEqual(page.e2e.pageErrors, [], 'uncaught JavaScript errors on the page');
  assert.deepEqual(page.e2e.dialogs, [], 'JavaScript dialogs were opened');
}

/**
 * Waits until the page has had no request in flight for `quietMs` (htmx requests are sent after
 * their trigger's delay, so a quiet window is the robust signal that a swap has happened).
 */
export async function settle(page, { quietMs = 400, timeoutMs = 10_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  await page.waitForTimeout(50);
  for (;;) {
    const quiet = page.e2e.inflight === 0 && Date.now() - page.e2e.lastActivity >= quietMs;
    if (quiet) {
      const busy = await page.locator('.htmx-request, .htmx-swapping, .htmx-settling').count().catch(() => 0);
      if (busy === 0) return;
    }
    if (Date.now() > deadline) throw new Error(`the page did not settle within ${timeoutMs} ms`);
    await page.waitForTimeout(50);
  }
}

/** Retries `fn` (assertions) until it passes or `timeoutMs` elapses; rethrows the last failure. */
export async function eventually(fn, { timeoutMs = 8_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

/**
 * Saves artifacts/screenshots/<name>.png: the whole page, or with `{ fullPage: false }` only the
 * window as the user sees it (needed for anything positioned against the window, such as an open
 * row menu, which a full-page capture would place against the enlarged capture area).
 */
export async function screenshot(page, name, { fullPage = true } = {}) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage });
  return path;
}

/**
 * Fails unless every part of the element is inside the window and is what the user would hit
 * when clicking there: nothing clips it (a scroll box, the window's edge) or covers it.
 */
export async function assertFullyVisible(locator, what) {
  const r = await locator.evaluate((el) => {
    const b = el.getBoundingClientRect();
    const inset = 2;
    const points = [
      [b.left + b.width / 2, b.top + b.height / 2],
      [b.left + inset, b.top + inset], [b.right - inset, b.top + inset],
      [b.left + inset, b.bottom - inset], [b.right - inset, b.bottom - inset],
    ];
    const hit = points.map(([x, y]) => {
      const h = document.elementFromPoint(x, y);
      return h === el || el.contains(h) ? 'ok' : (h ? `${h.tagName.toLowerCase()}.${h.className}` : 'nothing');
    });
    return {
      rect: { left: b.left, top: b.top, right: b.right, bottom: b.bottom },
      window: { width: document.documentElement.clientWidth, height: document.documentElement.clientHeight },
      hit,
    };
  });
  const where = JSON.stringify(r);
  assert.ok(r.rect.right > r.rect.left && r.rect.bottom > r.rect.top, `${what} has a size (${where})`);
  assert.ok(r.rect.left >= 0 && r.rect.top >= 0 && r.rect.right <= r.window.width && r.rect.bottom <= r.window.height,
    `${what} lies inside the window (${where})`);
  assert.deepEqual(r.hit, ['ok', 'ok', 'ok', 'ok', 'ok'], `${what} is not clipped or covered (${where})`);
}

/** Fails when the page, or any table's scroll box, is wider than the window (sideways scrolling). */
export async function assertNoSidewaysScroll(page, what) {
  const r = await page.evaluate(() => ({
    window: document.documentElement.clientWidth,
    page: document.documentElement.scrollWidth,
    boxes: [...document.querySelectorAll('.table-wrap')].map((w) => ({ id: w.querySelector('table')?.id, client: w.clientWidth, scroll: w.scrollWidth })),
  }));
  assert.ok(r.page <= r.window, `${what}: the page is no wider than the window (${JSON.stringify(r)})`);
  for (const b of r.boxes) {
    assert.ok(b.scroll <= b.client, `${what}: #${b.id} fits its box without sideways scrolling (${JSON.stringify(r)})`);
  }
}

// ---------------------------------------------------------------------------------------------
// UI helpers (the UI contract: accessible names and the ids the tests rely on)

export async function login(page, server, user, { expectPath = '/resources' } = {}) {
  await page.context().clearCookies();
  await page.goto(server.base + '/login');
  await page.getByLabel('Email', { exact: true }).fill(user.email);
  await page.getByLabel('Password', { exact: true }).fill(user.password);
  await Promise.all([
    page.waitForLoadState('load'),
    page.getByRole('button', { name: 'Log in', exact: true }).click(),
  ]);
  if (expectPath) {
    await page.waitForURL((url) => url.pathname === expectPath);
  }
}

/** The header's balance: { available, allocated, pending } as integers. */
export async function balance(page) {
  const el = page.locator('#balance');
  await el.waitFor();
  const read = async (attr) => {
    const v = await el.getAttribute(`data-${attr}`);
    assert.match(v ?? '', /^-?\d+$/, `#balance[data-${attr}] is an integer (got ${JSON.stringify(v)})`);
    return Number(v);
  };
  return { available: await read('available'), allocated: await read('allocated'), pending: await read('pending') };
}

/** Integers in a text, allowing "," / thin-space / no-break-space thousands separators. */
export function integersIn(text) {
  const found = (text || '').match(/[-−]?\d{1,3}(?:[,\u202f\u00a0\u2009]\d{3})+(?!\d)|[-−]?\d+/g) || [];
  return found.map((s) => Number(s.replace(/[,\u202f\u00a0\u2009]/g, '').replace('−', '-')));
}

/** Asserts that a [data-spec=key] element inside `scope` shows every integer of `numbers`. */
export async function assertSpecNumbers(scope, key, numbers) {
  const el = scope.locator(`[data-spec="${key}"]`);
  const text = await el.innerText();
  const got = integersIn(text);
  for (const n of numbers) {
    assert.ok(got.includes(n), `[data-spec="${key}"] shows ${n} (text: ${JSON.stringify(text)})`);
  }
}

/** "12 Mar 2026" or "2026-03-12" for an ISO date "2026-03-12". */
export function dateRegex(isoDate) {
  const [y, m, d] = isoDate.split('-').map(Number);
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][m - 1];
  return new RegExp(`(\\b0?${d} ${mon}[a-z]* ${y}\\b)|(${isoDate})`);
}

export async function openOverview(page, server, type = 'text_generation', extra = '') {
  await page.goto(`${server.base}/resources?type=${type}${extra}`);
  await page.getByRole('tab', { selected: true }).waitFor();
}

/** The overview row of a resource (by id or by visible name). */
export function row(page, { id, name }) {
  if (id) return page.locator(`#resources tr[data-resource-id="${id}"]`);
  return page.locator('#resources tr[data-resource-id]').filter({ hasText: name });
}

/** The cell of `rowLocator` under the column headed `column` in #resources. */
export async function cell(page, rowLocator, column) {
  // textContent, not innerText: the headers may be upper-cased by CSS only.
  const headers = (await page.locator('#resources thead th').allTextContents()).map((t) => t.trim());
  const index = headers.findIndex((h) => h === column);
  assert.ok(index >= 0, `#resources has a "${column}" column (headers: ${JSON.stringify(headers)})`);
  return rowLocator.locator('th, td').nth(index);
}

/** Opens a row's ⋯ menu with the mouse; returns the <details> locator. */
export async function openRowMenu(page, name) {
  const summary = page.getByLabel(`Actions for ${name}`, { exact: true });
  const details = page.locator('details.row-menu').filter({ has: summary });
  if ((await details.getAttribute('open')) === null) await summary.click();
  await eventually(async () => assert.notEqual(await details.getAttribute('open'), null, 'the row menu opened'));
  // With JavaScript the menu stays invisible until app.js has placed it (on the toggle event,
  // a moment after `open`): wait for that, so that reading its items never races the placing.
  await eventually(async () => assert.ok(
    await details.locator('.menu').evaluate((m) => !document.documentElement.classList.contains('js') || m.hasAttribute('data-placed')),
    'the row menu was placed'));
  return details;
}

/** Closes a row's ⋯ menu again (a click on its summary). */
export async function closeRowMenu(page, name) {
  const summary = page.getByLabel(`Actions for ${name}`, { exact: true });
  const details = page.locator('details.row-menu').filter({ has: summary });
  if ((await details.getAttribute('open')) !== null) await summary.click();
}

/**
 * An action of an open row menu by its name. The contract says links and buttons; an explicit
 * role="menuitem" on them is accepted too (same name, same activation).
 */
export function menuItem(details, name) {
  return details.getByRole('link', { name, exact: true })
    .or(details.getByRole('button', { name, exact: true }))
    .or(details.getByRole('menuitem', { name, exact: true }));
}

/** The names of the actions (links and buttons) a row's menu offers. */
export async function menuActions(details) {
  const items = details.locator('a, button');
  const names = [];
  for (let i = 0; i < (await items.count()); i += 1) names.push((await items.nth(i).innerText()).trim());
  return names;
}

/** The role="status" message shown after an action. */
export async function statusMessage(page) {
  const status = page.getByRole('status').filter({ hasText: /\S/ }).first();
  await status.waitFor();
  return (await status.innerText()).trim();
}

// ---------------------------------------------------------------------------------------------
// Usage (the Portal's consumption)

/**
 * Writes usage rows straight into the server's SQLite database (WAL mode, so the running server
 * sees them at its next read), exactly the rows the runtime's group commit writes: one
 * `usage_days` row per UTC day and one `usage_months` row per bundle month (keyed by its start in
 * ms). The Runtime API is not part of this build's browser tests, so this is how they get usage.
 * `days`: [{ day: 'YYYY-MM-DD', input, output, calls }]; `months`: [{ start: ISO instant, input,
 * output, calls }]. Uses Python's sqlite3 module.
 */
export function seedUsage(server, resourceId, { days = [], months = [] }) {
  const script = `
import json, sqlite3, sys
db, rid, days, months = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
con = sqlite3.connect(db, timeout=10)
with con:
    for d in days:
        con.execute("INSERT INTO usage_days (resource_id, day, input_tokens, output_tokens, api_calls) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (resource_id, day) DO UPDATE SET input_tokens = excluded.input_tokens, "
                    "output_tokens = excluded.output_tokens, api_calls = excluded.api_calls",
                    (rid, d["day"], d["input"], d["output"], d["calls"]))
    for m in months:
        con.execute("INSERT INTO usage_months (resource_id, month_start, input_used, output_used, api_calls) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (resource_id, month_start) DO UPDATE SET input_used = excluded.input_used, "
                    "output_used = excluded.output_used, api_calls = excluded.api_calls",
                    (rid, m["start_ms"], m["input"], m["output"], m["calls"]))
con.close()
`;
  const monthRows = months.map((m) => ({ ...m, start_ms: Date.parse(m.start) }));
  execFileSync('python3', ['-c', script, server.dbPath, resourceId, JSON.stringify(days), JSON.stringify(monthRows)], { stdio: 'pipe' });
}
