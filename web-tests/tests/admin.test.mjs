// The admin dashboard in a real browser against a real platform.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Platform, waitFor, sleep } from '../lib/platform.mjs';
import {
  assertSecurityHeaders, openBrowser, publish, screenshot, watchConsole, watchOrigins,
} from '../lib/browser.mjs';

/** A datetime-local value in the browser's time zone (UTC, set in openBrowser). */
function localInput(ms) {
  return new Date(ms).toISOString().slice(0, 19);
}

describe('admin dashboard', () => {
  let platform;
  let browser;

  before(async () => {
    platform = await new Platform('admin').start();
    browser = await openBrowser({ viewport: { width: 1280, height: 1000 } });
  });

  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  test('sign in → create a sale → list → live view moves while buyers join → sign out revokes', async () => {
    const page = await browser.context.newPage();
    // The validation error below is a 400 the page provokes on purpose.
    const consoleWatch = watchConsole(page, { allow: [/status of 400/] });
    const origins = watchOrigins(page, platform.url);
    const response = await page.goto(platform.url + '/admin');
    assert.equal(response.status(), 200);
    assertSecurityHeaders(response.headers());

    // Sign in.
    await page.locator('#signin-email').fill('admin@example.com');
    await page.locator('#signin-password').fill('admin123');
    await page.locator('#signin').click();
    await page.locator('#sales-view').waitFor({ state: 'visible' });
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('flashsale:admin-token'),
      local: Object.keys(localStorage).length,
    }));
    assert.ok(stored.session, 'the token is in sessionStorage');
    assert.equal(stored.local, 0, 'nothing in localStorage');

    // Create a sale; first with a bad stock, shown next to its field.
    await page.getByRole('button', { name: 'New sale' }).click();
    await page.locator('#form-view').waitFor({ state: 'visible' });
    const name = `Headphones ${Date.now()}`;
    await page.locator('#f-name').fill(name);
    await page.locator('#f-description').fill('Noise cancelling, 30 h battery.');
    await page.locator('#f-initialQuantity').fill('0');
    await page.locator('#f-pricePerUnit').fill('129.00');
    const start = Date.now() + 2000;
    await page.locator('#f-startsAt').fill(localInput(start));
    await page.locator('#f-endsAt').fill(localInput(start + 3600 * 1000));
    await page.locator('#f-holdTtlSeconds').fill('30');
    await page.locator('#f-rate').fill('4');
    await page.locator('#save').click();
    await page.locator('#err-initialQuantity').waitFor({ state: 'visible' });
    assert.match(await page.locator('#err-initialQuantity').textContent(), /initialQuantity must be from 1/);
    assert.equal(await page.locator('#f-initialQuantity').getAttribute('aria-invalid'), 'true');
    await page.locator('#f-initialQuantity').fill('40');
    await page.locator('#save').click();

    // It is in the list.
    await page.locator('#sales-view').waitFor({ state: 'visible' });
    const row = page.locator('#sales-body tr', { hasText: name });
    await row.waitFor();
    const saleId = await row.getAttribute('data-sale-id');
    assert.match(saleId, /^[0-9a-f]{24}$/);
    assert.match(await row.locator('td').nth(4).textContent(), /^40$/);

    // How the live view learns its figures: pushed over one stream (with
    // the bearer header, never a token in the URL), not polled.
    const watching = { streams: 0, polls: 0, requests: 0, streamAuth: [] };
    page.on('request', (request) => {
      const url = new URL(request.url());
      watching.requests += 1;
      if (/^\/flash-sales\/[^/]+\/live$/.test(url.pathname)) {
        watching.streams += 1;
        request.allHeaders().then((headers) =>
          watching.streamAuth.push([url.search, /^Bearer .+/.test(headers.authorization || '')]));
      }
      if (url.pathname.endsWith('/overview')) watching.polls += 1;
    });

    // Its live view.
    await row.getByRole('link', { name: `Live view of ${name}` }).click();
    await page.locator('#live-view').waitFor({ state: 'visible' });
    await page.getByRole('heading', { name }).waitFor();
    await waitFor('the first figures', async () => (await page.locator('#s-queue').textContent()) === '0');
    assert.equal(await page.locator('#s-sold').textContent(), '0');
    assert.equal(await page.locator('#s-left').textContent(), '40');
    assert.equal(await page.locator('#s-rate-limit').textContent(), 'limit 4/s');

    // Scripted buyers join once it starts; each confirms when admitted.
    await waitFor('the sale to start', async () => (await platform.call('GET', `/flash-sales/${saleId}/public`)).json?.status === 'active');
    const buyers = Array.from({ length: 24 }, (_, i) => `buyer${i}@example.com`);
    for (const email of buyers) {
      const r = await platform.buy(saleId, email);
      assert.equal(r.status, 200, r.text);
    }
    const confirming = Promise.all(buyers.map((email) => platform.buyAndConfirm(saleId, email, 30000)));
    confirming.catch(() => {});

    // The queue is seen, with its members in order, then units are sold.
    await waitFor('a queue on the dashboard', async () => Number(await page.locator('#s-queue').textContent()) > 0, { timeoutMs: 5000 });
    await page.locator('#queue-body tr').first().waitFor();
    const firstQueued = await page.locator('#queue-body tr').first().locator('td').nth(0).textContent();
    assert.equal(firstQueued, '1');
    await waitFor('sales on the dashboard', async () => Number(await page.locator('#s-sold').textContent()) >= 8, { timeoutMs: 15000 });
    const left = Number(await page.locator('#s-left').textContent());
    assert.ok(left <= 32, `stock left follows: ${left}`);
    await waitFor('an admission rate', async () => parseFloat(await page.locator('#s-rate').textContent()) > 0, { timeoutMs: 5000 });
    await waitFor('recorded orders listed', async () => (await page.locator('#orders-body tr').count()) > 0, { timeoutMs: 15000 });
    await sleep(1200); // one more chart point
    const path = await screenshot(page, 'admin-live');
    publish(path, 'admin.png');

    await confirming;
    await waitFor('everyone sold', async () => (await page.locator('#s-sold').textContent()) === '24', { timeoutMs: 10000 });
    assert.equal(await page.locator('#s-queue').textContent(), '0');
    assert.deepEqual(
      [watching.streams, watching.polls, watching.streamAuth],
      [1, 0, [['', true]]],
      'one live stream with the bearer header, no polling',
    );
    assert.match(await page.locator('#live-updated').textContent(), /^live/);
    // Once the orders are all recorded, a quiet sale costs no requests at
    // all (the chart moves on a local clock).
    await waitFor('every order listed', async () => /\(24\)/.test(await page.locator('#orders-page').textContent()), { timeoutMs: 15000 });
    await sleep(2500); // the last list reload, if one was due
    const quietFrom = watching.requests;
    await sleep(3000);
    assert.equal(watching.requests - quietFrom, 0, 'no requests while nothing changes');

    // Sign out: the token is revoked on the server.
    const token = await page.evaluate(() => sessionStorage.getItem('flashsale:admin-token'));
    await page.locator('#signout').click();
    await page.locator('#signin-view').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('flashsale:admin-token')), null);
    const after = await platform.call('GET', '/flash-sales', undefined, token);
    assert.equal(after.status, 401, 'the old token no longer works');
    await screenshot(page, 'admin-signed-out');

    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('edit: stock below sold is refused next to the field; delete asks twice', async () => {
    const token = await platform.adminToken();
    const sale = await platform.createSale(token, { name: 'Edit me', initialQuantity: 3 });
    await platform.buyAndConfirm(sale.id, 'e1@example.com');
    await platform.buyAndConfirm(sale.id, 'e2@example.com');
    const empty = await platform.createSale(token, { name: 'Delete me', initialQuantity: 3 });

    const page = await browser.context.newPage();
    // The refused edit (409) and delete of a sale with orders are on purpose.
    const consoleWatch = watchConsole(page, { allow: [/status of 409/] });
    await page.goto(platform.url + '/admin');
    await page.locator('#signin-email').fill('admin@example.com');
    await page.locator('#signin-password').fill('admin123');
    await page.keyboard.press('Enter');
    await page.locator('#sales-view').waitFor({ state: 'visible' });

    await page.locator('#sales-body tr', { hasText: 'Edit me' }).getByRole('link', { name: 'Edit Edit me' }).click();
    await page.locator('#form-view').waitFor({ state: 'visible' });
    await waitFor('the form filled', async () => (await page.locator('#f-name').inputValue()) === 'Edit me');
    await page.locator('#f-initialQuantity').fill('1');
    await page.locator('#save').click();
    await page.locator('#err-initialQuantity').waitFor({ state: 'visible' });
    assert.match(await page.locator('#err-initialQuantity').textContent(), /stock/i);
    await page.locator('#f-name').fill('Edited');
    await page.locator('#f-initialQuantity').fill('5');
    await page.locator('#save').click();
    await page.locator('#sales-body tr', { hasText: 'Edited' }).waitFor();

    // Delete: the first press arms, the second deletes.
    const row = page.locator('#sales-body tr', { hasText: 'Delete me' });
    await row.getByRole('button', { name: 'Delete Delete me' }).click();
    await row.getByRole('button', { name: 'Delete Delete me' }).filter({ hasText: 'Really delete?' }).click();
    await waitFor('the row gone', async () => (await page.locator('#sales-body tr', { hasText: 'Delete me' }).count()) === 0);
    assert.equal((await platform.call('GET', `/flash-sales/${empty.id}`, undefined, token)).status, 404);

    await screenshot(page, 'admin-edit-delete');
    consoleWatch.assertClean();
    await page.close();
  });

  test('the pre-queue window: set on a new sale, shown and changed while closed, refused once open', async () => {
    const page = await browser.context.newPage();
    // The refused change once the window is open is a 409 on purpose; the
    // out-of-range value is caught before any request.
    const consoleWatch = watchConsole(page, { allow: [/status of 409/] });
    await page.goto(platform.url + '/admin');
    await page.locator('#signin-email').fill('admin@example.com');
    await page.locator('#signin-password').fill('admin123');
    await page.keyboard.press('Enter');
    await page.locator('#sales-view').waitFor({ state: 'visible' });

    await page.getByRole('button', { name: 'New sale' }).click();
    await page.locator('#form-view').waitFor({ state: 'visible' });
    const name = `Lottery ${Date.now()}`;
    await page.locator('#f-name').fill(name);
    await page.locator('#f-initialQuantity').fill('5');
    await page.locator('#f-pricePerUnit').fill('10.00');
    const start = Date.now() + 600 * 1000;
    await page.locator('#f-startsAt').fill(localInput(start));
    await page.locator('#f-endsAt').fill(localInput(start + 3600 * 1000));
    await page.locator('#f-preQueueSeconds').fill('0');
    await page.locator('#save').click();
    await page.locator('#err-preQueueSeconds').waitFor({ state: 'visible' });
    assert.match(await page.locator('#err-preQueueSeconds').textContent(), /1 to 86400/);
    await page.locator('#f-preQueueSeconds').fill('60');
    await page.locator('#save').click();
    const row = page.locator('#sales-body tr', { hasText: name });
    await row.waitFor();
    const saleId = await row.getAttribute('data-sale-id');
    const before = (await platform.call('GET', `/flash-sales/${saleId}/public`)).json;
    assert.equal(before.preQueueSeconds, 60);
    assert.match(before.seedCommitment, /^[0-9a-f]{40}$/);
    assert.equal(before.seed, null);

    // Edit: the field shows the window; while it is closed it may change.
    await row.getByRole('link', { name: `Edit ${name}` }).click();
    await waitFor('the form filled', async () => (await page.locator('#f-preQueueSeconds').inputValue()) === '60');
    await page.locator('#f-preQueueSeconds').fill('900');
    await page.locator('#save').click();
    await page.locator('#sales-view').waitFor({ state: 'visible' });
    // (The public view is cached for a moment.)
    const opened = await waitFor('the public view to show the new window', async () => {
      const view = (await platform.call('GET', `/flash-sales/${saleId}/public`)).json;
      return view?.preQueueSeconds === 900 ? view : null;
    }, { timeoutMs: 5000 });
    assert.equal(opened.seedCommitment, before.seedCommitment, 'the same seed');

    // 900 s before a start 600 s away: open now, so no change is taken.
    await page.locator('#sales-body tr', { hasText: name }).getByRole('link', { name: `Edit ${name}` }).click();
    await waitFor('the form filled', async () => (await page.locator('#f-preQueueSeconds').inputValue()) === '900');
    await page.locator('#f-preQueueSeconds').fill('');
    await page.locator('#save').click();
    await page.locator('#err-preQueueSeconds').waitFor({ state: 'visible' });
    assert.match(await page.locator('#err-preQueueSeconds').textContent(), /pre-queue window has opened/);
    assert.equal((await platform.call('GET', `/flash-sales/${saleId}/public`)).json.preQueueSeconds, 900);

    consoleWatch.assertClean();
    await page.close();
  });

  test('pause and resume from the live view: new buyers refused, the queue kept, holders still buy', async () => {
    const token = await platform.adminToken();
    // Two units: the first two buyers hold them, the third waits in line.
    const sale = await platform.createSale(token, { name: 'Pause me', initialQuantity: 2 });
    for (const email of ['p1@example.com', 'p2@example.com', 'p3@example.com']) {
      const r = await platform.buy(sale.id, email);
      assert.equal(r.status, 200, r.text);
    }
    await waitFor('p1 and p2 admitted by the worker', async () =>
      (await platform.position(sale.id, 'p1@example.com')).json?.status === 'ready' &&
      (await platform.position(sale.id, 'p2@example.com')).json?.status === 'ready');

    const page = await browser.context.newPage();
    // The refused buy (409) is the script's, not the page's. The live
    // stream is refused here (503 on purpose): the view polls instead.
    const consoleWatch = watchConsole(page, { allow: [/status of 503/] });
    const polls = { streams: 0, overview: 0 };
    await page.route(/\/flash-sales\/[^/]+\/live$/, (route) => {
      polls.streams += 1;
      return route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: 'down for the test' } }),
      });
    });
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.endsWith('/overview')) polls.overview += 1;
    });
    await page.goto(platform.url + '/admin');
    await page.locator('#signin-email').fill('admin@example.com');
    await page.locator('#signin-password').fill('admin123');
    await page.keyboard.press('Enter');
    await page.locator('#sales-view').waitFor({ state: 'visible' });
    await page.locator('#sales-body tr', { hasText: 'Pause me' }).getByRole('link', { name: 'Live view of Pause me' }).click();
    await page.locator('#live-view').waitFor({ state: 'visible' });

    // Pause.
    const pause = page.getByRole('button', { name: 'Pause sale' });
    await pause.waitFor({ state: 'visible' });
    await pause.click();
    await waitFor('the paused badge', async () => (await page.locator('#live-status').textContent()) === 'Paused');
    const resume = page.getByRole('button', { name: 'Resume sale' });
    await resume.waitFor({ state: 'visible' });
    assert.match(await page.locator('#notice').textContent(), /Paused “Pause me”/);
    assert.equal((await platform.call('GET', `/flash-sales/${sale.id}/public`)).json.status, 'paused');

    // A new buyer is told; the one queued keeps the place; a holder still
    // buys; the worker admits nobody, even to the unit a holder gives up.
    const refused = await platform.buy(sale.id, 'p4@example.com');
    assert.equal(refused.status, 409, refused.text);
    assert.equal(refused.json.error.code, 'sale_paused');
    const p3 = await platform.position(sale.id, 'p3@example.com');
    assert.deepEqual([p3.json.status, p3.json.position], ['queued', 1]);
    const bought = await platform.confirm(sale.id, 'p1@example.com');
    assert.equal(bought.status, 200, bought.text);
    const more = await platform.call('PUT', `/flash-sales/${sale.id}`, { initialQuantity: 3 }, token);
    assert.equal(more.status, 200, more.text);
    await sleep(1500); // several worker rounds
    assert.equal((await platform.position(sale.id, 'p3@example.com')).json.status, 'queued');
    await waitFor('the figures on the dashboard', async () =>
      (await page.locator('#s-queue').textContent()) === '1' && (await page.locator('#s-sold').textContent()) === '1');
    assert.equal(await page.locator('#live-status').textContent(), 'Paused');
    assert.equal(polls.streams, 1, 'the stream tried once (again only after 30 s)');
    assert.ok(polls.overview >= 2, `the figures polled instead: ${polls.overview}`);
    assert.match(await page.locator('#live-updated').textContent(), /^updated/);
    await screenshot(page, 'admin-paused');

    // Resume: the worker admits the head of the same queue.
    await resume.click();
    await waitFor('the active badge', async () => (await page.locator('#live-status').textContent()) !== 'Paused');
    assert.match(await page.locator('#notice').textContent(), /Resumed “Pause me”/);
    await page.getByRole('button', { name: 'Pause sale' }).waitFor({ state: 'visible' });
    await waitFor('p3 admitted after the resume', async () => (await platform.position(sale.id, 'p3@example.com')).json?.status === 'ready');

    consoleWatch.assertClean();
    await page.close();
  });
});
