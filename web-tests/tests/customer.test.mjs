// The customer's sale page in a real browser against a real platform.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Platform, waitFor } from '../lib/platform.mjs';
import {
  assertSecurityHeaders, openBrowser, publish, screenshot, watchConsole, watchOrigins,
} from '../lib/browser.mjs';

describe('customer page', () => {
  let platform;
  let browser;
  let token;

  before(async () => {
    platform = await new Platform('customer').start();
    token = await platform.adminToken();
    browser = await openBrowser();
  });

  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  /** The buyer token the page keeps for the tab (sale + email). */
  function tokenInPage(page, saleId, email) {
    return page.evaluate(
      ([sale, who]) => sessionStorage.getItem(`flashsale:buyer-token:${sale}:${who}`),
      [saleId, email],
    );
  }

  async function open(path, options = {}) {
    const page = await browser.context.newPage();
    if (options.viewport) await page.setViewportSize(options.viewport);
    const consoleWatch = watchConsole(page, options);
    const origins = watchOrigins(page, platform.url);
    const response = await page.goto(platform.url + path);
    assert.equal(response.status(), 200);
    assert.match(response.headers()['content-type'], /^text\/html/);
    assertSecurityHeaders(response.headers());
    return { page, consoleWatch, origins };
  }

  test('journey: countdown → Buy → queued → admitted → Confirm → order → check my order', async () => {
    // Starts in 6 s; one admission per second, so three buyers who join
    // first keep the customer visibly in the queue for a few seconds.
    const sale = await platform.createSale(token, {
      name: 'Trail running shoes',
      description: 'Limited edition, one pair per customer.',
      initialQuantity: 10,
      pricePerUnit: '89.90',
      startsAt: new Date(Date.now() + 6000).toISOString(),
      holdTtlSeconds: 60,
      rate: 1,
    });
    const { page, consoleWatch, origins } = await open(`/sales/${sale.id}`);
    // How the page learns its place: pushed, not polled.
    const watching = { events: 0, polls: 0 };
    page.on('request', (request) => {
      if (request.url().includes('/orders/events?')) watching.events += 1;
      if (request.url().includes('/orders/position?')) watching.polls += 1;
    });

    await page.getByRole('heading', { name: 'Trail running shoes' }).waitFor();
    assert.equal(await page.locator('#sale-price').textContent(), '$89.90');
    assert.equal(await page.locator('#sale-status').textContent(), 'Starting soon');
    assert.equal(await page.locator('#countdown-label').textContent(), 'Starts in');
    const before = await page.locator('#countdown').textContent();
    assert.match(before, /^0:0[1-6]$/, `countdown shows the seconds to the start: ${before}`);
    assert.ok(await page.locator('#buy').isDisabled(), 'Buy is disabled before the start');

    // The keyboard alone: type the email while waiting.
    await page.locator('#email').focus();
    await page.keyboard.type('ann@example.com');

    // The countdown reaches zero and the server says active: Buy turns on.
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 15000 });
    assert.equal(await page.locator('#sale-status').textContent(), 'On sale now');
    for (const buyer of ['b1@example.com', 'b2@example.com', 'b3@example.com']) {
      const r = await platform.buy(sale.id, buyer);
      assert.equal(r.status, 200, r.text);
    }
    await page.locator('#email').press('Enter');

    // Queued, with a place and a wait, in the live region.
    await page.locator('#progress[data-state="queued"]').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#progress').getAttribute('aria-live'), 'polite');
    const position = await page.locator('#position').textContent();
    assert.match(position, /^#[1-4]$/, `position ${position}`);
    assert.match(await page.locator('#message').textContent(), /in the queue/);
    assert.ok(await page.locator('#buy').isDisabled(), 'no second Buy while queued');
    await screenshot(page, 'customer-queued');

    // Admitted: reserved, with the hold countdown; Confirm has the focus.
    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 20000 });
    assert.deepEqual(watching, { events: 1, polls: 0 }, 'one event stream, no polling');
    assert.match(await page.locator('#hold-left').textContent(), /^[01]:\d\d$/);
    assert.match(await page.locator('#message').textContent(), /reserved/);
    await waitFor('Confirm to have the focus', () => page.evaluate(() => document.activeElement?.id === 'confirm'), {
      timeoutMs: 3000,
    });
    await page.keyboard.press('Enter');

    // Success with the order id.
    await page.locator('#progress[data-state="purchased"]').waitFor({ timeout: 10000 });
    const message = await page.locator('#message').textContent();
    const orderId = message.match(/order id is (\S+)\./)?.[1];
    assert.ok(orderId && orderId.startsWith(`${sale.id}-`), `order id in "${message}"`);
    assert.ok(await page.locator('#reserved').isHidden());

    // "Check my order" finds it (the email is filled in already).
    assert.equal(await page.locator('#check-email').inputValue(), 'ann@example.com');
    await page.locator('#check').click();
    await page.locator('#order-id').waitFor();
    assert.equal(await page.locator('#order-id').textContent(), orderId);

    const path = await screenshot(page, 'customer-journey');
    publish(path, 'customer.png');
    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('network trouble while queued: the page says so, retries, and keeps the place', async () => {
    const sale = await platform.createSale(token, { name: 'Flaky network', initialQuantity: 5, rate: 1 });
    // The failures below are provoked on purpose.
    const { page, consoleWatch } = await open(`/sales/${sale.id}`, {
      allow: [/Failed to load resource: net::ERR_FAILED/],
      allowFailedRequests: true,
    });
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    for (const buyer of ['n1@example.com', 'n2@example.com', 'n3@example.com']) {
      assert.equal((await platform.buy(sale.id, buyer)).status, 200);
    }
    // The connection drops right after joining the queue (the pushed
    // stream and the polls alike).
    const dropped = /\/orders\/(position|events)\?/;
    await page.route(dropped, (route) => route.abort('failed'));
    await page.locator('#email').fill('net@example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="queued"]').waitFor({ timeout: 5000 });
    await page.locator('#progress[data-state="network"]').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#message').textContent(), /Connection trouble — retrying in \d+ s\. Don’t worry, you keep your place\./);
    // Back online: the retries pick up the same place, then the hold.
    await page.unroute(dropped);
    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 20000 });
    await page.locator('#confirm').click();
    await page.locator('#progress[data-state="purchased"]').waitFor({ timeout: 10000 });
    await screenshot(page, 'customer-network-trouble');
    consoleWatch.assertClean();
    await page.close();
  });

  test('a place lost in a Redis failover: the page joins the queue again by itself', async () => {
    const sale = await platform.createSale(token, { name: 'Switch-over', initialQuantity: 5, rate: 1 });
    const { page, consoleWatch } = await open(`/sales/${sale.id}`);
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    for (const buyer of ['f1@example.com', 'f2@example.com', 'f3@example.com', 'f4@example.com']) {
      assert.equal((await platform.buy(sale.id, buyer)).status, 200);
    }
    await page.locator('#email').fill('lost@example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="queued"]').waitFor({ timeout: 5000 });
    const buyerToken = await tokenInPage(page, sale.id, 'lost@example.com');
    assert.ok(buyerToken, 'the page keeps its buyer token');
    // What a promoted replica that missed the last moments looks like: the
    // sale knows nothing of this buyer any more.
    assert.equal(platform.redisCli('ZREM', `fs:{${sale.id}}:queue`, 'lost@example.com'), '1');
    await waitFor('the page to join again', async () => {
      const r = await platform.position(sale.id, 'lost@example.com', buyerToken);
      return r.json?.status === 'queued' || r.json?.status === 'ready';
    }, { timeoutMs: 15000, every: 200 });
    await page.locator('#progress[data-state="queued"], #progress[data-state="ready"]').waitFor({ timeout: 5000 });
    consoleWatch.assertClean();
    await page.close();
  });

  test('the buyer token: a reload carries on; another tab with the same email cannot act', async () => {
    const sale = await platform.createSale(token, { name: 'Token sale', initialQuantity: 5, rate: 1 });
    const { page, consoleWatch, origins } = await open(`/sales/${sale.id}`);
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    for (const buyer of ['t1@example.com', 't2@example.com', 't3@example.com']) {
      assert.equal((await platform.buy(sale.id, buyer)).status, 200);
    }
    // Every buyer request of the page carries the token.
    const sent = [];
    page.on('request', (request) => {
      const url = request.url();
      if (/\/orders\/(position|events|confirm|by-email)/.test(url)) {
        sent.push({ url, token: request.headers()['x-buyer-token'] || new URL(url).searchParams.get('buyerToken') });
      }
    });
    await page.locator('#email').fill('Tab@Example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="queued"]').waitFor({ timeout: 5000 });
    const buyerToken = await tokenInPage(page, sale.id, 'tab@example.com');
    assert.ok(buyerToken, 'the token is kept in sessionStorage');
    // Never in localStorage (it outlives the tab).
    assert.equal(await page.evaluate(() => localStorage.length), 0);

    // A reload: the same place, followed with the same token.
    await page.reload();
    await page.locator('#progress[data-state="queued"], #progress[data-state="ready"]').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#email').inputValue(), 'Tab@Example.com');

    // Another tab (its own sessionStorage) with the same address, in
    // another spelling: told the place is taken elsewhere, nothing to act on.
    const other = await open(`/sales/${sale.id}`);
    await other.page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    await other.page.locator('#email').fill('tab+2@example.com');
    await other.page.locator('#buy').click();
    await other.page.locator('#progress[data-state="locked"]').waitFor({ timeout: 5000 });
    assert.match(await other.page.locator('#message').textContent(), /only the tab that joined can follow or confirm it/);
    assert.ok(await other.page.locator('#reserved').isHidden());
    // Its "check my order" does not ask the server for someone else's order.
    await other.page.locator('#check-email').fill('tab@example.com');
    await other.page.locator('#check').click();
    await other.page.locator('#order-missing').waitFor();
    await screenshot(other.page, 'customer-locked');
    other.consoleWatch.assertClean();
    await other.page.close();

    // The first tab buys as usual after the reload.
    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 20000 });
    await page.locator('#confirm').click();
    await page.locator('#progress[data-state="purchased"]').waitFor({ timeout: 10000 });
    await page.locator('#check').click();
    await page.locator('#order-id').waitFor();
    assert.ok(sent.length > 0);
    for (const request of sent) assert.equal(request.token, buyerToken, request.url);
    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('the answer to the first buy is lost: the retry (same client key) still gets the token', async () => {
    const sale = await platform.createSale(token, { name: 'Lost answer', initialQuantity: 5 });
    const { page, consoleWatch } = await open(`/sales/${sale.id}`, {
      allow: [/Failed to load resource: net::ERR_FAILED/],
      allowFailedRequests: true,
    });
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    // The server takes the buy; its answer never reaches the page.
    let lost = 0;
    await page.route('**/orders/buy', async (route) => {
      if (lost === 0) {
        lost += 1;
        await route.fetch();
        await route.abort('failed');
      } else {
        await route.continue();
      }
    });
    await page.locator('#email').fill('lossy@example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="network"]').waitFor({ timeout: 5000 });
    await page.locator('#progress[data-state="queued"], #progress[data-state="ready"]').waitFor({ timeout: 15000 });
    assert.equal(lost, 1);
    assert.ok(await tokenInPage(page, sale.id, 'lossy@example.com'), 'the retry got the token');
    consoleWatch.assertClean();
    await page.close();
  });

  test('paused: a queued buyer is told they keep their place; a new buyer is refused; resumed, it goes on', async () => {
    const sale = await platform.createSale(token, { name: 'Pausing sale', initialQuantity: 5, rate: 1 });
    const { page, consoleWatch } = await open(`/sales/${sale.id}`, { allow: [/status of 409/] });
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    // Three ahead (one admission a second): the page's buyer stays queued.
    for (const buyer of ['p1@example.com', 'p2@example.com', 'p3@example.com']) {
      assert.equal((await platform.buy(sale.id, buyer)).status, 200);
    }
    await page.locator('#email').fill('waiting@example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="queued"]').waitFor({ timeout: 5000 });

    // The admin pauses: the waiting buyer hears it (pushed) and keeps the place.
    const paused = await platform.call('POST', `/flash-sales/${sale.id}/pause`, undefined, token);
    assert.equal(paused.status, 200, paused.text);
    await page.locator('#progress[data-state="paused"]').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#message').textContent(), 'The sale is paused — you keep your place.');
    assert.ok(await page.locator('#queue-info').isVisible(), 'the place is still shown');
    await waitFor('the paused badge', async () => (await page.locator('#sale-status').textContent()) === 'Paused', {
      timeoutMs: 10000,
    });
    await screenshot(page, 'customer-paused');

    // A new buyer (another tab) is refused with the same words.
    const other = await open(`/sales/${sale.id}`, { allow: [/status of 409/] });
    await other.page.locator('#progress[data-state="paused"]').waitFor({ timeout: 5000 });
    assert.ok(await other.page.locator('#buy').isDisabled(), 'no Buy while paused');
    // A Buy that raced the pause (the page still showed the sale active):
    // the server's 409 sale_paused gets the same sentence.
    await other.page.evaluate(() => {
      document.getElementById('buy').disabled = false;
    });
    await other.page.locator('#email').fill('late@example.com');
    await other.page.evaluate(() => document.getElementById('progress').setAttribute('data-state', 'idle'));
    await other.page.locator('#buy').click();
    await other.page.locator('#progress[data-state="paused"]').waitFor({ timeout: 5000 });
    assert.equal(await other.page.locator('#message').textContent(), 'The sale is paused — you keep your place.');
    other.consoleWatch.assertClean();
    await other.page.close();

    // Resumed: the queue moves on and the buyer is admitted.
    const resumed = await platform.call('POST', `/flash-sales/${sale.id}/resume`, undefined, token);
    assert.equal(resumed.status, 200, resumed.text);
    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 20000 });
    consoleWatch.assertClean();
    await page.close();
  });

  test('pre-queue lottery: a countdown to registration, registered in the window, drawn into the queue at the start, the seed revealed and checked', async () => {
    const sha1 = (text) => createHash('sha1').update(text).digest('hex');
    // Registration opens in ~3 s and lasts 5 s; the draw is at the start.
    const sale = await platform.createSale(token, {
      name: 'Lottery sale',
      initialQuantity: 10,
      startsAt: new Date(Date.now() + 8000).toISOString(),
      preQueueSeconds: 5,
    });
    const { page, consoleWatch, origins } = await open(`/sales/${sale.id}`);

    // Before the window: a countdown to it, Buy off, the commitment shown.
    await page.locator('#lottery').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.locator('#countdown-label').textContent(), 'Registration opens in');
    assert.ok(await page.locator('#buy').isDisabled(), 'no Buy before registration opens');
    const view = (await platform.call('GET', `/flash-sales/${sale.id}/public`)).json;
    assert.match(view.seedCommitment, /^[0-9a-f]{40}$/);
    assert.equal(view.seed, null);
    assert.equal(await page.locator('#lottery-commitment').textContent(), view.seedCommitment);
    assert.ok(await page.locator('#lottery-reveal').isHidden(), 'no seed before the draw');

    // The window opens: two scripted buyers and the page's buyer register.
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    assert.equal(await page.locator('#countdown-label').textContent(), 'Draw and start in');
    for (const buyer of ['r1@example.com', 'r2@example.com']) {
      const r = await platform.buy(sale.id, buyer);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.status, 'registered');
    }
    await page.locator('#email').fill(' Lucky+shoes@Example.com');
    await page.locator('#buy').click();
    await page.locator('#progress[data-state="registered"]').waitFor({ timeout: 5000 });
    assert.match(
      await page.locator('#message').textContent(),
      /^You’re registered — the draw is at .+ \(the start\); you’ll enter the queue in a random order drawn then\. Registered so far: 3\.$/,
    );
    assert.match(await page.locator('#lottery-about').textContent(), /Registered so far: 3\.$/);
    assert.ok(await page.locator('#buy').isDisabled(), 'no second Buy while registered');
    await screenshot(page, 'customer-registered');

    // The start: drawn into the queue and admitted (ten units, three buyers).
    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 15000 });
    await page.locator('#lottery-reveal').waitFor({ state: 'visible', timeout: 5000 });
    const seed = await page.locator('#lottery-seed').textContent();
    assert.match(seed, /^[0-9a-f]{64}$/);
    assert.equal(sha1(seed), view.seedCommitment, 'the seed is the one committed to');
    const draw = (await platform.call('GET', `/flash-sales/${sale.id}/public/draw?page=1&pageSize=100`)).json;
    assert.equal(draw.seed, seed);
    const mine = sha1('lucky@example.com');
    assert.deepEqual([...draw.entries].sort(), [mine, sha1('r1@example.com'), sha1('r2@example.com')].sort());
    const recomputed = [...draw.entries].sort((a, b) => (sha1(`${seed}:${a}`) < sha1(`${seed}:${b}`) ? -1 : 1));
    assert.deepEqual(draw.entries, recomputed, 'the published order is the one the seed gives');
    assert.match(await page.locator('#lottery-about').textContent(), /^Drawn at .+: the 3 registered buyers entered the queue/);
    assert.equal(
      new URL(await page.locator('#lottery-list').evaluate((a) => a.href)).pathname,
      `/flash-sales/${sale.id}/public/draw`,
    );

    // The page checks it too (Web Crypto), and finds the buyer's place.
    await page.locator('#verify').click();
    await page.locator('#verify-place').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#verify-seed').textContent(), /^✓ SHA-1 of the seed equals the commitment this page showed before the draw\.$/);
    assert.equal(await page.locator('#verify-order').textContent(), '✓ The 3 entries are in the order the seed gives.');
    assert.equal(await page.locator('#verify-place').getAttribute('data-place'), String(draw.entries.indexOf(mine) + 1));
    assert.match(await page.locator('#verify-place').textContent(), /SHA-1 of “lucky@example.com”.* is number [1-3] of 3 in the draw\./);
    await screenshot(page, 'customer-lottery-drawn');

    await page.locator('#confirm').click();
    await page.locator('#progress[data-state="purchased"]').waitFor({ timeout: 10000 });
    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('sold out: the page says so and Buy stays off (phone-sized screen)', async () => {
    const sale = await platform.createSale(token, { name: 'Last one', initialQuantity: 1 });
    await platform.buyAndConfirm(sale.id, 'first@example.com');

    const { page, consoleWatch, origins } = await open(`/sales/${sale.id}`, { viewport: { width: 390, height: 844 } });
    await page.locator('#progress[data-state="sold_out"]').waitFor({ timeout: 10000 });
    assert.match(await page.locator('#message').textContent(), /sold out/);
    assert.equal(await page.locator('#sale-status').textContent(), 'Sold out');
    assert.equal(await page.locator('#sale-stock').textContent(), '0 of 1');
    assert.ok(await page.locator('#buy').isDisabled());
    // Nothing wider than the phone's screen.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px`);

    await screenshot(page, 'customer-sold-out');
    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('hold expired: the page explains what happened and what happens now', async () => {
    const sale = await platform.createSale(token, { name: 'Quick hold', initialQuantity: 3, holdTtlSeconds: 3 });
    const { page, consoleWatch, origins } = await open(`/sales/${sale.id}`);
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 10000 });
    await page.locator('#email').fill('slow@example.com');
    await page.locator('#buy').click();

    await page.locator('#reserved').waitFor({ state: 'visible', timeout: 10000 });
    // Not confirming: the hold runs out.
    await page.locator('#progress[data-state="expired"]').waitFor({ timeout: 15000 });
    assert.match(await page.locator('#message').textContent(), /ran out.*Buy to join the queue again/);
    assert.ok(await page.locator('#reserved').isHidden());
    await page.locator('#buy:not([disabled])').waitFor({ timeout: 5000 });

    await screenshot(page, 'customer-hold-expired');
    consoleWatch.assertClean();
    origins.assertOnlyOrigin();
    await page.close();
  });

  test('the index lists open sales and links to them', async () => {
    const sale = await platform.createSale(token, { name: '<b>Not bold</b> & friends', description: '<img src=x>' });
    const { page, consoleWatch } = await open('/');
    const link = page.getByRole('link', { name: '<b>Not bold</b> & friends' });
    await link.waitFor();
    // User text is text, never markup.
    assert.equal(await page.locator('#sales b, #sales img').count(), 0);
    await link.click();
    await page.waitForURL(`**/sales/${sale.id}`);
    await page.getByRole('heading', { name: '<b>Not bold</b> & friends' }).waitFor();
    assert.equal(await page.locator('#sale-description').textContent(), '<img src=x>');
    await screenshot(page, 'customer-index');
    consoleWatch.assertClean();
    await page.close();
  });
});
