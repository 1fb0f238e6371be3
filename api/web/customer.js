// The customer's sale page: `/` lists the open sales, `/sales/<id>` is one
// sale. The countdown follows the server's clock (the offset to it is taken
// from every response carrying serverTimeMs), the queue position is pushed
// (or polled with backoff), and every outcome is a message in an aria-live
// region.
//
// The buy that puts an email into the sale hands out a buyer token: the
// proof, on every later request (place, events, confirm, order), that this
// tab is the buyer who queued. It is kept for the tab in sessionStorage,
// keyed by sale and email, so a reload carries on; a second buy for the same
// email gets no token, so a tab (or a stranger) without it cannot act.
'use strict';

(function () {
  const { api, el, $, setText, duration, waitWords, money, dateTime, STATUS_WORDS } = window.FS;

  // ---- the server's clock ------------------------------------------------
  let clockOffset = 0; // server time − local time, ms
  function syncClock(serverMs, sentAt, receivedAt) {
    if (typeof serverMs !== 'number') return;
    clockOffset = serverMs - (sentAt + receivedAt) / 2;
  }
  const serverNow = () => Date.now() + clockOffset;

  // ---- index: open sales -------------------------------------------------
  async function showList() {
    $('loading').hidden = true;
    $('sale-list').hidden = false;
    try {
      const { items } = await api('GET', '/public/flash-sales');
      const list = $('sales');
      list.replaceChildren();
      $('no-sales').hidden = items.length > 0;
      for (const sale of items) {
        const when =
          sale.status === 'upcoming' ? 'Starts ' + dateTime(sale.startsAt) : 'Ends ' + dateTime(sale.endsAt);
        list.append(
          el('li', { className: 'card' },
            el('h2', {}, el('a', { href: '/sales/' + encodeURIComponent(sale.id), text: sale.name })),
            el('p', { className: 'description', text: sale.description }),
            el('p', { className: 'meta' },
              el('span', { className: 'badge', dataset: { status: sale.status }, text: STATUS_WORDS[sale.status] || sale.status }),
              ' ', el('span', { className: 'num', text: money(sale.pricePerUnit) }),
              ' · ', el('span', { text: sale.stockLeft + ' left' }),
              ' · ', el('span', { text: when }))));
      }
    } catch (e) {
      showPageError('We could not load the sales (' + e.message + '). Reload the page to try again.');
    }
  }

  function showPageError(text) {
    $('loading').hidden = true;
    const box = $('page-error');
    box.textContent = text;
    box.hidden = false;
  }

  // ---- one sale ------------------------------------------------------------
  const saleId = decodeURIComponent((location.pathname.match(/^\/sales\/([^/]+)\/?$/) || [])[1] || '');
  let sale = null; // the last /public reply
  let state = 'idle'; // idle | buying | queued | ready | purchased | expired | closed
  let email = '';
  let holdEndsAt = 0; // server ms
  let pollTimer = null;
  let failures = 0;
  let rejoins = 0; // places lost to a server switch-over, joined again
  const storageKey = 'flashsale:email:' + saleId;

  // The buyer token of (this sale, an email), for this tab.
  const tokenKey = (who) => 'flashsale:buyer-token:' + saleId + ':' + who.trim().toLowerCase();
  function tokenOf(who) {
    try {
      return sessionStorage.getItem(tokenKey(who)) || undefined;
    } catch (e) {
      return undefined;
    }
  }
  // In-memory copy, for browsers that refuse sessionStorage.
  const tokens = new Map();
  function keepToken(who, token) {
    try {
      sessionStorage.setItem(tokenKey(who), token);
    } catch (e) {
      // Storage refused (private mode quota): the token lives as long as the page.
    }
    tokens.set(tokenKey(who), token);
  }
  const buyerToken = (who) => tokenOf(who) || tokens.get(tokenKey(who));

  // A random key sent with every buy of (this sale, an email) from this tab:
  // if the first buy's answer is lost (network trouble), the retry with the
  // same key gets the token again — a buy from anywhere else does not.
  const clientKeys = new Map();
  function clientKey(who) {
    const key = 'flashsale:client-key:' + saleId + ':' + who.trim().toLowerCase();
    let value = clientKeys.get(key);
    try {
      value = value || sessionStorage.getItem(key);
    } catch (e) {
      // No storage: the in-memory key still covers retries of this page.
    }
    if (!value) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      value = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
      try {
        sessionStorage.setItem(key, value);
      } catch (e) {
        // As above.
      }
    }
    clientKeys.set(key, value);
    return value;
  }

  const PAUSED_TEXT = 'The sale is paused — you keep your place.';
  const LOCKED_TEXT =
    'This email already has a place in this sale, taken from another tab or device. ' +
    'For your protection only the tab that joined can follow or confirm it: please go back to that tab. ' +
    'A place that is not confirmed in time goes to the next person in line.';

  async function loadSale() {
    const sentAt = Date.now();
    const reply = await api('GET', '/flash-sales/' + encodeURIComponent(saleId) + '/public');
    syncClock(reply.serverTimeMs, sentAt, Date.now());
    sale = reply;
    renderSale();
    return reply;
  }

  function renderSale() {
    if (!sale) return;
    document.title = sale.name + ' — flash sale';
    setText('sale-name', sale.name);
    setText('sale-description', sale.description);
    setText('sale-price', money(sale.pricePerUnit));
    setText('sale-stock', sale.stockLeft + ' of ' + sale.stock);
    const badge = $('sale-status');
    setText(badge, STATUS_WORDS[sale.status] || sale.status);
    badge.dataset.status = sale.status;
    // Paused and resumed while waiting: say so (the place is kept).
    const shown = $('progress').dataset.state;
    if (state === 'queued' && sale.status === 'paused' && shown !== 'paused') say('paused', PAUSED_TEXT);
    else if (state === 'queued' && sale.status === 'active' && shown === 'paused') {
      say('queued', 'You are in the queue. Keep this page open — it updates by itself.');
    }
    updateBuyButton();
    tick();
  }

  function updateBuyButton() {
    const busy = state === 'buying' || state === 'queued' || state === 'ready' || state === 'purchased';
    $('buy').disabled = !sale || sale.status !== 'active' || busy;
  }

  // The countdown to the start (or to the end while active), every 250 ms.
  let refreshingAtZero = false;
  function tick() {
    if (!sale) return;
    const now = serverNow();
    const starts = Date.parse(sale.startsAt);
    const ends = Date.parse(sale.endsAt);
    const box = $('countdown-box');
    if (sale.status === 'upcoming') {
      box.hidden = false;
      setText('countdown-label', 'Starts in');
      setText('countdown', duration(Math.ceil((starts - now) / 1000)));
      if (now >= starts && !refreshingAtZero) {
        // Zero: ask the server (its clock decides), until it says active.
        refreshingAtZero = true;
        loadSale()
          .catch(() => {})
          .finally(() => setTimeout(() => (refreshingAtZero = false), 300));
      }
    } else if (sale.status === 'active') {
      box.hidden = false;
      setText('countdown-label', 'Ends in');
      setText('countdown', duration(Math.ceil((ends - now) / 1000)));
      if (now >= ends && !refreshingAtZero) {
        refreshingAtZero = true;
        loadSale()
          .catch(() => {})
          .finally(() => setTimeout(() => (refreshingAtZero = false), 1000));
      }
    } else {
      box.hidden = true;
    }
    if (state === 'ready') {
      const left = Math.ceil((holdEndsAt - now) / 1000);
      setText('hold-left', duration(Math.max(0, left)));
    }
  }

  // ---- messages ------------------------------------------------------------
  function say(kind, text) {
    const progress = $('progress');
    progress.dataset.state = kind;
    setText('message', text);
  }

  function showQueue(position, size, wait) {
    $('queue-info').hidden = false;
    setText('position', position === null || position === undefined ? '—' : '#' + position);
    setText('queue-size', size === undefined ? '—' : size);
    setText('wait', waitWords(wait));
  }

  function hideQueue() {
    $('queue-info').hidden = true;
  }

  function setState(next) {
    state = next;
    $('reserved').hidden = next !== 'ready';
    if (next !== 'queued') hideQueue();
    updateBuyButton();
  }

  function purchased(orderId, already) {
    stopPolling();
    setState('purchased');
    say(
      already ? 'already' : 'purchased',
      (already ? 'You have already bought this item. ' : 'Success! Your purchase is confirmed. ') +
        'Your order id is ' + orderId + '.',
    );
    $('check-email').value = email;
  }

  function holdExpired() {
    stopPolling();
    setState('expired');
    say(
      'expired',
      'Your reservation ran out before it was confirmed, so the item went to the next person in line. ' +
        'If any are left you can press Buy to join the queue again.',
    );
    loadSale().catch(() => {});
  }

  // Outcomes the API reports as errors.
  function outcome(error) {
    switch (error.code) {
      case 'sold_out':
        stopPolling();
        setState('closed');
        say('sold_out', 'Sorry, this sale is sold out: every item has been bought.');
        break;
      case 'sale_ended':
        stopPolling();
        setState('closed');
        say('ended', 'This sale has ended. Thanks for your interest!');
        break;
      case 'sale_not_started':
        setState('idle');
        say('not_started', 'The sale has not started yet. The Buy button turns on when the countdown reaches zero.');
        break;
      case 'queue_full':
        setState('idle');
        say('queue_full', 'The queue is full right now. Please try again in a moment.');
        break;
      case 'sale_paused':
        setState('idle');
        say('paused', PAUSED_TEXT);
        break;
      case 'buyer_token_required':
      case 'invalid_buyer_token':
      case 'buyer_token_mismatch':
        // This tab cannot prove it is the buyer (the token is lost, or
        // was never here): nothing to follow or confirm from here.
        locked();
        return;
      case 'hold_expired':
        holdExpired();
        return;
      case 'no_hold':
        say('waiting', 'It is not your turn yet; we will tell you when your item is reserved.');
        schedulePoll(1000);
        return;
      case 'invalid_email':
      case 'invalid_field':
      case 'invalid_body':
        setState('idle');
        showEmailError('Please enter a valid email address.');
        say('idle', '');
        return;
      case 'sale_not_found':
        stopPolling();
        setState('closed');
        say('ended', 'This sale no longer exists.');
        return;
      default:
        setState('idle');
        say('error', 'Something went wrong: ' + error.message);
    }
    loadSale().catch(() => {});
  }

  function locked() {
    stopPolling();
    setState('locked');
    say('locked', LOCKED_TEXT);
  }

  function showEmailError(text) {
    const box = $('email-error');
    box.textContent = text;
    box.hidden = !text;
    $('email').setAttribute('aria-invalid', text ? 'true' : 'false');
    if (text) $('email').setAttribute('aria-describedby', 'email-error');
  }

  // Network trouble (no answer, 5xx, 429): keep the place, retry with backoff.
  function networkTrouble(retry, retryAfterSec) {
    failures += 1;
    const delay = retryAfterSec ? retryAfterSec * 1000 : Math.min(10000, 500 * 2 ** Math.min(failures, 5));
    say(
      'network',
      'Connection trouble — retrying in ' + Math.ceil(delay / 1000) + ' s. ' +
        (state === 'queued' || state === 'ready' ? 'Don’t worry, you keep your place.' : 'Please keep this page open.'),
    );
    clearTimeout(pollTimer);
    pollTimer = setTimeout(retry, delay);
  }

  // ---- buying --------------------------------------------------------------
  async function buy() {
    setState('buying');
    say('buying', 'Joining the queue…');
    try {
      const reply = await api('POST', '/orders/buy', {
        body: { email, flashSaleId: saleId, clientKey: clientKey(email) },
        buyerToken: buyerToken(email),
      });
      failures = 0;
      if (reply.buyerToken) keepToken(email, reply.buyerToken);
      if (!buyerToken(email)) {
        // Already in the sale, and the token went to whoever joined first.
        locked();
        return;
      }
      sessionStorage.setItem(storageKey, email);
      handleStatus(reply);
    } catch (e) {
      if (e.network) networkTrouble(buy, e.retryAfter);
      else outcome(e);
    }
  }

  function handleStatus(reply) {
    switch (reply.status) {
      case 'queued':
        setState('queued');
        if (reply.saleStatus === 'paused' || (sale && sale.status === 'paused')) say('paused', PAUSED_TEXT);
        else say('queued', 'You are in the queue. Keep this page open — it updates by itself.');
        showQueue(reply.position, reply.size, reply.estimatedWaitSec);
        schedulePoll(nextPollDelay(reply));
        break;
      case 'ready': {
        const first = state !== 'ready';
        holdEndsAt = serverNow() + (reply.holdTtlSec || 0) * 1000;
        setState('ready');
        if (first) {
          say('ready', 'Your item is reserved! Confirm within the time shown to complete your purchase.');
          $('confirm').focus();
        }
        tick();
        schedulePoll(1000);
        break;
      }
      case 'purchased':
        purchased(reply.orderId, state !== 'confirming');
        break;
      case 'expired':
        holdExpired();
        break;
      default:
        // Not in the sale (any more): the sale closed, or we never joined.
        if (reply.saleStatus === 'sold_out') outcome({ code: 'sold_out' });
        else if (reply.saleStatus === 'ended') outcome({ code: 'sale_ended' });
        else if ((state === 'queued' || state === 'ready') && rejoins < 3) {
          // We had a place and the sale no longer knows it: a Redis
          // failover took back its last moments. Buying again is safe (it
          // never buys twice) and puts us back in the queue.
          rejoins += 1;
          stopPolling();
          say('rejoining', 'Our servers switched over and your place was lost; joining the queue again…');
          buy();
        } else {
          stopPolling();
          setState('idle');
          say('idle', '');
        }
    }
  }

  // Poll sooner near the front of the queue, slower far back.
  function nextPollDelay(reply) {
    const wait = reply.estimatedWaitSec;
    const base = wait === null || wait === undefined ? 1000 : (wait * 1000) / 4;
    return Math.max(500, Math.min(5000, base));
  }

  // Pushed first: one Server-Sent Events stream follows the buyer's state.
  // If it cannot be opened or breaks, polling (with its back-off) takes
  // over, and the stream is tried again a while later.
  const STREAM_RETRY_MS = 30000;
  let stream = null;
  let streamBrokenAt = -Infinity;

  function follow() {
    if (stream) return true;
    if (typeof EventSource !== 'function' || Date.now() - streamBrokenAt < STREAM_RETRY_MS) return false;
    // EventSource cannot set headers: the token goes in the query here
    // (the server never logs queries).
    stream = new EventSource(
      '/orders/events?flashSaleId=' + encodeURIComponent(saleId) + '&email=' + encodeURIComponent(email) +
        '&buyerToken=' + encodeURIComponent(buyerToken(email) || ''),
    );
    stream.addEventListener('status', (event) => {
      let reply;
      try {
        reply = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      failures = 0;
      if (reply.saleStatus && sale && reply.saleStatus !== sale.status) loadSale().catch(() => {});
      if (state === 'confirming') return;
      handleStatus(reply);
    });
    stream.onerror = () => {
      // A break, or the end of the stream: polling takes over.
      unfollow();
      streamBrokenAt = Date.now();
      if (state === 'queued' || state === 'ready') schedulePoll(1000);
    };
    return true;
  }

  function unfollow() {
    if (stream) {
      stream.close();
      stream = null;
    }
  }

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = null;
    if (follow()) return;
    pollTimer = setTimeout(poll, delay);
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
    unfollow();
  }

  async function poll() {
    try {
      const reply = await api(
        'GET',
        '/orders/position?flashSaleId=' + encodeURIComponent(saleId) + '&email=' + encodeURIComponent(email),
        { buyerToken: buyerToken(email) },
      );
      failures = 0;
      if (reply.saleStatus && sale && reply.saleStatus !== sale.status) loadSale().catch(() => {});
      if (state === 'confirming') return;
      handleStatus(reply);
    } catch (e) {
      if (e.network) networkTrouble(poll, e.retryAfter);
      else outcome(e);
    }
  }

  async function confirm() {
    if (state !== 'ready') return;
    stopPolling();
    state = 'confirming';
    $('confirm').disabled = true;
    say('confirming', 'Confirming your purchase…');
    try {
      const reply = await api('POST', '/orders/confirm', {
        body: { email, flashSaleId: saleId },
        buyerToken: buyerToken(email),
      });
      failures = 0;
      purchased(reply.orderId, !reply.created);
      loadSale().catch(() => {});
    } catch (e) {
      state = 'ready';
      if (e.network) networkTrouble(confirm, e.retryAfter);
      else outcome(e);
    } finally {
      $('confirm').disabled = false;
    }
  }

  // ---- check my order -----------------------------------------------------
  async function checkOrder(event) {
    event.preventDefault();
    const who = $('check-email').value.trim();
    const out = $('check-result');
    if (!who) {
      out.replaceChildren(el('p', { className: 'notice notice-bad', text: 'Enter the email you bought with.' }));
      return;
    }
    const token = buyerToken(who);
    if (!token) {
      out.replaceChildren(
        el('p', {
          className: 'notice notice-bad',
          id: 'order-missing',
          text: 'Orders can only be looked up from the tab that bought them, to keep them private.',
        }),
      );
      return;
    }
    out.replaceChildren(el('p', { className: 'muted', text: 'Looking up your order…' }));
    try {
      const order = await api(
        'GET',
        '/orders/by-email?flashSaleId=' + encodeURIComponent(saleId) + '&email=' + encodeURIComponent(who),
        { buyerToken: token },
      );
      out.replaceChildren(
        el('div', { className: 'notice notice-good', id: 'order-found' },
          el('p', {}, 'Order ', el('strong', { id: 'order-id', text: order.orderId }), ' — paid.'),
          el('p', { className: 'muted' },
            'Email: ' + order.userEmail + ' · Amount: ' + money(order.totalAmount) +
              (order.createdAt ? ' · ' + dateTime(order.createdAt) : ''))));
    } catch (e) {
      const text =
        e.code === 'order_not_found'
          ? 'We found no order for that email in this sale.'
          : e.status === 401 || e.status === 403
            ? 'Orders can only be looked up from the tab that bought them, to keep them private.'
            : e.network
            ? 'Connection trouble — please try again in a moment.'
            : e.message;
      out.replaceChildren(el('p', { className: 'notice notice-bad', id: 'order-missing', text }));
    }
  }

  // ---- start -----------------------------------------------------------------
  async function showSale() {
    try {
      await loadSale();
    } catch (e) {
      showPageError(
        e.code === 'sale_not_found' || e.code === 'invalid_path'
          ? 'We could not find this sale. It may have been removed.'
          : 'We could not load the sale. Please reload the page.',
      );
      return;
    }
    $('loading').hidden = true;
    $('sale').hidden = false;
    $('buy-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('email').value.trim();
      if (!/^[^\s@]+@[^\s@]+$/.test(value)) {
        showEmailError('Please enter a valid email address.');
        $('email').focus();
        return;
      }
      showEmailError('');
      email = value;
      buy();
    });
    $('confirm').addEventListener('click', confirm);
    $('check-form').addEventListener('submit', checkOrder);
    setInterval(tick, 250);
    // Fresh figures (stock left, status) every few seconds.
    setInterval(() => loadSale().catch(() => {}), 5000);
    if (sale.status === 'sold_out') say('sold_out', 'Sorry, this sale is sold out: every item has been bought.');
    else if (sale.status === 'ended') say('ended', 'This sale has ended. Thanks for your interest!');
    else if (sale.status === 'paused') say('paused', PAUSED_TEXT);
    // Back after a reload: pick up where we were (with the tab's token).
    const remembered = sessionStorage.getItem(storageKey);
    if (remembered && buyerToken(remembered)) {
      email = remembered;
      $('email').value = remembered;
      poll();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    if (saleId) showSale();
    else showList();
  });
})();
