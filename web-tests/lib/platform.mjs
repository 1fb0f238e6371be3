// Starts a whole flashsale platform for one test file, on free loopback
// ports: redis-server with the engine module, the MongoDB-compatible server
// (FerretDB on SQLite), the API and the worker. Everything is stopped by PID
// in stop() — and on process exit, should a test crash.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync, closeSync, existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const ARTIFACTS = join(ROOT, 'test-artifacts');
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
const PROFILE = process.env.FLASHSALE_PROFILE || 'debug';

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (truthy = done) every `every` ms until `timeoutMs`, then throws `what`. */
export async function waitFor(what, check, { timeoutMs = 20000, every = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ': ' + last.message : ''}`);
    }
    await sleep(every);
  }
}

function portOpen(port) {
  return new Promise((ok) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

const children = new Set();
function killAll() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

function mongoBinary() {
  if (process.env.FLASHSALE_MONGO_BIN) return process.env.FLASHSALE_MONGO_BIN;
  const built = spawnSync(join(ROOT, 'scripts/build-mongo-sqlite'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (built.status !== 0) throw new Error('scripts/build-mongo-sqlite failed');
  return built.stdout.trim().split('\n').pop();
}

export class Platform {
  constructor(name) {
    this.name = name;
    this.procs = [];
    this.dir = mkdtempSync(join(tmpdir(), `flashsale-web-${name}-`));
    this.logDir = join(ARTIFACTS, 'logs');
    mkdirSync(this.logDir, { recursive: true });
  }

  run(label, command, args, env = {}) {
    const log = openSync(join(this.logDir, `${this.name}-${label}.log`), 'w');
    const child = spawn(command, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', log, log],
      cwd: this.dir,
    });
    closeSync(log);
    child.label = label;
    child.exited = false;
    child.once('exit', () => {
      child.exited = true;
      children.delete(child);
    });
    children.add(child);
    this.procs.push(child);
    return child;
  }

  async start() {
    const module = join(TARGET, 'release/libflashsale_module.so');
    const apiBin = join(TARGET, PROFILE, 'flashsale-api');
    const workerBin = join(TARGET, PROFILE, 'flashsale-worker');
    for (const file of [module, apiBin, workerBin]) {
      if (!existsSync(file)) throw new Error(`${file} is missing: run web-tests/run.sh (it builds it)`);
    }

    const redisPort = await freePort();
    this.redisPort = redisPort;
    mkdirSync(join(this.dir, 'redis'));
    this.run('redis', 'redis-server', [
      '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', join(this.dir, 'redis'), '--loadmodule', module,
    ]);
    const mongoPort = await freePort();
    mkdirSync(join(this.dir, 'mongo'));
    this.run('mongo', mongoBinary(), ['--listen', `127.0.0.1:${mongoPort}`, '--dir', join(this.dir, 'mongo')]);
    await waitFor('redis-server', () => portOpen(redisPort));
    await waitFor('the MongoDB-compatible server', () => portOpen(mongoPort), { timeoutMs: 30000 });

    const apiPort = await freePort();
    this.env = {
      DEV_MODE: 'true',
      BEND_HOST: '127.0.0.1',
      BEND_PORT: String(apiPort),
      REDIS_URL: `redis://127.0.0.1:${redisPort}/`,
      MONGO_URL: `mongodb://127.0.0.1:${mongoPort}/`,
      MONGO_DB: 'flashsale_web',
      JWT_SECRET: 'web-tests-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
      RATE_LIMIT_AUTH_PER_MINUTE: '100000',
      RATE_LIMIT_AUTH_BURST: '100000',
      RATE_LIMIT_BUY_PER_SECOND: '100000',
      RATE_LIMIT_BUY_BURST: '100000',
      PASSWORD_HASH_CONCURRENCY: '2',
      RUST_LOG: 'info',
    };
    const seeded = spawnSync(apiBin, ['seed-admin'], { env: { ...process.env, ...this.env }, encoding: 'utf8' });
    if (seeded.status !== 0) throw new Error(`seed-admin failed: ${seeded.stderr}`);

    this.api = this.run('api', apiBin, [], this.env);
    this.url = `http://127.0.0.1:${apiPort}`;
    this.worker = this.run('worker', workerBin, [], {
      REDIS_URL: this.env.REDIS_URL,
      MONGO_URL: this.env.MONGO_URL,
      MONGO_DB: this.env.MONGO_DB,
      WORKER_METRICS_ADDR: '127.0.0.1:0',
      WORKER_POLL_INTERVAL_MS: '20',
      WORKER_SALES_REFRESH_MS: '200',
      RUST_LOG: 'info',
    });
    await waitFor('the API to be ready', async () => {
      if (this.api.exited) throw new Error('the API exited; see test-artifacts/logs');
      const r = await fetch(this.url + '/readyz');
      return r.ok;
    }, { timeoutMs: 30000, every: 100 });
    return this;
  }

  async stop() {
    for (const child of [...this.procs].reverse()) {
      if (child.exited) continue;
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        continue;
      }
      const deadline = Date.now() + 5000;
      while (!child.exited && Date.now() < deadline) await sleep(20);
      if (!child.exited) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- Redis, as an operator would reach it -----------------------------------------
  redisCli(...args) {
    const r = spawnSync('redis-cli', ['-p', String(this.redisPort), ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  }

  // ---- the API, for scripted buyers and set-up --------------------------------------
  async call(method, path, body, token, buyerToken) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    if (buyerToken) headers['X-Buyer-Token'] = buyerToken;
    const r = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: r.status, headers: r.headers, json, text };
  }

  async adminToken() {
    const r = await this.call('POST', '/auth/signin', { email: 'admin@example.com', password: 'admin123' });
    if (r.status !== 200) throw new Error(`sign-in failed: ${r.status} ${r.text}`);
    return r.json.accessToken;
  }

  async createSale(token, fields) {
    const now = Date.now();
    const body = {
      name: 'Test sale',
      description: 'A test sale',
      initialQuantity: 10,
      pricePerUnit: '49.99',
      startsAt: new Date(now - 1000).toISOString(),
      endsAt: new Date(now + 30 * 60 * 1000).toISOString(),
      holdTtlSeconds: 60,
      ...fields,
    };
    const r = await this.call('POST', '/flash-sales', body, token);
    if (r.status !== 201) throw new Error(`create sale failed: ${r.status} ${r.text}`);
    return r.json;
  }

  // Scripted buyers behave like honest clients: the buyer token from the
  // first buy (kept per sale and email) goes with every later request.
  tokenOf(sale, email) {
    return (this.buyerTokens ??= new Map()).get(`${sale}\n${email.trim().toLowerCase()}`);
  }

  keepToken(sale, email, token) {
    (this.buyerTokens ??= new Map()).set(`${sale}\n${email.trim().toLowerCase()}`, token);
  }

  async buy(sale, email) {
    const r = await this.call('POST', '/orders/buy', { email, flashSaleId: sale }, undefined, this.tokenOf(sale, email));
    if (r.json?.buyerToken) this.keepToken(sale, email, r.json.buyerToken);
    return r;
  }

  /** `buyerToken`: the buyer's token; by default the one its buy handed out. */
  position(sale, email, buyerToken = this.tokenOf(sale, email)) {
    const query = `flashSaleId=${encodeURIComponent(sale)}&email=${encodeURIComponent(email)}`;
    return this.call('GET', `/orders/position?${query}`, undefined, undefined, buyerToken);
  }

  confirm(sale, email, buyerToken = this.tokenOf(sale, email)) {
    return this.call('POST', '/orders/confirm', { email, flashSaleId: sale }, undefined, buyerToken);
  }

  /** Waits until the worker admits `email`, then confirms; returns the order id. */
  async buyAndConfirm(sale, email, timeoutMs = 20000) {
    const r = await this.buy(sale, email);
    if (r.status !== 200) throw new Error(`buy ${email}: ${r.status} ${r.text}`);
    await waitFor(`${email} to be admitted`, async () => (await this.position(sale, email)).json?.status === 'ready', {
      timeoutMs,
      every: 50,
    });
    const c = await this.confirm(sale, email);
    if (c.status !== 200) throw new Error(`confirm ${email}: ${c.status} ${c.text}`);
    return c.json.orderId;
  }
}
