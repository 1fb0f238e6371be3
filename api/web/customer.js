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
//
// A sale with a pre-queue window (`preQueueSeconds`): from
// `registrationOpensAt` until the start, a buy registers the buyer for a
// draw at the start (status `registered`); the draw puts everyone
// registered into the queue in a random order, then the page goes on as
// for any queued buyer. The commitment (SHA-1 of the seed) is shown before
// the draw, the seed after it, and the page can check the published order
// and the buyer's place itself (Web Crypto SHA-1).
'use strict';

(function () {
  const { api, readEvents, el, $, setText, duration, waitWords, money, dateTime, STATUS_WORDS, sleep } = window.FS;

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
  let state = 'idle'; // idle | buying | registered | queued | ready | purchased | expired | closed
  let registeredCount = null; // buyers registered for the draw, as last heard
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
    badge.dataset.status = sale.status;
    if (typeof sale.registered === 'number' && !(state === 'registered' && sale.registered < registeredCount)) {
      registeredCount = sale.registered;
    }
    rememberCommitment();
    phase = lotteryPhase();
    renderPhase();
    // Drawn while we were registered and the stream or poll has not said
    // so yet: ask now.
    if (state === 'registered' && sale.drawnAt) poll();
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
    const busy =
      state === 'buying' || state === 'registered' || state === 'queued' || state === 'ready' || state === 'purchased';
    $('buy').disabled = !sale || !(sale.status === 'active' || phase === 'open') || busy;
  }

  // ---- the pre-queue lottery ----------------------------------------------
  // none (no window) | before (registration not open yet) | open (buys
  // register) | starting (the start passed, not drawn yet) | drawn.
  let phase = 'none';
  function lotteryPhase() {
    if (!sale || !sale.preQueueSeconds) return 'none';
    if (sale.drawnAt) return 'drawn';
    const now = serverNow();
    if (sale.status === 'upcoming' && now < Date.parse(sale.startsAt)) {
      return now < Date.parse(sale.registrationOpensAt) ? 'before' : 'open';
    }
    return 'starting';
  }

  // A time to the second (the draw is at a precise moment).
  const exactTime = (iso) =>
    new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

  // 5 → "5 seconds", 900 → "15 minutes", 7200 → "2 hours".
  function span(seconds) {
    const [n, unit] =
      seconds < 120 ? [seconds, 'second'] : seconds < 7200 ? [Math.round(seconds / 60), 'minute'] : [Math.round(seconds / 3600), 'hour'];
    return n + ' ' + unit + (n === 1 ? '' : 's');
  }

  function registeredText() {
    return (
      'You’re registered — the draw is at ' + exactTime(sale.drawAt || sale.startsAt) +
      ' (the start); you’ll enter the queue in a random order drawn then. Registered so far: ' +
      (registeredCount === null ? '—' : registeredCount) + '.'
    );
  }

  // What depends on the phase: the badge, Buy, the lottery box.
  function renderPhase() {
    const badge = $('sale-status');
    setText(badge, phase === 'open' ? 'Registration open' : STATUS_WORDS[sale.status] || sale.status);
    updateBuyButton();
    if (state === 'registered') say('registered', registeredText());
    const box = $('lottery');
    box.hidden = phase === 'none';
    if (phase === 'none') return;
    const count = registeredCount === null ? '—' : registeredCount;
    const about = {
      before:
        'Registration opens at ' + exactTime(sale.registrationOpensAt) + ', ' + span(sale.preQueueSeconds) +
        ' before the start. Everyone who registers before the start enters the queue in a random order drawn at ' +
        'the start, so there is no need to press Buy at the exact second.',
      open:
        'Registration is open until the start (' + exactTime(sale.startsAt) + '): press Buy to register. At the ' +
        'start everyone registered enters the queue in a random order, drawn then. Registered so far: ' + count + '.',
      starting: 'The sale has started: drawing the order of the ' + count + ' registered buyers…',
      drawn:
        'Drawn at ' + exactTime(sale.drawnAt) + ': the ' + count + ' registered buyers entered the queue in a ' +
        'random order, ahead of everyone who came later.',
    }[phase];
    setText('lottery-about', about);
    setText('lottery-commitment', sale.seedCommitment || '—');
    $('lottery-reveal').hidden = phase !== 'drawn' || !sale.seed;
    if (sale.seed) {
      setText('lottery-seed', sale.seed);
      const list = '/flash-sales/' + encodeURIComponent(saleId) + '/public/draw?page=1&pageSize=100';
      if ($('lottery-list').getAttribute('href') !== list) $('lottery-list').setAttribute('href', list);
    }
    $('verify').hidden = !(window.crypto && crypto.subtle);
  }

  // The commitment as this tab saw it before the draw: the seed revealed
  // later is checked against it, not against what the server says then.
  const commitmentKey = 'flashsale:commitment:' + saleId;
  function rememberCommitment() {
    if (!sale.seedCommitment || sale.seed) return;
    try {
      sessionStorage.setItem(commitmentKey, sale.seedCommitment);
    } catch (e) {
      // No storage: the check compares with the published commitment.
    }
  }
  function commitmentSeen() {
    try {
      return sessionStorage.getItem(commitmentKey);
    } catch (e) {
      return null;
    }
  }

  async function sha1Hex(text) {
    const digest = await crypto.subtle.digest('SHA-1', new TextEncoder().encode(text));
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // The person behind an address as the sale counts them (the server's
  // buyer_identity): trimmed, lower-case, a +tag dropped from the local part
  // (unless the local part is all tag or the part before it ends with a dot).
  function buyerIdentity(address) {
    const id = address.trim().toLowerCase();
    const at = id.indexOf('@');
    if (at < 0) return id;
    const local = id.slice(0, at);
    const plus = local.indexOf('+');
    if (plus < 0) return id;
    const base = local.slice(0, plus);
    return !base || base.endsWith('.') ? id : base + id.slice(at);
  }

  // The identity the server signed into this tab's buyer token (`u` of its
  // payload), which also covers a server that keeps +tags; null without one.
  function tokenIdentity(token) {
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const claims = JSON.parse(atob(payload + '='.repeat((4 - (payload.length % 4)) % 4)));
      return typeof claims.u === 'string' ? claims.u : null;
    } catch (e) {
      return null;
    }
  }

  const VERIFY_MAX_ENTRIES = 20000;

  // Reads the whole published draw, recomputes its order from the seed, and
  // finds the buyer's entry in it.
  async function verifyDraw() {
    const out = $('verify-result');
    const line = (id, ok, text) => el('p', { id, className: ok ? 'verify-ok' : 'verify-bad', text: (ok ? '✓ ' : '✗ ') + text });
    $('verify').disabled = true;
    out.replaceChildren(el('p', { className: 'muted', text: 'Checking…' }));
    try {
      const base = '/flash-sales/' + encodeURIComponent(saleId) + '/public/draw?pageSize=100&page=';
      let page = 1;
      let first = null;
      const entries = [];
      for (;;) {
        let reply;
        try {
          reply = await api('GET', base + page);
        } catch (e) {
          if (e.code !== 'rate_limited') throw e;
          await sleep((e.retryAfter || 1) * 1000);
          continue;
        }
        first = first || reply;
        entries.push(...reply.entries);
        if (reply.entries.length === 0 || entries.length >= reply.total) break;
        if (entries.length >= VERIFY_MAX_ENTRIES) {
          out.replaceChildren(el('p', { text: 'The draw has more than ' + VERIFY_MAX_ENTRIES + ' entries: too many to check in the browser.' }));
          return;
        }
        page += 1;
      }
      if (!first.seed) {
        out.replaceChildren(el('p', { text: 'Not drawn yet.' }));
        return;
      }
      const seed = first.seed;
      const seen = commitmentSeen();
      const commitment = seen || first.seedCommitment;
      const seedOk = (await sha1Hex(seed)) === commitment;
      const lines = [
        line('verify-seed', seedOk,
          seedOk
            ? 'SHA-1 of the seed equals the commitment ' + (seen ? 'this page showed before the draw.' : 'published (this tab did not see it before the draw).')
            : 'SHA-1 of the seed does not equal the commitment ' + commitment + '.'),
      ];
      const keyed = [];
      for (const entry of entries) keyed.push({ key: await sha1Hex(seed + ':' + entry), entry });
      keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.entry < b.entry ? -1 : a.entry > b.entry ? 1 : 0));
      const wrong = keyed.findIndex((k, i) => k.entry !== entries[i]);
      lines.push(line('verify-order', wrong < 0,
        wrong < 0
          ? 'The ' + entries.length + ' entries are in the order the seed gives.'
          : 'Entry ' + (wrong + 1) + ' is out of the order the seed gives.'));
      const who = email || $('email').value.trim();
      if (who) {
        const identity = tokenIdentity(buyerToken(who) || '') || buyerIdentity(who);
        const mine = await sha1Hex(identity);
        const place = entries.indexOf(mine) + 1;
        lines.push(
          el('p', { id: 'verify-place', dataset: { place: String(place) } },
            place > 0
              ? 'Your entry, SHA-1 of “' + identity + '” (' + mine.slice(0, 12) + '…), is number ' + place + ' of ' + entries.length + ' in the draw.'
              : '“' + identity + '” (SHA-1 ' + mine.slice(0, 12) + '…) is not in the draw: it registered for none, or came after the start.'));
      }
      out.replaceChildren(...lines);
    } catch (e) {
      out.replaceChildren(el('p', { className: 'notice notice-bad', text: 'We could not read the draw (' + e.message + '). Please try again.' }));
    } finally {
      $('verify').disabled = false;
    }
  }

  // The countdown to the start (or to the end while active), every 250 ms.
  let refreshingAtZero = false;
  function tick() {
    if (!sale) return;
    const now = serverNow();
    const starts = Date.parse(sale.startsAt);
    const ends = Date.parse(sale.endsAt);
    const box = $('countdown-box');
    const nextPhase = lotteryPhase();
    if (nextPhase !== phase) {
      phase = nextPhase;
      renderPhase();
    }
    if (phase === 'before') {
      box.hidden = false;
      setText('countdown-label', 'Registration opens in');
      setText('countdown', duration(Math.ceil((Date.parse(sale.registrationOpensAt) - now) / 1000)));
    } else if (sale.status === 'upcoming') {
      box.hidden = false;
      setText('countdown-label', phase === 'open' ? 'Draw and start in' : 'Starts in');
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
      // The end, or a draw that has run (within a worker poll of the start)
      // and is not shown yet: ask the server again.
      if ((now >= ends || phase === 'starting') && !refreshingAtZero) {
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
        say(
          'not_started',
          sale && sale.preQueueSeconds
            ? 'Registration for the draw has not opened yet. The Buy button turns on when the countdown reaches zero.'
            : 'The sale has not started yet. The Buy button turns on when the countdown reaches zero.',
        );
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
        (state === 'registered' || state === 'queued' || state === 'ready'
          ? 'Don’t worry, you keep your place.'
          : 'Please keep this page open.'),
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
    // Out of the draw (into the queue, or further): the sale's view now
    // has the revealed seed.
    if (state === 'registered' && reply.status !== 'registered') loadSale().catch(() => {});
    switch (reply.status) {
      case 'registered': {
        // The buy's answer counts the registrations; a place's answer does not.
        if (reply.queued === false && typeof reply.size === 'number') registeredCount = reply.size;
        setState('registered');
        renderPhase(); // says registeredText(), and the count in the draw's box
        // The stream waits for the draw; polling asks again soon after it.
        const untilDraw = Date.parse(sale.drawAt || sale.startsAt) - serverNow();
        schedulePoll(Math.max(1000, Math.min(5000, untilDraw + 200)));
        break;
      }
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
        else if ((state === 'registered' || state === 'queued' || state === 'ready') && rejoins < 3) {
          // We had a place (or a registration) and the sale no longer knows
          // it: a Redis failover took back its last moments. Buying again is
          // safe (it never buys twice) and puts us back in the queue (or the
          // draw, before the start).
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
    if (typeof AbortController !== 'function' || typeof TextDecoder !== 'function') return false;
    if (Date.now() - streamBrokenAt < STREAM_RETRY_MS) return false;
    const controller = new AbortController();
    stream = controller;
    readStream(controller);
    return true;
  }

  // The token goes in its header, as on every other request (read with
  // fetch: EventSource cannot send headers).
  async function readStream(controller) {
    try {
      await readEvents(
        '/orders/events?flashSaleId=' + encodeURIComponent(saleId) + '&email=' + encodeURIComponent(email),
        {
          buyerToken: buyerToken(email),
          signal: controller.signal,
          onEvent: (kind, data) => {
            if (kind !== 'status' || stream !== controller) return;
            let reply;
            try {
              reply = JSON.parse(data);
            } catch (e) {
              return;
            }
            failures = 0;
            if (reply.saleStatus && sale && reply.saleStatus !== sale.status) loadSale().catch(() => {});
            if (state === 'confirming') return;
            handleStatus(reply);
          },
        },
      );
    } catch (e) {
      // Aborted by us, refused, or the connection broke.
    }
    if (stream !== controller) return;
    // A break, or the end of the stream: polling takes over (its answer
    // also tells a refusal's reason).
    stream = null;
    streamBrokenAt = Date.now();
    if (state === 'registered' || state === 'queued' || state === 'ready') schedulePoll(1000);
  }

  function unfollow() {
    if (stream) {
      const controller = stream;
      stream = null;
      controller.abort();
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
    $('verify').addEventListener('click', verifyDraw);
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
