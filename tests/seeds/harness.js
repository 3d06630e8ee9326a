// The harness around each system's client code (tests/seeds/*.js), and
// nothing more: the npm `ws` package in place of the browser's WebSocket,
// the hub's address in place of the URL the code was written for, a record
// of what the code's handlers got, and two lines on stdout for tests/seeds.rs:
//
//   READY              the clients are connected (and subscribed); publish now
//   RESULT {json}      what the handlers got, once every socket has seen the
//                      test's `harness:done` broadcast (sent after its events)
//
// The client code's own console.log and console.error lines go to stderr,
// and are recorded.
//
// Usage: node <script>.js '{"hub":"ws://127.0.0.1:PORT","run":"tag",...}'
//   hub    where the hub listens (replaces the URL's scheme, host and port)
//   path   replaces the URL's path `/ws` (one hub serving several envelopes)
//   users  {"token": "userId"}: who each token is
//   userParam  true: add `userId=` to URLs with a token in `users` (a hub in
//          development mode, where tokens name no one)
//   run    the tag of this script's `harness:done`
'use strict';

const WS = require('ws');

const config = JSON.parse(process.argv[2] || '{}');
if (!config.hub) {
  throw new Error('usage: node script.js \'{"hub":"ws://127.0.0.1:PORT"}\'');
}

const got = {};
/** Records that `name` got `value`. */
function record(name, value) {
  (got[name] = got[name] || []).push(value);
}

const stderr = console.error.bind(console);
console.log = (...args) => {
  record('console', args);
  stderr(...args);
};
console.error = (...args) => {
  record('console.error', args);
  stderr(...args);
};

/** The URL the client code names, pointed at the hub under test. */
function at(written) {
  const url = new URL(written);
  const hub = new URL(config.hub);
  url.protocol = hub.protocol;
  url.host = hub.host;
  if (config.path && url.pathname === '/ws') url.pathname = config.path;
  const token = url.searchParams.get('token');
  if (config.userParam && token !== null && token in (config.users || {})) {
    url.searchParams.set('userId', config.users[token]);
  }
  return url.toString();
}

/** Every socket the client code opened: its URL and every message it got. */
const sockets = [];
const waiters = [];

function poll() {
  for (let i = waiters.length - 1; i >= 0; i--) {
    if (waiters[i].ready()) waiters.splice(i, 1)[0].resolve();
  }
}

/** Records what `ws` receives (after the client code's own handlers). */
function watch(ws, url) {
  const socket = { url: String(url), seen: [] };
  sockets.push(socket);
  ws.addEventListener('message', (event) => {
    socket.seen.push(JSON.parse(event.data));
    // Let the client code's handlers of this message run first.
    setImmediate(poll);
  });
  ws.addEventListener('close', (event) => {
    socket.closed = { code: event.code, reason: event.reason };
  });
  return socket;
}

/** The browser's WebSocket, played by npm `ws`, every instance watched. */
class WebSocket extends WS {
  constructor(url, ...rest) {
    super(url, ...rest);
    watch(this, url);
  }
}

/** Resolves once `ready()` holds, checked after every message. */
function until(ready) {
  return new Promise((resolve) => {
    waiters.push({ ready, resolve });
    poll();
  });
}

/** The sockets whose URL has query parameter `name` equal to `value`. */
function socketsWith(name, value) {
  return sockets.filter((s) => new URL(s.url).searchParams.get(name) === value);
}

/** The data of a message, in any envelope. */
function dataOf(m) {
  if (m.data !== undefined) return m.data;
  if (m.payload !== undefined) return m.payload;
  return m;
}

const isDone = (m) => m.type === 'harness:done' && dataOf(m).run === (config.run || null);

/** Tells the test the clients are ready, then waits for its
 * `harness:done` on every socket and prints what the handlers got. */
function ready(extra = () => ({})) {
  process.stdout.write('READY\n');
  until(() => sockets.every((s) => s.seen.some(isDone))).then(() => finish(extra()));
}

function finish(extra) {
  process.stdout.write(`RESULT ${JSON.stringify({ got, sockets, ...extra })}\n`);
  process.exit(0);
}

// Bounded: a script that never finishes says what it had.
setTimeout(() => {
  process.stdout.write(`RESULT ${JSON.stringify({ error: 'timed out', got, sockets })}\n`);
  process.exit(1);
}, config.deadlineMs || 20000);

globalThis.WebSocket = WebSocket;

module.exports = { config, record, at, watch, until, sockets, socketsWith, ready, WebSocket };
