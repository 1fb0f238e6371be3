// Shared helpers of the customer page and the admin dashboard. No framework,
// no build step: this file is served as is by the API (CSP: scripts from
// this origin only, nothing inline). User-supplied text is only ever set
// with textContent.
'use strict';

(function () {
  /** An API error (the API's `{error: {code, message, details}}`), or a network failure (status 0). */
  class ApiError extends Error {
    constructor(status, code, message, details, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || null;
      this.retryAfter = retryAfter;
    }
    get network() {
      return this.status === 0 || this.status >= 500 || this.code === 'rate_limited';
    }
  }

  /** The header that carries a buyer's token (the proof of being the buyer who queued). */
  const BUYER_TOKEN_HEADER = 'X-Buyer-Token';

  /**
   * Calls the JSON API; resolves with the parsed body (null for 204), rejects with ApiError.
   * `token`: an admin's bearer token; `buyerToken`: a buyer's token from their buy.
   */
  async function api(method, path, { body, token, buyerToken, signal } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    if (buyerToken) headers[BUYER_TOKEN_HEADER] = buyerToken;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        signal,
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'The connection failed.');
    }
    if (response.status === 204) return null;
    let json = null;
    try {
      json = await response.json();
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      const retry = Number(response.headers.get('Retry-After'));
      throw new ApiError(
        response.status,
        error.code || 'http_' + response.status,
        error.message || 'The request failed (' + response.status + ').',
        error.details,
        Number.isFinite(retry) && retry > 0 ? retry : undefined,
      );
    }
    return json;
  }

  /**
   * Reads a Server-Sent Events stream with fetch() (EventSource cannot send
   * headers, and a token in the URL would end up in proxies' logs): calls
   * `onEvent(kind, data)` for each event, the data's lines joined. Resolves
   * when the stream ends; rejects with ApiError when it cannot be opened
   * (its status: 401 for an expired token, ...), or with the reading's
   * error (an abort through `signal`, a broken connection).
   */
  async function readEvents(path, { token, buyerToken, signal, onEvent }) {
    const headers = { Accept: 'text/event-stream' };
    if (token) headers.Authorization = 'Bearer ' + token;
    if (buyerToken) headers[BUYER_TOKEN_HEADER] = buyerToken;
    const response = await fetch(path, { headers, credentials: 'same-origin', cache: 'no-store', signal });
    if (!response.ok || !response.body) {
      throw new ApiError(response.status, 'http_' + response.status, 'The stream answered ' + response.status + '.');
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Each event ends with a blank line; lines may end in \r\n or \r (a
      // lone \r at the end waits: its \n may be in the next chunk).
      buffer += decoder.decode(value, { stream: true });
      buffer = buffer.replace(/\r\n/g, '\n').replace(/\r(?=[\s\S])/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        // A block of comments only is a keep-alive.
        if (data.length > 0) onEvent(kind, data.join('\n'));
      }
    }
  }

  /** Creates an element; text is set with textContent, never parsed as HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'className') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function setText(id, value) {
    const node = typeof id === 'string' ? $(id) : id;
    const text = value === null || value === undefined ? '' : String(value);
    if (node && node.textContent !== text) node.textContent = text;
  }

  /** 3725 → "1:02:05", 65 → "1:05", 5 → "0:05". */
  function duration(totalSeconds) {
    const s = Math.max(0, Math.floor(totalSeconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    if (s >= 86400) {
      const d = Math.floor(s / 86400);
      return d + 'd ' + two(Math.floor((s % 86400) / 3600)) + ':' + two(m) + ':' + two(sec);
    }
    return h > 0 ? h + ':' + two(m) + ':' + two(sec) : m + ':' + two(sec);
  }

  /** Human words for a wait: "about 2 minutes". */
  function waitWords(seconds) {
    if (seconds === null || seconds === undefined) return 'unknown';
    if (seconds <= 5) return 'a few seconds';
    if (seconds < 60) return 'about ' + seconds + ' seconds';
    const minutes = Math.round(seconds / 60);
    return 'about ' + minutes + (minutes === 1 ? ' minute' : ' minutes');
  }

  function money(amount) {
    return amount === null || amount === undefined ? '—' : '$' + amount;
  }

  function dateTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }

  const STATUS_WORDS = {
    upcoming: 'Starting soon',
    active: 'On sale now',
    ended: 'Ended',
    sold_out: 'Sold out',
    paused: 'Paused',
  };

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  window.FS = {
    ApiError, api, readEvents, el, $, setText, duration, waitWords, money, dateTime, STATUS_WORDS, sleep, BUYER_TOKEN_HEADER,
  };
})();
