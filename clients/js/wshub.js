// wshub.js: the JavaScript client of wshub, for browsers and Node >= 18.
//
// One ES module, no dependencies, no build step (the npm package's
// CommonJS copy, cjs/wshub.cjs, is generated from it by
// scripts/build-cjs.mjs). It speaks wshub's standard envelope, whatever the
// hub's default (it asks for it with `?envelope=standard`): it connects
// (with a token it asks for before every attempt), reconnects by the
// close-code table with full-jitter backoff, re-subscribes with the position
// of the last publication it saw on each stream so the hub can replay what
// was missed, drops duplicates and reports gaps, correlates requests with
// their replies, and notices a dead connection by itself.
//
//   import { WshubClient } from './wshub.js';
//   const client = new WshubClient('ws://127.0.0.1:3000/ws', { token: () => getToken() });
//   client.on('event', (data, message) => console.log(message.channel, data));
//   await client.subscribe('files');
//
// In Node, pass a WebSocket constructor: `new WshubClient(url, { WebSocket })`
// with `import WebSocket from 'ws'` (Node 20 has no global WebSocket).
//
// Types: wshub.d.ts beside this file (the package's `types`).

/**
 * What the client does after a connection closed.
 * - `reconnect`: soon, after a random delay of up to 1 s (or `minDelay`, if
 *   longer), so a restarting hub's clients do not all come back at once
 *   (1001, the hub is shutting down or restarting);
 * - `backoff`: after a full-jitter delay (1006, 1011, 1013, the
 *   application's 4000 to 4499, and anything unexpected);
 * - `refresh`: at once, with a new token from the provider (4001, the token expired);
 * - `stop`: not at all (1000, 1002, 1003, 1007, 1008, 1009, 1010, the
 *   application's 4500 to 4999, or the application called `close()`).
 * @typedef {'reconnect' | 'backoff' | 'refresh' | 'stop'} CloseAction
 */

/**
 * @typedef {object} WshubOptions
 * @property {string | (() => string | null | undefined | Promise<string | null | undefined>)} [token]
 *   Sent as `?token=`. A function is called before every connection attempt,
 *   so a reconnect (and a 4001 in particular) uses a fresh token.
 * @property {string} [userId] `?userId=`, for a hub in development mode.
 * @property {string} [sessionId] A session to join: `subscribeSession(sessionId)` made at once, so
 *   it is subscribed after every welcome (with `since` after a reconnect). Not sent as `?sessionId=`,
 *   which would subscribe it a second time per connection.
 * @property {boolean} [reconnect=true] Reconnect by the close-code table; false: never.
 * @property {number} [minDelay=500] Backoff base, in ms.
 * @property {number} [maxDelay=20000] Backoff ceiling, in ms.
 * @property {number} [maxAttempts=Infinity] Reconnect attempts in a row without a welcome before giving up.
 * @property {number} [requestTimeout=10000] Default time a `request()` waits for its reply, in ms.
 * @property {number} [connectTimeout=10000] Time from opening a socket to the hub's welcome, in ms.
 * @property {boolean | {interval?: number, grace?: number}} [heartbeat=true]
 *   Send an application `ping` every `interval` ms (default: the welcome's
 *   `heartbeatMs`) and treat a connection that brought no message at all for
 *   `interval + grace` ms (grace default 10000) as dead. false: off.
 * @property {boolean} [autoConnect=true] Connect from the constructor; false: call `connect()`.
 * @property {string} [batchType='batch_update'] The hub's batch message type (`--batch-type`).
 * @property {boolean} [unbatch=true] Deliver each message of a batch on its own; false: the batch as one message.
 * @property {(code: number, reason: string) => CloseAction | undefined} [closeAction]
 *   Overrides the close-code table for some codes (return undefined to keep the default).
 * @property {string | null} [envelope='standard'] Sent as `?envelope=`: the shape the client reads,
 *   whatever the hub's default (`--envelope`); null: leave it to the hub.
 * @property {new (url: string) => WebSocket} [WebSocket] The constructor to use (default `globalThis.WebSocket`).
 * @property {Record<string, string> | (() => Record<string, string | undefined>)} [query] More query
 *   parameters for the hub; a function is called before every connection attempt.
 */

/**
 * A message from the hub, in the standard envelope.
 * @typedef {object} WshubMessage
 * @property {string} type
 * @property {any} [data]
 * @property {string} [channel]
 * @property {string} [sessionId]
 * @property {{clientId: string, userId: string | null}} [from]
 * @property {string | number} [correlationId]
 * @property {number} [seq] Position in its stream (channel, session or `user:<id>`).
 * @property {string} [epoch] The stream's epoch: a new one means its history was lost.
 * @property {string} [timestamp]
 * @property {boolean} [batched] Set on a message that came inside a batch.
 */

/**
 * @typedef {object} WelcomeEvent `open`: the hub's welcome.
 * @property {string} clientId
 * @property {string | null} userId
 * @property {string | null} sessionId
 * @property {boolean} authenticated
 * @property {number} heartbeatMs
 * @property {boolean} reconnected Whether an earlier connection of this client was open before.
 *
 * @typedef {object} CloseEvent `close`: a connection ended.
 * @property {number} code
 * @property {string} reason
 * @property {boolean} wasClean
 * @property {CloseAction} action What the client does now.
 * @property {boolean} willReconnect
 * @property {number} [delay] For a reconnect: in how many ms.
 *
 * @typedef {object} ReconnectingEvent `reconnecting`: the next attempt is scheduled.
 * @property {number} attempt 1 for the first attempt after a welcome.
 * @property {number} delay In ms.
 * @property {CloseAction} action
 *
 * @typedef {object} GapEvent `gap`: publications on a stream were missed.
 * @property {string} stream `channel:<name>` or `session:<id>`.
 * @property {string} [channel]
 * @property {string} [sessionId]
 * @property {string} [epoch]
 * @property {string} [previousEpoch] Set when the stream's epoch changed.
 * @property {number} from First missing seq.
 * @property {number} to Last missing seq.
 *
 * @typedef {object} RecoveryEvent `recovery`: the answer to a re-subscription with `since`.
 * @property {string} stream
 * @property {string} [channel]
 * @property {string} [sessionId]
 * @property {boolean} recovered false: publications were missed and are gone (too old, or a new epoch).
 * @property {{seq: number, epoch?: string}} since What the client asked for.
 * @property {number} [seq] The stream's latest seq.
 * @property {string} [epoch] Its current epoch.
 */

/** Reply `type` the hub never uses for anything else: hides the heartbeat's pongs. */
const HEARTBEAT_ID = 'wshub:heartbeat';
const LIFECYCLE = new Set(['open', 'close', 'reconnecting', 'error', 'gap', 'recovery']);

/**
 * An error from the hub (`code` is its error code) or from the client
 * (`timeout`, `disconnected`, `closed`, `socket`, `token`, `url`, ...).
 * A socket error says which URL (its token hidden), and the close code and
 * reason the connection ended with.
 */
export class WshubError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   * @param {WshubMessage} [reply] The hub's `error` message, if it sent one.
   * @param {{url?: string, closeCode?: number, closeReason?: string, cause?: unknown}} [details]
   */
  constructor(message, code, reply, details = {}) {
    super(message);
    this.name = 'WshubError';
    this.code = code;
    this.reply = reply;
    for (const key of ['url', 'closeCode', 'closeReason', 'cause']) {
      if (details[key] !== undefined) this[key] = details[key];
    }
  }
}

/** A URL fit for a log: its token hidden. */
export function redactUrl(url) {
  const shown = new URL(String(url));
  if (shown.searchParams.has('token')) shown.searchParams.set('token', '***');
  return shown.toString();
}

/**
 * The close-code table: what to do after the hub (or the network) closed the
 * connection. The application's own codes follow Centrifugo's convention:
 * 4000 to 4499 mean "come back" (with backoff), 4500 to 4999 "stay away".
 * @param {number} code
 * @returns {CloseAction}
 */
export function closeAction(code) {
  switch (code) {
    case 1001: // server shutting down
      return 'reconnect';
    case 4001: // token expired
      return 'refresh';
    case 1000: // the application disconnected this client on purpose
    case 1002: // protocol error
    case 1003: // unsupported data
    case 1007: // invalid UTF-8
    case 1008: // unauthorized
    case 1009: // message too big
    case 1010: // a required extension
      return 'stop';
    default:
      // The application's: 4500 to 4999 stop; 4000 to 4499 back off, as do
      // 1006 connection lost, 1011, 1013 full, too slow or far over the rate
      // limit, and anything else.
      return code >= 4500 && code <= 4999 ? 'stop' : 'backoff';
  }
}

/** The longest wait before reconnecting to a hub that is going away (1001), in ms. */
const RESTART_JITTER = 1000;

/**
 * The delay before reconnecting to a hub that said it is going away (1001):
 * random in [0, max(1000, minDelay)), so its clients do not all come back at
 * the same instant.
 * @param {number} minDelay
 * @param {() => number} [random]
 * @returns {number} ms
 */
export function restartDelay(minDelay, random = Math.random) {
  return Math.floor(random() * Math.max(RESTART_JITTER, minDelay));
}

/**
 * Full-jitter exponential backoff: a random delay in [0, min(maxDelay, minDelay * 2^attempt)).
 * @param {number} attempt 0 for the first retry.
 * @param {number} minDelay
 * @param {number} maxDelay
 * @param {() => number} [random]
 * @returns {number} ms
 */
export function backoffDelay(attempt, minDelay, maxDelay, random = Math.random) {
  const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** The page's own hub: `ws(s)://<host>/ws`. */
export function defaultUrl() {
  const location = globalThis.location;
  if (!location || !location.host) {
    throw new TypeError('wshub: no page to take the URL from; pass the hub URL (ws://host:port/ws)');
  }
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

function resolveUrl(url) {
  const base = globalThis.location && globalThis.location.href;
  const resolved = base ? new URL(url, base) : new URL(url);
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:';
  if (resolved.protocol === 'https:') resolved.protocol = 'wss:';
  if (resolved.protocol !== 'ws:' && resolved.protocol !== 'wss:') {
    throw new TypeError(`wshub: ${url} is not a hub URL: give ws://host:port/ws or wss://host/ws (http:// and https:// are taken too)`);
  }
  return resolved;
}

/** Marks a `once` wrapper with the handler it calls, so `off(type, handler)` finds it. */
const ONCE = Symbol('wshub.once');
/** Marks every WshubClient, whichever copy of the package (ESM or CommonJS) made it. */
const BRAND = Symbol.for('wshub.client');

/** Whether `value` is a WshubClient, from this copy of the package or another (the dual-package hazard). */
export function isWshubClient(value) {
  return !!value && typeof value === 'object' && value[BRAND] === true;
}

const streamKey = (kind, name) => `${kind}:${name}`;

/** The most a Close frame's reason holds, in bytes of UTF-8. */
const MAX_CLOSE_REASON = 123;

/** A close reason cut to what a Close frame holds, on a character boundary (a longer one makes `close()` throw). */
function fitCloseReason(reason) {
  const text = String(reason);
  const bytes = new TextEncoder().encode(text);
  if (bytes.length <= MAX_CLOSE_REASON) return text;
  let end = MAX_CLOSE_REASON;
  // Back to the first byte of the character the cut would split.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end -= 1;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/** A client of one wshub hub. */
export class WshubClient {
  /** @type {'connecting' | 'open' | 'closed'} */
  #state = 'closed';
  #url;
  #options;
  #WebSocket;
  #socket = null;
  #welcomed = false;
  #everOpen = false;
  /** Not connecting, open or waiting to reconnect. */
  #stopped = true;
  /** Stopped by `close()` or the close-code table (not just not started yet): calls reject with `closed`. */
  #halted = false;
  /** `ready()`'s callers waiting for the next welcome. */
  #readyWaiters = [];
  #generation = 0;
  #attempt = 0;
  #nextId = 0;
  #welcome = null;
  /** The URL of the latest attempt, for error messages (redacted there). */
  #lastUrl = '';
  #timers = { reconnect: null, connect: null, heartbeat: null, watchdog: null };
  #lastHeard = 0;
  /** correlationId -> {resolve, reject, message, sent, timer} */
  #pending = new Map();
  /**
   * stream key -> {kind, name, confirmed, data, waiters: [{resolve, reject}],
   * request}: `request` is the correlationId of its latest `subscribe`,
   * until answered; only that answer confirms it.
   */
  #subscriptions = new Map();
  /** correlationIds of this connection's `unsubscribe`s not answered yet. */
  #leaving = new Set();
  /** stream key -> {seq, epoch} of the last publication delivered */
  #positions = new Map();
  /** stream key -> the `since` it was re-subscribed with, until its `subscribed` */
  #recovering = new Map();
  #handlers = new Map();
  #anyHandlers = new Set();

  /**
   * @param {string | URL} [url] The hub, e.g. `ws://127.0.0.1:3000/ws` (default: the page's host, `/ws`).
   * @param {WshubOptions} [options]
   */
  constructor(url, options = {}) {
    if (url && typeof url === 'object' && !(url instanceof URL)) [url, options] = [undefined, url];
    this.#url = resolveUrl(url ? String(url) : defaultUrl());
    const heartbeat = options.heartbeat ?? true;
    this.#options = {
      reconnect: true,
      minDelay: 500,
      maxDelay: 20000,
      maxAttempts: Infinity,
      requestTimeout: 10000,
      connectTimeout: 10000,
      autoConnect: true,
      batchType: 'batch_update',
      unbatch: true,
      envelope: 'standard',
      ...options,
      heartbeat: heartbeat === false ? null : { grace: 10000, ...(heartbeat === true ? {} : heartbeat) },
    };
    /** @type {true} Recognised across copies of the package: see `isWshubClient`. */
    this[BRAND] = true;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.#WebSocket !== 'function') {
      throw new TypeError("wshub: no WebSocket here; pass one: new WshubClient(url, { WebSocket }) with WebSocket from 'ws'");
    }
    if (options.sessionId) this.#remember('session', options.sessionId);
    if (this.#options.autoConnect) this.connect();
  }

  /** `connecting` (also while waiting to reconnect), `open` (welcomed) or `closed` (stopped). */
  get state() {
    return this.#state;
  }

  /** This connection's id from the welcome (null before the first one). */
  get clientId() {
    return this.#welcome ? this.#welcome.clientId : null;
  }

  /** The user the hub knows this client as (from the welcome). */
  get userId() {
    return this.#welcome ? this.#welcome.userId : (this.#options.userId ?? null);
  }

  /** The latest welcome's data, or null. */
  get welcome() {
    return this.#welcome;
  }

  /** The streams this client subscribed to and re-subscribes to: `channel:<name>`, `session:<id>`. */
  get subscriptions() {
    return [...this.#subscriptions.keys()];
  }

  /** The last position seen on each stream: `{"channel:files": {seq, epoch}}`. */
  get positions() {
    return Object.fromEntries([...this.#positions].map(([key, at]) => [key, { ...at }]));
  }

  /** Starts connecting (after `close()`, or with `autoConnect: false`). Does nothing if already connecting or open. */
  connect() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#halted = false;
    this.#attempt = 0;
    this.#open();
  }

  /**
   * Resolves with the welcome once the client is open (at once if it is);
   * rejects with `closed` if it stops first, or has stopped. Before the first
   * `connect()` (with `autoConnect: false`) it waits for it.
   * @returns {Promise<object>}
   */
  ready() {
    if (this.#state === 'open') return Promise.resolve(this.#welcome);
    if (this.#halted) return Promise.reject(new WshubError('wshub: the client is closed', 'closed'));
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /**
   * Closes the connection with 1000 and stops for good: no reconnect, pending
   * requests are rejected (`closed`). `connect()` starts again.
   * @param {string} [reason] Cut to the 123 bytes of UTF-8 a Close frame holds.
   */
  close(reason = 'Client closed') {
    if (this.#halted) return;
    // Never started (autoConnect: false): nothing to close, but closed all the same.
    if (this.#stopped) return this.#stop();
    reason = fitCloseReason(reason);
    const socket = this.#socket;
    this.#stopped = true;
    if (socket) {
      this.#detach(socket);
      try {
        socket.close(1000, reason);
      } catch {
        // Already closing, or refused: make sure it ends all the same.
        try {
          if (typeof socket.terminate === 'function') socket.terminate();
          else socket.close();
        } catch {
          // gone
        }
      }
    }
    this.#disconnected('closed');
    this.#emit('close', { code: 1000, reason, wasClean: true, action: 'stop', willReconnect: false });
    this.#stop();
  }

  // ---- Sending -------------------------------------------------------------

  /**
   * Sends a message without waiting for a reply; false if not connected (then nothing is sent).
   * `send({type, ...})` sends that message as it is.
   * @param {string | {type: string}} type
   * @param {any} [data]
   * @param {object} [fields] Other top-level fields (`channel`, `sessionId`, `event`, ...).
   * @returns {boolean}
   */
  send(type, data, fields = {}) {
    const message = typeof type === 'object' ? { ...type } : { ...fields, type };
    if (typeof type !== 'object' && data !== undefined) message.data = data;
    return this.#transmit(message);
  }

  /**
   * Sends a request and resolves with the reply that carries its `correlationId`.
   * Waits for the connection if it is not open yet. Rejects with a WshubError:
   * the hub's code for an `error` reply, `timeout`, `disconnected` (the
   * connection ended after it was sent), or `closed`.
   * @param {string} type
   * @param {any} [data]
   * @param {{timeout?: number} & Record<string, any>} [options] `timeout` in ms; other keys are top-level fields.
   * @returns {Promise<WshubMessage>}
   */
  request(type, data, options = {}) {
    const { timeout = this.#options.requestTimeout, ...fields } = options;
    const message = { ...fields, type };
    if (data !== undefined) message.data = data;
    return this.#call(message, timeout);
  }

  /**
   * Publishes to a channel (or `{sessionId}`); resolves with the number of clients reached.
   * The hub must allow client publishing (`--allow-client-publish` or the token's grant).
   * @param {string | {channel?: string, sessionId?: string}} target
   * @param {string} event The `type` subscribers get.
   * @param {any} data
   * @returns {Promise<number>}
   */
  async publish(target, event, data) {
    const where = typeof target === 'string' ? { channel: target } : target;
    const reply = await this.request('publish', data, { ...where, event });
    return reply.data ? reply.data.delivered : undefined;
  }

  /**
   * Sets this user's presence; resolves when the hub acknowledged it.
   * @param {'online' | 'away' | 'busy' | 'offline'} status
   * @returns {Promise<void>}
   */
  async setPresence(status) {
    await this.request('user_presence', status);
  }

  /**
   * Everyone online: `[{userId, status}]`.
   * @returns {Promise<Array<{userId: string, status: string}>>}
   */
  async presence() {
    const reply = await this.request('presence');
    return (reply.data && reply.data.users) || [];
  }

  /**
   * Sends a fresh token for the same user before the current one expires (token auth on).
   * @param {string} [token] Default: the token provider's next one.
   * @returns {Promise<void>}
   */
  async refresh(token) {
    const fresh = token ?? (await this.#token());
    await this.request('refresh', { token: fresh });
  }

  // ---- Subscriptions -------------------------------------------------------

  /**
   * Subscribes to a channel, now and after every reconnect (then with the
   * position of the last publication seen, so the hub replays what was missed).
   * Resolves with the `subscribed` data (`{seq, epoch}`, `recovered` after a `since`).
   * A refused subscription (`forbidden`, `invalid_channel`, ...) is forgotten and rejects.
   * @param {string} channel
   * @param {{since?: {seq: number, epoch?: string}}} [options] Where to resume (e.g. saved from `positions`).
   * @returns {Promise<object>}
   */
  subscribe(channel, options = {}) {
    return this.#subscribe('channel', channel, options);
  }

  /**
   * Subscribes to a session, like `subscribe` does to a channel.
   * @param {string} sessionId
   * @param {{since?: {seq: number, epoch?: string}}} [options]
   * @returns {Promise<object>}
   */
  subscribeSession(sessionId, options = {}) {
    return this.#subscribe('session', sessionId, options);
  }

  /**
   * Leaves a channel and forgets it (and its position).
   * @param {string} channel
   * @returns {Promise<void>}
   */
  unsubscribe(channel) {
    return this.#unsubscribe('channel', channel);
  }

  /**
   * Leaves a session and forgets it.
   * @param {string} sessionId
   * @returns {Promise<void>}
   */
  unsubscribeSession(sessionId) {
    return this.#unsubscribe('session', sessionId);
  }

  // ---- Events ----------------------------------------------------------------

  /**
   * Calls `handler(data, message)` for every message of `type` from the hub,
   * or `handler(event)` for the client's own events: `open`, `close`,
   * `reconnecting`, `error` (an Error; the hub's `error` messages that answer
   * no request come here too, with their `code`), `gap`, `recovery`.
   * @param {string} type
   * @param {Function} handler
   * @returns {() => void} Removes the handler.
   */
  on(type, handler) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    this.#handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  /**
   * Like `on`, for the next one only. `off(type, handler)` removes it too.
   * @param {string} type
   * @param {Function} handler
   * @returns {() => void}
   */
  once(type, handler) {
    const once = (...args) => {
      off();
      handler(...args);
    };
    once[ONCE] = handler;
    const off = this.on(type, once);
    return off;
  }

  /**
   * Removes a handler given to `on` or `once`.
   * @param {string} type
   * @param {Function} handler
   */
  off(type, handler) {
    const set = this.#handlers.get(type);
    if (!set) return;
    set.delete(handler);
    for (const registered of set) if (registered[ONCE] === handler) set.delete(registered);
  }

  /**
   * Calls `handler(message)` for every message from the hub (replies and `error`s too),
   * except the heartbeat's own pongs.
   * @param {(message: WshubMessage) => void} handler
   * @returns {() => void}
   */
  onAny(handler) {
    this.#anyHandlers.add(handler);
    return () => this.#anyHandlers.delete(handler);
  }

  /** @param {(message: WshubMessage) => void} handler */
  offAny(handler) {
    this.#anyHandlers.delete(handler);
  }

  // ---- Connection ------------------------------------------------------------

  async #open() {
    const generation = ++this.#generation;
    this.#state = 'connecting';
    let token;
    try {
      token = await this.#token();
    } catch (err) {
      if (generation !== this.#generation || this.#stopped) return;
      this.#emit('error', new WshubError(`wshub: the token provider failed: ${err && err.message}`, 'token'));
      return this.#closed(1006, 'No token', false);
    }
    if (generation !== this.#generation || this.#stopped) return;
    let socket;
    this.#lastUrl = this.#connectUrl(token);
    try {
      socket = new this.#WebSocket(this.#lastUrl);
    } catch (err) {
      // Trying again would fail the same way: say so, and stop.
      const why = `wshub: cannot connect: ${err && err.message}`;
      this.#emit('error', new WshubError(why, 'url', undefined, { url: redactUrl(this.#lastUrl), cause: err }));
      this.#emit('close', { code: 1006, reason: fitCloseReason(why), wasClean: false, action: 'stop', willReconnect: false });
      this.#stop();
      return;
    }
    this.#socket = socket;
    this.#welcomed = false;
    this.#timers.connect = setTimeout(
      () => this.#lost(socket, `No welcome within ${this.#options.connectTimeout} ms`),
      this.#options.connectTimeout,
    );
    socket.onmessage = (event) => {
      if (socket === this.#socket) this.#received(event.data);
    };
    // A socket error is reported with its close, which says how it ended.
    let failure = null;
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#detach(socket);
      const reason = event.reason || '';
      if (failure) this.#emit('error', this.#socketError(failure.cause, event.code, reason));
      this.#closed(event.code, reason, event.wasClean);
    };
    socket.onerror = (event) => {
      if (socket === this.#socket) failure = { cause: event && (event.error || event.message) ? event.error || event : undefined };
    };
  }

  /** Says what went wrong on the socket: where, how it ended, and why if the socket knows. */
  #socketError(cause, closeCode, closeReason) {
    const url = redactUrl(this.#lastUrl);
    const what = this.#welcomed ? `the connection to ${url} failed` : `could not connect to ${url}`;
    const why = cause && cause.message ? `: ${cause.message}` : '';
    const how = ` (close ${closeCode}${closeReason ? ` ${closeReason}` : ''})`;
    return new WshubError(`wshub: ${what}${why}${how}`, 'socket', undefined, {
      url,
      closeCode,
      closeReason,
      cause: cause && cause.message ? cause : undefined,
    });
  }

  async #token() {
    const { token } = this.#options;
    return typeof token === 'function' ? await token() : token;
  }

  #connectUrl(token) {
    const url = new URL(this.#url);
    const { query } = this.#options;
    const more = typeof query === 'function' ? query() : query;
    for (const [name, value] of Object.entries(more || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    if (token) url.searchParams.set('token', token);
    if (this.#options.userId) url.searchParams.set('userId', this.#options.userId);
    if (this.#options.envelope && !url.searchParams.has('envelope')) url.searchParams.set('envelope', this.#options.envelope);
    // The `sessionId` option is not put here: it is subscribed after the
    // welcome like every stream, once, and with `since` after a reconnect.
    return url.toString();
  }

  /** Stops listening to a socket we are done with. */
  #detach(socket) {
    socket.onmessage = null;
    socket.onclose = null;
    // A ws socket closed while connecting still reports an error: keep a listener.
    socket.onerror = () => {};
  }

  /** The client gave up on a connection (no welcome, or silent): cut it and go on as if it closed. */
  #lost(socket, reason) {
    if (socket !== this.#socket) return;
    this.#detach(socket);
    try {
      if (typeof socket.terminate === 'function') socket.terminate();
      else socket.close(4000, reason);
    } catch {
      // already gone
    }
    this.#closed(1006, reason, false);
  }

  #disconnected(why = 'disconnected') {
    clearTimeout(this.#timers.connect);
    clearInterval(this.#timers.heartbeat);
    clearTimeout(this.#timers.watchdog);
    this.#timers.connect = this.#timers.heartbeat = this.#timers.watchdog = null;
    this.#socket = null;
    this.#welcomed = false;
    this.#recovering.clear();
    this.#leaving.clear();
    for (const sub of this.#subscriptions.values()) {
      sub.confirmed = false;
      sub.request = null;
    }
    for (const [id, entry] of this.#pending) {
      if (!entry.sent) continue;
      this.#pending.delete(id);
      clearTimeout(entry.timer);
      const text = why === 'closed' ? 'wshub: the client is closed' : 'wshub: the connection ended before the reply';
      entry.reject(new WshubError(text, why));
    }
  }

  /** A connection ended: decide by the close-code table. */
  #closed(code, reason, wasClean) {
    this.#disconnected();
    if (this.#stopped) return;
    let action = (this.#options.closeAction && this.#options.closeAction(code, reason)) || closeAction(code);
    if (!this.#options.reconnect || this.#attempt >= this.#options.maxAttempts) action = 'stop';
    const delay =
      action === 'backoff'
        ? backoffDelay(this.#attempt, this.#options.minDelay, this.#options.maxDelay)
        : action === 'reconnect'
          ? restartDelay(this.#options.minDelay)
          : 0;
    const willReconnect = action !== 'stop';
    this.#emit('close', { code, reason, wasClean, action, willReconnect, ...(willReconnect ? { delay } : {}) });
    if (!willReconnect) return this.#stop();
    this.#attempt += 1;
    this.#state = 'connecting';
    this.#emit('reconnecting', { attempt: this.#attempt, delay, action });
    clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = setTimeout(() => {
      this.#timers.reconnect = null;
      if (!this.#stopped) this.#open();
    }, delay);
  }

  /** Stops for good (until `connect()`), after the connection, if any, was let go of. */
  #stop() {
    this.#stopped = true;
    this.#halted = true;
    this.#generation += 1;
    this.#state = 'closed';
    clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = null;
    const closed = () => new WshubError('wshub: the client is closed', 'closed');
    for (const [id, entry] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(closed());
    }
    for (const sub of this.#subscriptions.values()) {
      for (const waiter of sub.waiters.splice(0)) waiter.reject(closed());
    }
    for (const waiter of this.#readyWaiters.splice(0)) waiter.reject(closed());
  }

  #welcomeReceived(message) {
    const data = message.data || {};
    clearTimeout(this.#timers.connect);
    this.#timers.connect = null;
    this.#welcomed = true;
    this.#welcome = data;
    this.#attempt = 0;
    this.#state = 'open';
    this.#startHeartbeat(data.heartbeatMs);
    // A position is kept for the streams this client subscribes to, and its
    // user's own; another's (a service subscribed it, for that connection
    // only) is not followed past its connection.
    const own = data.userId ? streamKey('channel', `user:${data.userId}`) : null;
    for (const key of [...this.#positions.keys()]) {
      if (key !== own && !this.#subscriptions.has(key)) this.#positions.delete(key);
    }
    for (const sub of this.#subscriptions.values()) this.#sendSubscribe(sub);
    for (const entry of this.#pending.values()) {
      if (!entry.sent) entry.sent = this.#transmit(entry.message);
    }
    const reconnected = this.#everOpen;
    this.#everOpen = true;
    for (const waiter of this.#readyWaiters.splice(0)) waiter.resolve(data);
    this.#emit('open', { ...data, reconnected });
  }

  #startHeartbeat(heartbeatMs) {
    const heartbeat = this.#options.heartbeat;
    const interval = heartbeat && (heartbeat.interval ?? heartbeatMs);
    if (!interval) return;
    const socket = this.#socket;
    const silence = interval + heartbeat.grace;
    this.#lastHeard = Date.now();
    // The hub's protocol Pings never reach JavaScript; its pongs to these do.
    this.#timers.heartbeat = setInterval(() => this.#transmit({ type: 'ping', correlationId: HEARTBEAT_ID }), interval);
    // Wakes when the silence would be complete, not on every message.
    const watch = () => {
      const quiet = Date.now() - this.#lastHeard;
      if (quiet >= silence) this.#lost(socket, `No message within ${silence} ms`);
      else this.#timers.watchdog = setTimeout(watch, silence - quiet);
    };
    this.#timers.watchdog = setTimeout(watch, silence);
  }

  #transmit(message) {
    if (!this.#socket || !this.#welcomed) return false;
    try {
      this.#socket.send(JSON.stringify(message));
      return true;
    } catch (err) {
      this.#emit('error', new WshubError(`wshub: send failed: ${err && err.message}`, 'socket'));
      return false;
    }
  }

  #call(message, timeout) {
    return new Promise((resolve, reject) => {
      if (this.#halted) return reject(new WshubError('wshub: the client is closed', 'closed'));
      const id = `w${++this.#nextId}`;
      message.correlationId = id;
      const entry = { resolve, reject, message, sent: false, timer: null };
      entry.timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new WshubError(`wshub: no reply to ${message.type} within ${timeout} ms`, 'timeout'));
      }, timeout);
      this.#pending.set(id, entry);
      entry.sent = this.#transmit(message);
    });
  }

  // ---- Receiving -------------------------------------------------------------

  #received(raw) {
    let message;
    try {
      message = JSON.parse(typeof raw === 'string' ? raw : String(raw));
    } catch {
      this.#emit('error', new WshubError('wshub: the hub sent something that is not JSON', 'invalid_json'));
      return;
    }
    if (!message || typeof message.type !== 'string') return;
    this.#lastHeard = Date.now();
    if (message.correlationId === HEARTBEAT_ID) return;
    if (!this.#welcomed && message.type === 'connection') this.#welcomeReceived(message);

    const entry = message.correlationId !== undefined && this.#pending.get(message.correlationId);
    if (entry) {
      this.#pending.delete(message.correlationId);
      clearTimeout(entry.timer);
    }
    if (message.type === 'subscribed') this.#subscribedReceived(message);
    if (message.type === 'unsubscribed') this.#unsubscribedReceived(message);

    if (message.type === this.#options.batchType && message.data && Array.isArray(message.data.messages)) {
      this.#batchReceived(message);
    } else if (this.#track(message)) {
      this.#dispatch(message, !!entry);
    }

    if (entry) {
      if (message.type === 'error') {
        const data = message.data || {};
        entry.reject(new WshubError(data.error || 'wshub: error', data.code || 'error', message));
      } else {
        entry.resolve(message);
      }
    }
  }

  #batchReceived(batch) {
    const { messages, ...rest } = batch.data;
    const items = [];
    for (const item of messages) {
      const message = { ...item, batched: true, timestamp: batch.timestamp };
      if (batch.channel !== undefined) message.channel = batch.channel;
      if (batch.sessionId !== undefined) message.sessionId = batch.sessionId;
      if (message.epoch === undefined && batch.epoch !== undefined) message.epoch = batch.epoch;
      if (this.#track(message)) items.push({ item, message });
    }
    if (this.#options.unbatch) {
      for (const { message } of items) this.#dispatch(message, false);
    } else if (items.length) {
      this.#dispatch({ ...batch, data: { ...rest, messages: items.map(({ item }) => item) } }, false);
    }
  }

  #dispatch(message, answered) {
    for (const handler of [...this.#anyHandlers]) this.#safely(handler, message);
    if (message.type === 'error') {
      if (!answered) {
        const data = message.data || {};
        this.#emit('error', new WshubError(data.error || 'wshub: error', data.code || 'error', message));
      }
      return;
    }
    if (LIFECYCLE.has(message.type)) return;
    const handlers = this.#handlers.get(message.type);
    if (handlers) for (const handler of [...handlers]) this.#safely(handler, message.data, message);
  }

  #emit(type, event) {
    const handlers = this.#handlers.get(type);
    if (handlers) for (const handler of [...handlers]) this.#safely(handler, event);
  }

  /** A handler that throws does not break the client; it is reported as an `error` event (a WshubError, code `handler`). */
  #safely(handler, ...args) {
    try {
      handler(...args);
    } catch (err) {
      // An `error` handler that throws: the console, not another `error`.
      if (args[0] instanceof Error) return console.error(err);
      const error =
        err instanceof WshubError
          ? err
          : new WshubError(`wshub: a handler threw: ${err && err.message !== undefined ? err.message : String(err)}`, 'handler', undefined, { cause: err });
      this.#emit('error', error);
    }
  }

  // ---- Streams: positions, duplicates, gaps, recovery -----------------------

  /** The stream a publication belongs to, from its target fields. */
  #streamOf(message) {
    if (typeof message.channel === 'string') return streamKey('channel', message.channel);
    if (typeof message.sessionId === 'string') return streamKey('session', message.sessionId);
    const user = this.userId;
    return user ? streamKey('channel', `user:${user}`) : null;
  }

  /** Updates the stream's position; false for a message not to deliver (a duplicate). */
  #track(message) {
    if (typeof message.seq !== 'number') return true;
    const key = this.#streamOf(message);
    if (!key) return true;
    // Re-subscribed with `since`: the hub replays after its `subscribed`,
    // which includes whatever it sent before it.
    if (this.#recovering.has(key)) return false;
    const { seq, epoch } = message;
    const at = this.#positions.get(key);
    if (!at) {
      this.#positions.set(key, { seq, epoch });
      return true;
    }
    if (epoch !== undefined && at.epoch !== undefined && epoch !== at.epoch) {
      this.#positions.set(key, { seq, epoch });
      if (seq > 1) this.#emit('gap', { ...this.#streamFields(key), epoch, previousEpoch: at.epoch, from: 1, to: seq - 1 });
      return true;
    }
    if (seq <= at.seq) return false;
    if (seq > at.seq + 1) this.#emit('gap', { ...this.#streamFields(key), epoch: epoch ?? at.epoch, from: at.seq + 1, to: seq - 1 });
    this.#positions.set(key, { seq, epoch: epoch ?? at.epoch });
    return true;
  }

  #streamFields(key) {
    const [kind, ...rest] = key.split(':');
    const name = rest.join(':');
    return kind === 'channel' ? { stream: key, channel: name } : { stream: key, sessionId: name };
  }

  #remember(kind, name) {
    const key = streamKey(kind, name);
    let sub = this.#subscriptions.get(key);
    if (!sub) {
      sub = { kind, name, confirmed: false, request: null, data: null, waiters: [] };
      this.#subscriptions.set(key, sub);
    }
    return sub;
  }

  #subscribe(kind, name, { since } = {}) {
    if (typeof name !== 'string' || !name) return Promise.reject(new TypeError(`wshub: subscribe needs a ${kind} name`));
    if (this.#halted) return Promise.reject(new WshubError('wshub: the client is closed', 'closed'));
    const key = streamKey(kind, name);
    const sub = this.#remember(kind, name);
    if (sub.confirmed) return Promise.resolve(sub.data);
    if (since && !this.#positions.has(key)) this.#positions.set(key, { ...since });
    return new Promise((resolve, reject) => {
      sub.waiters.push({ resolve, reject });
      // Not connected: it goes out with the welcome.
      if (this.#welcomed && sub.request === null) this.#sendSubscribe(sub);
    });
  }

  /** Sends a remembered subscription: with `since` when a position is known. */
  #sendSubscribe(sub) {
    const key = streamKey(sub.kind, sub.name);
    const at = this.#positions.get(key);
    const message = { type: 'subscribe', [sub.kind === 'channel' ? 'channel' : 'sessionId']: sub.name };
    if (at && typeof at.seq === 'number') {
      message.since = at.epoch === undefined ? { seq: at.seq } : { seq: at.seq, epoch: at.epoch };
      this.#recovering.set(key, message.since);
    }
    const socket = this.#socket;
    const timeout = this.#options.requestTimeout;
    const answer = this.#call(message, timeout);
    sub.request = message.correlationId ?? null;
    answer.catch((err) => {
      // Superseded (left and taken again since): that one's answer counts.
      if (this.#subscriptions.get(key) !== sub || sub.request !== message.correlationId) return;
      sub.request = null;
      if (err.code === 'disconnected' || err.code === 'closed') return;
      this.#recovering.delete(key);
      const waiters = sub.waiters.splice(0);
      Object.assign(err, this.#streamFields(key));
      if (err.code === 'timeout') {
        // Whether the hub has it is unknown, and its live deliveries would be
        // held back for a replay that may never come: give this connection
        // up. The next one subscribes again (with `since`), and says
        // `recovered` or not; the subscription is kept.
        err.message = `wshub: no answer to subscribe ${key} within ${timeout} ms; reconnecting to subscribe again`;
      } else {
        // Refused: forget it, so it is not sent again on every reconnect.
        this.#subscriptions.delete(key);
      }
      if (waiters.length) for (const waiter of waiters) waiter.reject(err);
      else this.#emit('error', err);
      if (err.code === 'timeout') this.#lost(socket, `No answer to subscribe within ${timeout} ms`);
    });
  }

  #subscribedReceived(message) {
    const key = this.#topicOf(message);
    if (!key) return;
    const data = message.data || {};
    const sub = this.#subscriptions.get(key);
    const ours = sub && sub.request !== null && message.correlationId === sub.request;
    if (!ours) {
      // A service subscribed this client (for this connection only), or the
      // answer to a subscribe left since: only where the stream stands.
      if (!sub && !this.#positions.has(key) && typeof data.seq === 'number') {
        this.#positions.set(key, { seq: data.seq, epoch: data.epoch });
      }
      return;
    }
    sub.request = null;
    const since = this.#recovering.get(key);
    if (since) {
      this.#recovering.delete(key);
      const recovered = data.recovered === true;
      // Not recovered: the next publication is taken as it comes.
      if (!recovered) this.#positions.delete(key);
      this.#emit('recovery', { ...this.#streamFields(key), recovered, since, seq: data.seq, epoch: data.epoch });
    } else if (typeof data.seq === 'number') {
      // Live from here: whatever came before on this stream is older.
      this.#positions.set(key, { seq: data.seq, epoch: data.epoch });
    }
    sub.confirmed = true;
    sub.data = data;
    for (const waiter of sub.waiters.splice(0)) waiter.resolve(data);
  }

  #unsubscribedReceived(message) {
    // The answer to our own unsubscribe: that was forgotten when it was sent,
    // and a subscribe since then must stay.
    if (message.correlationId !== undefined && this.#leaving.delete(message.correlationId)) return;
    // Ended by the hub or a service: forget it, so it is not re-sent; but a
    // subscribe of ours still unanswered came after it, and stands.
    const key = this.#topicOf(message);
    const ended = key ? [key] : [...this.#subscriptions.keys()].filter((k) => this.#subscriptions.get(k).kind === 'session');
    for (const k of ended) {
      const sub = this.#subscriptions.get(k);
      if (!sub || sub.request === null) this.#forget(k);
    }
  }

  /** The stream a `subscribed` or `unsubscribed` names, or null. */
  #topicOf(message) {
    if (typeof message.channel === 'string') return streamKey('channel', message.channel);
    if (typeof message.sessionId === 'string') return streamKey('session', message.sessionId);
    return null;
  }

  #forget(key) {
    const sub = this.#subscriptions.get(key);
    this.#subscriptions.delete(key);
    this.#positions.delete(key);
    this.#recovering.delete(key);
    if (sub) for (const waiter of sub.waiters.splice(0)) waiter.reject(new WshubError('wshub: unsubscribed', 'unsubscribed'));
  }

  async #unsubscribe(kind, name) {
    const key = streamKey(kind, name);
    this.#forget(key);
    if (!this.#welcomed) return;
    const message = { type: 'unsubscribe', [kind === 'channel' ? 'channel' : 'sessionId']: name };
    const answer = this.#call(message, this.#options.requestTimeout);
    // Its answer is told apart from the hub ending a subscription made since.
    if (message.correlationId !== undefined) this.#leaving.add(message.correlationId);
    await answer;
  }
}

export default WshubClient;
