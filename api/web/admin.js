// The admin dashboard: sign in, the sales (list, create, edit, delete) and
// a live view of one sale (figures pushed as they change, polled only when
// the stream fails; a chart drawn on a canvas, the queue and the orders, a
// button to pause and resume it). The token lives in memory and sessionStorage
// (gone with the tab), never localStorage; signing out revokes it.
// Views are addressed by the hash: #/sales, #/new, #/edit/<id>, #/live/<id>.
'use strict';

(function () {
  const { api, readEvents, el, $, setText, money, dateTime, STATUS_WORDS } = window.FS;
  const TOKEN_KEY = 'flashsale:admin-token';
  const PAGE_SIZE = 20;
  let token = sessionStorage.getItem(TOKEN_KEY);
  let liveTimer = null;

  function call(method, path, body) {
    return api(method, path, { body, token }).catch((e) => {
      if (e.status === 401) sessionEnded();
      throw e;
    });
  }

  function sessionEnded() {
    forget();
    show('signin');
    notice('Your session has ended; please sign in again.', 'bad');
  }

  function forget() {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }

  function notice(text, kind) {
    const box = $('notice');
    box.textContent = text || '';
    box.className = 'notice' + (kind ? ' notice-' + kind : '');
    box.hidden = !text;
  }

  function show(view) {
    for (const name of ['signin', 'sales', 'form', 'live']) $(name + '-view').hidden = name !== view;
    const signedIn = view !== 'signin';
    $('signout').hidden = !signedIn;
    if (view !== 'live') stopLive();
  }

  // ---- sign in / out ---------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    const errorBox = $('signin-error');
    errorBox.hidden = true;
    try {
      const reply = await api('POST', '/auth/signin', {
        body: { email: $('signin-email').value.trim(), password: $('signin-password').value },
      });
      token = reply.accessToken;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('signin-password').value = '';
      notice('');
      if (!location.hash || location.hash === '#/signin') location.hash = '#/sales';
      else route();
    } catch (e) {
      errorBox.textContent =
        e.code === 'invalid_credentials' ? 'Wrong email or password.' : 'Could not sign in: ' + e.message;
      errorBox.hidden = false;
    }
  }

  async function signOut() {
    try {
      if (token) await api('POST', '/auth/signout', { token });
    } catch (e) {
      // Already invalid: nothing to revoke.
    }
    forget();
    location.hash = '#/signin';
    show('signin');
    notice('You are signed out.', 'good');
  }

  // ---- sales list --------------------------------------------------------------
  let salesPage = 1;
  async function showSales() {
    show('sales');
    try {
      const reply = await call('GET', '/flash-sales?page=' + salesPage + '&pageSize=' + PAGE_SIZE);
      const body = $('sales-body');
      body.replaceChildren();
      $('sales-empty').hidden = reply.items.length > 0;
      for (const sale of reply.items) body.append(saleRow(sale));
      pager('sales', reply, (p) => {
        salesPage = p;
        showSales();
      });
    } catch (e) {
      if (e.status !== 401) notice('Could not load the sales: ' + e.message, 'bad');
    }
  }

  function saleRow(sale) {
    const live = sale.live || {};
    const status = live.status || 'unknown';
    const del = el('button', { type: 'button', className: 'danger', text: 'Delete', 'aria-label': 'Delete ' + sale.name });
    del.addEventListener('click', () => deleteSale(sale, del));
    return el('tr', { dataset: { saleId: sale.id } },
      el('td', {}, el('a', { href: '#/live/' + sale.id, className: 'sale-name', text: sale.name })),
      el('td', {}, el('span', { className: 'badge', dataset: { status }, text: STATUS_WORDS[status] || status })),
      el('td', { text: dateTime(sale.startsAt) }),
      el('td', { text: dateTime(sale.endsAt) }),
      el('td', { className: 'n', text: sale.initialQuantity }),
      el('td', { className: 'n', text: live.sold ?? '—' }),
      el('td', { className: 'n', text: live.queued ?? '—' }),
      el('td', { className: 'actions' },
        el('a', { href: '#/live/' + sale.id, className: 'button', text: 'Live', 'aria-label': 'Live view of ' + sale.name }),
        el('a', { href: '#/edit/' + sale.id, className: 'button', text: 'Edit', 'aria-label': 'Edit ' + sale.name }),
        del));
  }

  // Two steps instead of a confirm() dialog: the first press asks.
  async function deleteSale(sale, button) {
    if (button.dataset.armed !== 'yes') {
      button.dataset.armed = 'yes';
      button.textContent = 'Really delete?';
      setTimeout(() => {
        button.dataset.armed = '';
        button.textContent = 'Delete';
      }, 5000);
      return;
    }
    try {
      await call('DELETE', '/flash-sales/' + encodeURIComponent(sale.id));
      notice('Deleted “' + sale.name + '”.', 'good');
    } catch (e) {
      if (e.code === 'sale_has_orders') {
        notice('“' + sale.name + '” has orders, so it was not deleted (orders are kept; the API allows ?force=true).', 'bad');
      } else if (e.status !== 401) {
        notice('Could not delete “' + sale.name + '”: ' + e.message, 'bad');
      }
    }
    showSales();
  }

  function pager(prefix, reply, go) {
    const pages = Math.max(1, Math.ceil(reply.total / reply.pageSize));
    setText(prefix + '-page', 'Page ' + reply.page + ' of ' + pages + ' (' + reply.total + ')');
    const prev = $(prefix + '-prev');
    const next = $(prefix + '-next');
    prev.disabled = reply.page <= 1;
    next.disabled = reply.page >= pages;
    prev.onclick = () => go(reply.page - 1);
    next.onclick = () => go(reply.page + 1);
  }

  // ---- create / edit -----------------------------------------------------------
  const FIELDS = ['name', 'description', 'initialQuantity', 'pricePerUnit', 'startsAt', 'endsAt', 'holdTtlSeconds', 'rate', 'maxQueue', 'preQueueSeconds'];
  let editing = null; // the sale being edited, or null for a new one

  function localInput(date) {
    const two = (n) => String(n).padStart(2, '0');
    return (
      date.getFullYear() + '-' + two(date.getMonth() + 1) + '-' + two(date.getDate()) +
      'T' + two(date.getHours()) + ':' + two(date.getMinutes()) + ':' + two(date.getSeconds())
    );
  }

  function clearErrors() {
    for (const f of FIELDS) fieldError(f, '');
    $('form-error').hidden = true;
  }

  function fieldError(field, text) {
    const box = $('err-' + field);
    const input = $('f-' + field);
    if (!box || !input) return false;
    box.textContent = text;
    box.hidden = !text;
    if (text) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', 'err-' + field);
    } else {
      input.removeAttribute('aria-invalid');
      input.removeAttribute('aria-describedby');
    }
    return true;
  }

  async function showForm(id) {
    show('form');
    clearErrors();
    editing = null;
    $('sale-form').reset();
    if (id) {
      setText('form-title', 'Edit sale');
      try {
        editing = await call('GET', '/flash-sales/' + encodeURIComponent(id));
      } catch (e) {
        if (e.status !== 401) notice('Could not load the sale: ' + e.message, 'bad');
        return;
      }
      $('f-name').value = editing.name;
      $('f-description').value = editing.description;
      $('f-initialQuantity').value = editing.initialQuantity;
      $('f-pricePerUnit').value = editing.pricePerUnit;
      $('f-startsAt').value = localInput(new Date(editing.startsAt));
      $('f-endsAt').value = localInput(new Date(editing.endsAt));
      $('f-holdTtlSeconds').value = editing.holdTtlSeconds;
      $('f-rate').value = editing.rate ?? '';
      $('f-maxQueue').value = editing.maxQueue ?? '';
      $('f-preQueueSeconds').value = editing.preQueueSeconds ?? '';
    } else {
      setText('form-title', 'New sale');
      const start = new Date(Date.now() + 10 * 60 * 1000);
      start.setSeconds(0, 0);
      $('f-startsAt').value = localInput(start);
      $('f-endsAt').value = localInput(new Date(start.getTime() + 60 * 60 * 1000));
      $('f-holdTtlSeconds').value = 120;
    }
    $('f-name').focus();
  }

  function readForm() {
    const body = {};
    const errors = {};
    const text = (f) => $('f-' + f).value.trim();
    const whole = (f, optional) => {
      const v = text(f);
      if (v === '') {
        if (optional) return null;
        errors[f] = 'Required.';
        return undefined;
      }
      if (!/^\d+$/.test(v)) {
        errors[f] = 'Enter a whole number.';
        return undefined;
      }
      return Number(v);
    };
    body.name = $('f-name').value;
    body.description = $('f-description').value;
    body.initialQuantity = whole('initialQuantity');
    body.pricePerUnit = text('pricePerUnit');
    if (body.pricePerUnit === '') errors.pricePerUnit = 'Required.';
    for (const f of ['startsAt', 'endsAt']) {
      const v = text(f);
      const d = new Date(v);
      if (!v || Number.isNaN(d.getTime())) errors[f] = 'Enter a date and time.';
      else body[f] = d.toISOString();
    }
    const hold = whole('holdTtlSeconds', true);
    if (hold !== null) body.holdTtlSeconds = hold;
    body.rate = whole('rate', true);
    body.maxQueue = whole('maxQueue', true);
    const preQueue = whole('preQueueSeconds', true);
    if (preQueue !== null && preQueue !== undefined && (preQueue < 1 || preQueue > 86400)) {
      errors.preQueueSeconds = 'From 1 to 86400 seconds.';
    }
    if (!editing) {
      // Creating: an empty limit is simply absent.
      if (body.rate === null) delete body.rate;
      if (body.maxQueue === null) delete body.maxQueue;
      if (preQueue !== null) body.preQueueSeconds = preQueue;
    } else if (preQueue !== (editing.preQueueSeconds ?? null)) {
      // Sent only when changed: once the window has opened the server
      // refuses any change (409 lottery_locked), an unchanged one included
      // for a sale that has ended.
      body.preQueueSeconds = preQueue;
    }
    return { body, errors };
  }

  async function save(event) {
    event.preventDefault();
    clearErrors();
    const { body, errors } = readForm();
    const bad = Object.keys(errors);
    if (bad.length) {
      for (const f of bad) fieldError(f, errors[f]);
      $('f-' + bad[0]).focus();
      return;
    }
    $('save').disabled = true;
    try {
      const saved = editing
        ? await call('PUT', '/flash-sales/' + encodeURIComponent(editing.id), body)
        : await call('POST', '/flash-sales', body);
      notice((editing ? 'Saved “' : 'Created “') + saved.name + '”.', 'good');
      location.hash = '#/sales';
    } catch (e) {
      if (e.status === 401) return;
      const field =
        (e.details && e.details.field) ||
        ({ stock_below_committed: 'initialQuantity', lottery_locked: 'preQueueSeconds' })[e.code] ||
        null;
      if (!(field && fieldError(field, e.message))) {
        const box = $('form-error');
        box.textContent = e.message;
        box.hidden = false;
      } else {
        $('f-' + field).focus();
      }
    } finally {
      $('save').disabled = false;
    }
  }

  // ---- live view -----------------------------------------------------------------
  // The figures are pushed: one Server-Sent Events stream per view, read
  // with fetch() and a stream reader (EventSource cannot send the bearer
  // header, and a token in the URL would end up in logs). If the stream
  // cannot be opened or breaks, polling (every second, backing off on
  // failures) takes over and the stream is tried again a while later, as
  // the customer page does. The chart and the admission rate move on a
  // local clock; the queue and order lists are fetched when the figures
  // say they changed (at most every 2 s), not on a timer.
  const STREAM_RETRY_MS = 30000;
  const LISTS_EVERY_MS = 2000;
  let liveSale = null;
  let liveGeneration = 0; // a newer showLive makes older awaits moot
  let samples = []; // {t, sold, queue, admitted}
  let queuePage = 1;
  let ordersPage = 1;
  let last = null; // the figures shown (an overview)
  let stream = null; // the open stream's AbortController
  let streamBrokenAt = -Infinity;
  let pollFailures = 0;
  let clockTimer = null;
  let listsTimer = null;
  let listsWanted = { queue: false, orders: false };
  let listsLoadedAt = 0;
  let ordersBehind = 0; // reloads while MongoDB has fewer orders than sold
  let ordersTimer = null;

  async function showLive(id) {
    stopLive();
    show('live');
    notice('');
    $('live-pause').hidden = $('live-pause-hint').hidden = true;
    const generation = ++liveGeneration;
    samples = [];
    queuePage = 1;
    ordersPage = 1;
    last = null;
    pollFailures = 0;
    ordersBehind = 0;
    streamBrokenAt = -Infinity;
    try {
      liveSale = await call('GET', '/flash-sales/' + encodeURIComponent(id));
    } catch (e) {
      if (e.status !== 401) notice('Could not load the sale: ' + e.message, 'bad');
      return;
    }
    if (generation !== liveGeneration || $('live-view').hidden) return;
    setText('live-title', liveSale.name);
    $('live-public').href = '/sales/' + encodeURIComponent(liveSale.id);
    setText('s-rate-limit', liveSale.rate ? 'limit ' + liveSale.rate + '/s' : 'no limit');
    clockTimer = setInterval(clockTick, 1000);
    refreshLists({ queue: true, orders: true });
    schedulePoll(0);
  }

  function stopLive() {
    clearTimeout(liveTimer);
    liveTimer = null;
    clearInterval(clockTimer);
    clockTimer = null;
    clearTimeout(listsTimer);
    listsTimer = null;
    listsWanted = { queue: false, orders: false };
    clearTimeout(ordersTimer);
    ordersTimer = null;
    unfollow();
  }

  function liveShown() {
    return liveSale && !$('live-view').hidden;
  }

  // The stream if it may be tried now (true: it is open or opening).
  function follow() {
    if (stream) return true;
    if (typeof AbortController !== 'function' || typeof TextDecoder !== 'function') return false;
    if (Date.now() - streamBrokenAt < STREAM_RETRY_MS) return false;
    const controller = new AbortController();
    stream = controller;
    readStream(liveSale.id, controller);
    return true;
  }

  function unfollow() {
    if (stream) {
      const controller = stream;
      stream = null;
      controller.abort();
    }
  }

  async function readStream(id, controller) {
    try {
      await readEvents('/flash-sales/' + encodeURIComponent(id) + '/live', {
        token,
        signal: controller.signal,
        onEvent: (kind, data) => {
          if (kind !== 'overview' || stream !== controller) return;
          let figures;
          try {
            figures = JSON.parse(data);
          } catch (e) {
            return;
          }
          pollFailures = 0;
          showFigures(figures);
        },
      });
    } catch (e) {
      if (e.status === 401) {
        if (stream === controller) sessionEnded();
        return;
      }
      // Aborted by us (another view), or the connection broke.
    }
    if (stream !== controller) return;
    // Broken or ended (the token's expiry ends it too): polling takes
    // over; its first answer also tells whether the session is over.
    stream = null;
    streamBrokenAt = Date.now();
    if (liveShown()) schedulePoll(1000);
  }

  function schedulePoll(delay) {
    clearTimeout(liveTimer);
    liveTimer = null;
    if (!liveShown() || follow()) return;
    liveTimer = setTimeout(poll, delay);
  }

  async function poll() {
    liveTimer = null;
    if (!liveShown()) return;
    const generation = liveGeneration;
    try {
      const o = await call('GET', '/orders/admin/queue/' + encodeURIComponent(liveSale.id) + '/overview');
      if (generation !== liveGeneration) return;
      pollFailures = 0;
      showFigures(o);
      schedulePoll(1000);
    } catch (e) {
      if (e.status === 401 || generation !== liveGeneration) return;
      pollFailures += 1;
      const delay = e.retryAfter ? e.retryAfter * 1000 : Math.min(10000, 1000 * 2 ** Math.min(pollFailures, 4));
      setText('live-updated', 'connection trouble, retrying in ' + Math.ceil(delay / 1000) + ' s…');
      schedulePoll(delay);
    }
  }

  function showFigures(o) {
    const before = last;
    last = o;
    addSample();
    setText('s-queue', o.totalInQueue);
    setText('s-holds', o.holds);
    setText('s-sold', o.sold);
    setText('s-left', o.stock - o.sold);
    setText('s-rate', admissionRate().toFixed(1) + '/s');
    const badge = $('live-status');
    badge.dataset.status = o.status;
    setText(badge, STATUS_WORDS[o.status] || o.status);
    drawPauseButton(o.status);
    const time = new Date(o.serverTime).toLocaleTimeString();
    setText('live-updated', stream ? 'live · last change ' + time : 'updated ' + time);
    draw();
    // Someone joined, was admitted or bought: the queue list moved; a sale
    // is an order the worker records in MongoDB soon.
    const moved = !before || before.totalInQueue !== o.totalInQueue || before.holds !== o.holds || before.sold !== o.sold;
    const sold = !before || before.sold !== o.sold;
    if (moved || sold) refreshLists({ queue: moved, orders: sold });
  }

  // Local only: the chart's time axis and the rate move on between events.
  function clockTick() {
    if (!liveShown() || !last) return;
    addSample();
    setText('s-rate', admissionRate().toFixed(1) + '/s');
    draw();
  }

  function addSample() {
    const now = Date.now();
    samples.push({ t: now, sold: last.sold, queue: last.totalInQueue, admitted: last.sold + last.holds });
    samples = samples.filter((s) => now - s.t <= 120000);
  }

  // The lists when the figures changed, at most every LISTS_EVERY_MS.
  function refreshLists(which) {
    listsWanted.queue ||= which.queue;
    listsWanted.orders ||= which.orders;
    if (listsTimer) return;
    const wait = Math.max(0, listsLoadedAt + LISTS_EVERY_MS - Date.now());
    listsTimer = setTimeout(loadLists, wait);
  }

  async function loadLists() {
    listsTimer = null;
    if (!liveShown()) return;
    const want = listsWanted;
    listsWanted = { queue: false, orders: false };
    listsLoadedAt = Date.now();
    const generation = liveGeneration;
    try {
      await Promise.all([want.queue && loadQueue(), want.orders && loadOrders()]);
    } catch (e) {
      if (e.status === 401 || generation !== liveGeneration) return;
      setText('live-updated', 'connection trouble, retrying…');
      refreshLists(want);
    }
  }

  // One button pauses a live sale and resumes a paused one; it is shown
  // only when one of the two can be done (the engine refuses to pause a
  // sale that has not started, has ended or is sold out).
  const PAUSE_HINTS = {
    pause: 'Pausing stops new buyers and admission; those queued keep their place, holders can still buy.',
    resume: 'Paused: nobody new joins the queue and nobody is admitted. Resuming goes on from the same queue.',
  };

  function drawPauseButton(status) {
    const button = $('live-pause');
    const hint = $('live-pause-hint');
    const action = status === 'paused' ? 'resume' : status === 'active' ? 'pause' : null;
    button.hidden = hint.hidden = !action;
    if (!action || button.disabled) return;
    button.dataset.action = action;
    setText(button, action === 'pause' ? 'Pause sale' : 'Resume sale');
    setText(hint, PAUSE_HINTS[action]);
  }

  async function togglePause() {
    const button = $('live-pause');
    const action = button.dataset.action;
    if (!liveSale || !action) return;
    const name = '“' + liveSale.name + '”';
    button.disabled = true;
    try {
      const sale = await call('POST', '/flash-sales/' + encodeURIComponent(liveSale.id) + '/' + action);
      notice(action === 'pause' ? 'Paused ' + name + '.' : 'Resumed ' + name + '.', 'good');
      button.disabled = false;
      drawPauseButton((sale.live || {}).status);
    } catch (e) {
      button.disabled = false;
      if (e.code === 'sale_not_live') notice(name + ' cannot be paused now: ' + e.message, 'bad');
      else if (e.status !== 401) notice('Could not ' + action + ' ' + name + ': ' + e.message, 'bad');
    }
    // The stream pushes the new state by itself; polling asks at once.
    if (!stream) schedulePoll(0);
  }

  // Holds granted per second over the last ~5 s (sold + held rising).
  function admissionRate() {
    if (samples.length < 2) return 0;
    const last = samples[samples.length - 1];
    const first = samples.find((s) => last.t - s.t <= 5000) || samples[0];
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, last.admitted - first.admitted) / dt : 0;
  }

  async function loadQueue() {
    const reply = await call(
      'GET', '/orders/admin/queue/' + encodeURIComponent(liveSale.id) + '/members?page=' + queuePage + '&pageSize=' + PAGE_SIZE);
    if (reply.items.length === 0 && queuePage > 1) {
      queuePage = 1;
      return loadQueue();
    }
    $('queue-body').replaceChildren(
      ...reply.items.map((m) => el('tr', {}, el('td', { className: 'n', text: m.position }), el('td', { text: m.email }))));
    $('queue-empty').hidden = reply.items.length > 0;
    pager('queue', reply, (p) => {
      queuePage = p;
      loadQueue();
    });
  }

  async function loadOrders() {
    const reply = await call(
      'GET', '/orders/admin/list?flashSaleId=' + encodeURIComponent(liveSale.id) + '&page=' + ordersPage + '&pageSize=' + PAGE_SIZE);
    $('orders-body').replaceChildren(
      ...reply.items.map((o) =>
        el('tr', {}, el('td', { text: o.orderId }), el('td', { text: o.userEmail }), el('td', { className: 'n', text: money(o.totalAmount) }))));
    $('orders-empty').hidden = reply.items.length > 0;
    pager('orders', reply, (p) => {
      ordersPage = p;
      loadOrders();
    });
    // The worker records a sale in MongoDB shortly after it is made: while
    // fewer orders are recorded than sold, ask again, backing off.
    clearTimeout(ordersTimer);
    ordersTimer = null;
    if (last && reply.total < last.sold && ordersBehind < 8) {
      ordersBehind += 1;
      ordersTimer = setTimeout(() => refreshLists({ orders: true }), Math.min(8000, 500 * 2 ** ordersBehind));
    } else {
      ordersBehind = 0;
    }
  }

  // A two-line chart on the canvas, sized for the device's pixels.
  function draw() {
    const canvas = $('chart');
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || 800;
    const cssHeight = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(cssWidth * ratio)) {
      canvas.width = Math.round(cssWidth * ratio);
      canvas.height = Math.round(cssHeight * ratio);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const pad = { left: 44, right: 12, top: 12, bottom: 24 };
    const w = cssWidth - pad.left - pad.right;
    const h = cssHeight - pad.top - pad.bottom;
    // A top that divides into four whole steps.
    const max = Math.ceil(Math.max(1, ...samples.map((s) => Math.max(s.sold, s.queue))) / 4) * 4;
    const now = samples.length ? samples[samples.length - 1].t : Date.now();
    // The time axis grows with the data, from 20 s up to the last 2 minutes.
    const span = Math.min(120000, Math.max(20000, samples.length ? now - samples[0].t : 0));
    const x = (t) => pad.left + w - ((now - t) / span) * w;
    const y = (v) => pad.top + h - (v / max) * h;
    const style = getComputedStyle(document.body);
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = style.getPropertyValue('--muted') || '#666';
    ctx.strokeStyle = style.getPropertyValue('--line') || '#ddd';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, yy);
      ctx.lineTo(pad.left + w, yy);
      ctx.stroke();
      ctx.fillText(String(Math.round(v)), 4, yy + 4);
    }
    ctx.fillText('−' + Math.round(span / 1000) + ' s', pad.left, cssHeight - 6);
    ctx.fillText('now', pad.left + w - 24, cssHeight - 6);
    const series = [
      ['sold', style.getPropertyValue('--sold') || '#1a7f37'],
      ['queue', style.getPropertyValue('--queue') || '#0b57d0'],
    ];
    for (const [key, color] of series) {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      samples.forEach((s, i) => (i ? ctx.lineTo(x(s.t), y(s[key])) : ctx.moveTo(x(s.t), y(s[key]))));
      ctx.stroke();
    }
  }

  // ---- routing -------------------------------------------------------------------------
  function route() {
    if (!token) {
      show('signin');
      $('signin-email').focus();
      return;
    }
    const hash = location.hash || '#/sales';
    let m;
    if ((m = hash.match(/^#\/live\/(.+)$/))) showLive(decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/edit\/(.+)$/))) showForm(decodeURIComponent(m[1]));
    else if (hash === '#/new') showForm(null);
    else showSales();
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', signOut);
    $('new-sale').addEventListener('click', () => (location.hash = '#/new'));
    $('sale-form').addEventListener('submit', save);
    $('cancel').addEventListener('click', () => (location.hash = '#/sales'));
    $('back').addEventListener('click', () => (location.hash = '#/sales'));
    $('live-pause').addEventListener('click', togglePause);
    window.addEventListener('hashchange', route);
    route();
  });
})();
