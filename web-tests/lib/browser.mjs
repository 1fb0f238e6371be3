// Headless Chromium from Debian (/usr/bin/chromium) through playwright-core,
// with a fresh profile per launch, and the checks every page gets: no
// console errors, and the security headers.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, ROOT } from './platform.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** A browser context on a fresh --user-data-dir; close() also removes the profile. */
export async function openBrowser({ viewport = { width: 1280, height: 900 }, isMobile = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'flashsale-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
    isMobile,
    hasTouch: isMobile,
    deviceScaleFactor: isMobile ? 2 : 1,
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Records console errors, uncaught exceptions and failed requests of a
 * page. `allow`: regexps of console errors a test provokes on purpose
 * (e.g. the 400 of a validation error the page then shows).
 */
export function watchConsole(page, { allow = [], allowFailedRequests = false } = {}) {
  const problems = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (allow.some((re) => re.test(text))) return;
    problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText || '';
    // Navigations away abort their pending polls; that is not an error.
    if (failure.includes('ERR_ABORTED') || allowFailedRequests) return;
    problems.push(`request failed: ${request.url()} ${failure}`);
  });
  return {
    problems,
    assertClean() {
      assert.deepEqual(problems, [], 'the page logged errors');
    },
  };
}

/** Every request a page makes must go to the API's origin (works offline). */
export function watchOrigins(page, origin) {
  const foreign = [];
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith('data:')) foreign.push(url);
  });
  return {
    assertOnlyOrigin() {
      assert.deepEqual(foreign, [], 'the page requested something outside the API');
    },
  };
}

/** CSP present, without unsafe-inline/eval for scripts; nosniff; referrer policy. */
export function assertSecurityHeaders(headers) {
  const csp = headers['content-security-policy'];
  assert.ok(csp, 'Content-Security-Policy header');
  const directives = Object.fromEntries(
    csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => {
      const [name, ...values] = d.split(/\s+/);
      return [name, values];
    }),
  );
  const scripts = directives['script-src'] || directives['default-src'];
  assert.ok(scripts, 'CSP restricts scripts');
  assert.ok(!scripts.includes("'unsafe-inline'"), `no unsafe-inline scripts: ${csp}`);
  assert.ok(!scripts.includes("'unsafe-eval'"), `no unsafe-eval: ${csp}`);
  assert.ok(!scripts.includes('*'), `no wildcard scripts: ${csp}`);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.ok(headers['referrer-policy'], 'Referrer-Policy header');
}

/** Saves test-artifacts/<name>.png (full page); returns the path. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Copies an artifact to docs/screenshots/<name> (for the README). */
export function publish(path, name) {
  const target = join(ROOT, 'docs/screenshots', name);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(path, target);
}
