// Helpers for the client's tests: the real hub binary started on port 0 (and
// stopped, or restarted), a TCP proxy that can cut, freeze, refuse or lose
// messages, a service connection that answers requests, and waits with
// deadlines. Nothing here sleeps to synchronise.
//
// WSHUB_BIN: the hub binary (default target/debug/wshub).
// WSHUB_JS_DEPS: the scratch directory holding node_modules with ws, react,
// react-dom and jsdom (default target/tmp/js-deps; tests/js_client.rs fills it).

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const depsDir = path.resolve(process.env.WSHUB_JS_DEPS || path.join(repo, 'target/tmp/js-deps'));
export const depsUrl = pathToFileURL(path.join(depsDir, 'package.json')).href;
const bin = process.env.WSHUB_BIN || path.join(repo, 'target/debug/wshub');

/** `require` from the scratch directory. */
export const requireDep = createRequire(path.join(depsDir, 'package.json'));

let WebSocketImpl;
try {
  WebSocketImpl = requireDep('ws');
} catch {
  throw new Error(`the ws package is missing in ${depsDir}: npm install ws there (or set WSHUB_JS_DEPS)`);
}
/** The npm `ws` package's constructor, passed to every client. */
export const WebSocket = WebSocketImpl;

/** How long any one expected thing may take. */
export const DEADLINE = 10000;

/** Waits until `check()` returns something truthy, and returns it; throws after `ms`. */
export async function waitFor(check, what, ms = DEADLINE) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise that fails after `ms`, for racing one that should settle. */
export function within(promise, what, ms = DEADLINE) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Records everything a client reports: lifecycle events and messages, in order.
 * @param {import('../wshub.js').WshubClient} client
 */
export function record(client) {
  const log = [];
  for (const name of ['open', 'close', 'reconnecting', 'error', 'gap', 'recovery']) {
    client.on(name, (event) => log.push({ name, event, at: Date.now() }));
  }
  client.onAny((message) => log.push({ name: 'message', event: message, at: Date.now() }));
  const matching = (name, pred = () => true) => log.filter((e) => e.name === name && pred(e.event)).map((e) => e.event);
  return {
    log,
    all: matching,
    messages: (type) => matching('message', (m) => m.type === type),
    count: (name, pred) => matching(name, pred).length,
    /** Waits for the `n`th (1-based) entry of `name` matching `pred`. */
    wait: (name, pred = () => true, n = 1, ms = DEADLINE) =>
      waitFor(() => matching(name, pred)[n - 1], `${name} #${n}`, ms),
    waitMessage: (type, pred = () => true, ms = DEADLINE) =>
      waitFor(() => matching('message', (m) => m.type === type && pred(m))[0], `a ${type} message`, ms),
  };
}

/**
 * Starts the hub binary on 127.0.0.1, port 0, and waits for its address.
 * @param {string[]} args Extra flags.
 */
export async function startHub(args = []) {
  const flags = ['--host', '127.0.0.1', '--port', '0', '--rate-limit', '0', ...args];
  const child = spawn(bin, flags, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exited = { code, signal }))));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (log += chunk));
  child.on('error', (err) => (log += `spawn failed: ${err.message}\n`));
  const addr = await waitFor(
    () => {
      if (exited) throw new Error(`the hub exited (${JSON.stringify(exited)}): ${log}`);
      const match = /wshub listening on ws:\/\/([^/\s]+)\/ws/.exec(log);
      return match && match[1];
    },
    `the hub's address (${bin} ${flags.join(' ')})`,
  );
  const hub = {
    addr,
    url: `ws://${addr}/ws`,
    http: `http://${addr}`,
    get log() {
      return log;
    },
    /** SIGTERM (clients get 1001) and wait for the exit. */
    async stop() {
      if (!exited) child.kill('SIGTERM');
      return within(exit, 'the hub to exit');
    },
    /** SIGKILL: no Close frames, the sockets just end. */
    async kill() {
      if (!exited) child.kill('SIGKILL');
      return within(exit, 'the hub to die');
    },
    /** POST a JSON body; returns the parsed answer. */
    async post(pathname, body, token) {
      const headers = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const answer = await fetch(hub.http + pathname, { method: 'POST', headers, body: JSON.stringify(body) });
      return answer.json();
    },
    async get(pathname, token) {
      const headers = token ? { authorization: `Bearer ${token}` } : {};
      const answer = await fetch(hub.http + pathname, { headers });
      return answer.json();
    },
  };
  return hub;
}

/**
 * A TCP proxy in front of a hub, for network trouble the hub cannot cause:
 * `cut()` ends every connection (the client sees 1006), `freeze()` stops
 * forwarding on the open ones (a dead network, sockets still up),
 * `refuse = true` ends new connections at once, `setTarget(addr)` points new
 * connections at another hub, `drop = predicate` loses the hub-to-client
 * text messages whose JSON matches, and `duplicate = predicate` sends them twice.
 */
export async function startProxy(target) {
  const pairs = new Set();
  const proxy = {
    target,
    refuse: false,
    drop: null,
    dropped: [],
    duplicate: null,
    duplicated: [],
    connections: 0,
    setTarget(addr) {
      proxy.target = addr;
    },
    cut() {
      for (const pair of pairs) pair.destroy();
    },
    freeze() {
      for (const pair of pairs) pair.frozen = true;
    },
    async close() {
      proxy.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  const server = net.createServer((client) => {
    proxy.connections += 1;
    if (proxy.refuse) return client.destroy();
    const [host, port] = splitAddr(proxy.target);
    const upstream = net.connect(port, host);
    const pair = {
      frozen: false,
      destroy() {
        client.destroy();
        upstream.destroy();
        pairs.delete(pair);
      },
    };
    pairs.add(pair);
    client.on('error', () => pair.destroy());
    upstream.on('error', () => pair.destroy());
    client.on('close', () => pair.destroy());
    upstream.on('close', () => pair.destroy());
    client.on('data', (chunk) => pair.frozen || upstream.write(chunk));
    const frames = frameFilter((text) => {
      if (!proxy.drop && !proxy.duplicate) return 1;
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        return 1;
      }
      if (proxy.drop && proxy.drop(message)) {
        proxy.dropped.push(message);
        return 0;
      }
      if (proxy.duplicate && proxy.duplicate(message)) {
        proxy.duplicated.push(message);
        return 2;
      }
      return 1;
    });
    upstream.on('data', (chunk) => {
      if (pair.frozen) return;
      const out = frames(chunk);
      if (out.length) client.write(out);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  proxy.addr = `127.0.0.1:${port}`;
  proxy.url = `ws://${proxy.addr}/ws`;
  return proxy;
}

function splitAddr(addr) {
  const at = addr.lastIndexOf(':');
  return [addr.slice(0, at), Number(addr.slice(at + 1))];
}

/**
 * Splits the hub-to-client byte stream (the HTTP answer, then unmasked
 * frames) and sends each whole text frame as many times as `copies(text)` says.
 */
function frameFilter(copies) {
  let head = true;
  let buffer = Buffer.alloc(0);
  return (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    const out = [];
    if (head) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return Buffer.alloc(0);
      out.push(buffer.subarray(0, end + 4));
      buffer = buffer.subarray(end + 4);
      head = false;
    }
    for (;;) {
      if (buffer.length < 2) break;
      const opcode = buffer[0] & 0x0f;
      const masked = (buffer[1] & 0x80) !== 0;
      let length = buffer[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) break;
        length = buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffer.length < 10) break;
        length = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (masked) offset += 4;
      if (buffer.length < offset + length) break;
      const frame = buffer.subarray(0, offset + length);
      const fin = (buffer[0] & 0x80) !== 0;
      const text = opcode === 1 && fin && !masked ? frame.subarray(offset).toString('utf8') : null;
      const n = text === null ? 1 : copies(text);
      for (let i = 0; i < n; i++) out.push(frame);
      buffer = buffer.subarray(offset + length);
    }
    return Buffer.concat(out);
  };
}

/**
 * A backend on a service connection (admin token): calls
 * `answer(request, reply)` for every client's application request, where
 * `reply(type, data, correlationId?)` sends that client a message.
 */
export async function startService(hub, adminToken, answer) {
  const ws = new WebSocket(`${hub.url}?token=${encodeURIComponent(adminToken)}`);
  const requests = [];
  ws.on('message', (raw) => {
    const event = JSON.parse(String(raw));
    if (event.type !== 'client_message') return;
    const { clientId, message } = event.data;
    requests.push(event.data);
    const reply = (type, data, correlationId = message.correlationId) => {
      const out = { type, data };
      if (correlationId !== undefined) out.correlationId = correlationId;
      ws.send(JSON.stringify({ type: 'send', clientId, message: out }));
    };
    answer(message, reply, event.data);
  });
  await within(new Promise((resolve, reject) => {
    ws.once('message', resolve);
    ws.once('error', reject);
  }), 'the service connection');
  return {
    requests,
    close: () => ws.close(1000),
  };
}

/** An HS256 JWT, as the hub's `--jwt-secret` checks it. */
export function signJwt(secret, claims) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** Seconds since 1970. */
export const now = () => Math.floor(Date.now() / 1000);
