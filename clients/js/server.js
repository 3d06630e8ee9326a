// server.js: a Node backend's side of wshub (`@wshub/client/server`).
//
// A service connection: one WebSocket to the hub with the admin token (or a
// token with the `service` grant), on top of WshubClient, so it reconnects
// by the close-code table with full-jitter backoff and watches its
// heartbeat. Clients' application requests arrive as `client_message` and
// go to the handler registered for their `type`; a handler answers with
// `req.reply`, streams with `req.stream` on the way, or just returns (its
// value is the reply). Besides, the service sends to one client, publishes
// to any target, subscribes and unsubscribes clients, disconnects them,
// sets their metadata, and asks who listens, who is online and the hub's
// stats, each answered by the hub. A publication made while the connection
// is down goes over the HTTP API instead (`POST /api/publish`).
//
//   import { WshubService } from '@wshub/client/server';
//   const hub = new WshubService('ws://127.0.0.1:3000/ws', { token: process.env.WSHUB_ADMIN_TOKEN });
//   hub.handle('agent:start', (req) => req.reply('agent:started', { sessionId: req.sessionId }));
//   await hub.publish({ channel: 'files' }, 'event', { file: 'a.ts', event: 'change' });
//
// Node 18 and 20 have no global WebSocket: pass the `ws` package's
// (`{ WebSocket }`), as to WshubClient. No other dependency.

import { WshubClient, WshubError } from './wshub.js';

/** The keys of a client message besides its data, when it came flat. */
const OWN_KEYS = new Set(['type', 'correlationId']);

/** `http(s)://host:port` of a `ws(s)://` hub URL. */
export function httpBase(url) {
  const base = new URL(String(url));
  base.protocol = base.protocol === 'wss:' ? 'https:' : base.protocol === 'ws:' ? 'http:' : base.protocol;
  return base.origin;
}

/** The fields a target puts on a publish: `{channel}`, `{sessionId}`, `{userId}`, `{clientId}`, `{broadcast: true}`, `{authenticated: true}`. */
function targetFields(target) {
  if (target === 'broadcast') return { broadcast: true };
  if (target === 'authenticated') return { authenticated: true };
  if (typeof target === 'string') return { channel: target };
  if (!target || typeof target !== 'object') throw new TypeError('wshub: a publish needs a target: {channel}, {sessionId}, {userId}, {clientId}, {broadcast: true} or {authenticated: true}');
  const fields = {};
  for (const key of ['channel', 'sessionId', 'userId', 'clientId']) if (typeof target[key] === 'string') fields[key] = target[key];
  if (target.broadcast === true) fields.broadcast = true;
  if (target.authenticated === true) fields.authenticated = true;
  if (Object.keys(fields).length !== 1) {
    throw new TypeError(`wshub: a publish goes to exactly one target, not ${JSON.stringify(target)}`);
  }
  return fields;
}

/** `{channel}` or `{sessionId}` of a topic given as a channel name or an object. */
function topicFields(topic) {
  if (typeof topic === 'string') return { channel: topic };
  if (topic && typeof topic.channel === 'string') return { channel: topic.channel };
  if (topic && typeof topic.sessionId === 'string') return { sessionId: topic.sessionId };
  throw new TypeError('wshub: a topic is a channel name, {channel} or {sessionId}');
}

/**
 * The HTTP API's answers whose `bad_request` the WebSocket side calls
 * `invalid_channel`: the hub's `invalid channel: ...` and `invalid sessionId: ...`.
 */
const INVALID_NAME = /^invalid (channel|sessionId):/;

/**
 * The hub's HTTP API with the admin token: for one-shot publishes from a
 * script, and the service's fallback while its connection is down.
 */
export class WshubHttp {
  #base;
  #token;
  #fetch;

  /**
   * @param {string | URL} url The hub: `http(s)://host:port` or its `ws(s)://` URL.
   * @param {{token?: string | (() => string | null | undefined | Promise<string | null | undefined>), fetch?: typeof fetch}} [options]
   *   `token`: the admin token, or a function asked for it at every call.
   */
  constructor(url, options = {}) {
    this.#base = httpBase(url);
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== 'function') throw new TypeError('wshub: no fetch here (Node 18 or newer has one); pass { fetch }');
  }

  /** Publishes to one target; resolves with the clients reached. */
  async publish(target, type, data, { batched = false } = {}) {
    const body = { ...targetFields(target), type };
    if (data !== undefined) body.data = data;
    if (batched) body.batched = true;
    const answer = await this.#call('POST', '/api/publish', body);
    return answer.data.delivered;
  }

  /** Everyone online: `[{userId, status}]`. */
  async presence() {
    return (await this.#call('GET', '/api/presence')).data.users;
  }

  /** The hub's counters and clients (`GET /api/ws/stats`). */
  async stats() {
    return this.#call('GET', '/api/ws/stats');
  }

  async #call(method, path, body) {
    const headers = { accept: 'application/json' };
    let token;
    try {
      token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    } catch (err) {
      throw new WshubError(`wshub: the token provider failed: ${err && err.message}`, 'token', undefined, { cause: err });
    }
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = this.#base + path;
    let response;
    try {
      response = await this.#fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new WshubError(`wshub: ${method} ${url} failed: ${err && err.message}`, 'http', undefined, { url, cause: err });
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      // not JSON: said below
    }
    if (!response.ok || !answer || answer.success === false) {
      const why = (answer && answer.error) || response.statusText;
      let code = (answer && answer.code) || `http_${response.status}`;
      // The same code as the hub gives on a connection.
      if (code === 'bad_request' && INVALID_NAME.test(why)) code = 'invalid_channel';
      const error = new WshubError(`wshub: ${method} ${url}: ${response.status} ${why}`, code, undefined, { url });
      error.status = response.status;
      throw error;
    }
    return answer;
  }
}

/**
 * One client's request, as a handler gets it: who sent it, its `type` and
 * `data`, and the ways to answer.
 */
export class ServiceRequest {
  #service;
  #live;
  #replied = false;
  #abort = new AbortController();

  constructor(service, live, forwarded) {
    const message = forwarded.message || {};
    this.#service = service;
    this.#live = live;
    /** The request's `type`. */
    this.type = message.type;
    /** Its `data` (or `payload`, or a flat message's own fields). */
    this.data = dataOf(message);
    /** The client that sent it. */
    this.clientId = forwarded.clientId;
    this.userId = forwarded.userId ?? null;
    /** The client's first session, if it has one. */
    this.sessionId = forwarded.sessionId ?? null;
    this.meta = forwarded.meta ?? {};
    this.correlationId = message.correlationId;
    /** The whole message as the client sent it. */
    this.message = message;
  }

  /** Whether a reply went out (a handler's return value is not sent after one). */
  get replied() {
    return this.#replied;
  }

  /**
   * Aborted when the connection this request came on ends: the hub has told
   * the client `busy` (if it was waiting), and nothing sent now reaches it.
   * @returns {AbortSignal}
   */
  get signal() {
    return this.#abort.signal;
  }

  /** @internal The connection it came on ended. */
  abort() {
    this.#abort.abort(new WshubError('wshub: the service connection ended', 'disconnected'));
  }

  /**
   * The reply: sent to the client with the request's `correlationId`, which
   * settles the client's `request()`. Once; false if the connection it came
   * on is gone.
   */
  reply(type, data) {
    if (this.#replied) throw new WshubError(`wshub: ${this.type} was already answered`, 'already_replied');
    this.#replied = true;
    return this.#send(type, data, this.correlationId);
  }

  /** An error reply (`{code, error}`), as the hub's own errors look; settles a `request()` with a WshubError. */
  error(code, message, data = {}) {
    return this.reply('error', { ...data, code, error: message, message });
  }

  /** Another message to the client, without the `correlationId`. */
  send(type, data) {
    return this.#send(type, data, undefined);
  }

  /**
   * A message of a streamed answer: published to the client's session when it
   * has one (so it carries a `seq`, and a client that reconnects recovers
   * it), else sent to the client. In order with everything else the service sends.
   */
  stream(type, data) {
    if (!this.#live()) return false;
    if (!this.sessionId) return this.send(type, data);
    const message = { type: 'publish', sessionId: this.sessionId, event: type };
    if (data !== undefined) message.data = data;
    return this.#service._transmit(message);
  }

  #send(type, data, correlationId) {
    if (!this.#live()) return false;
    const message = { type };
    if (data !== undefined) message.data = data;
    if (correlationId !== undefined) message.correlationId = correlationId;
    return this.#service._transmit({ type: 'send', clientId: this.clientId, message });
  }
}

function dataOf(message) {
  if (message.data !== undefined) return message.data;
  if (message.payload !== undefined) return message.payload;
  const own = Object.keys(message).filter((key) => !OWN_KEYS.has(key));
  return own.length ? Object.fromEntries(own.map((key) => [key, message[key]])) : undefined;
}

/** A backend's service connection to a hub. */
export class WshubService {
  #client;
  #http;
  #handlers = new Map();
  #fallback = null;
  #generation = 0;
  /** The requests being handled on the current connection. */
  #inFlight = new Set();
  #errorListeners = new Set();
  #options;
  /** `close()` was called (and no `connect()` since): nothing goes out, not even over HTTP. */
  #closed = false;
  /** `ready()`'s callers waiting for the next welcome. */
  #readyWaiters = [];
  /** Why the last connection was refused as a service (`not_a_service`), until `connect()`. */
  #refusal = null;

  /**
   * @param {string | URL} url The hub's WebSocket URL, e.g. `ws://127.0.0.1:3000/ws`.
   * @param {object} [options] `token` (the admin token, or one with the
   *   `service` grant; a function is asked at every connect), `WebSocket`,
   *   `minDelay`, `maxDelay`, `requestTimeout`, `heartbeat`, `http` (the HTTP
   *   API's base, default from `url`; false: no HTTP fallback), `fetch`,
   *   `autoConnect`.
   */
  constructor(url, options = {}) {
    const { http, fetch, autoConnect = true, ...rest } = options;
    this.#options = options;
    // Each connection declares the types it has handlers for (`?handles=`),
    // so the hub sends it only those; with a fallback, or no handler yet, it
    // declares nothing and gets every type.
    const { query } = rest;
    const declared = () => {
      const more = typeof query === 'function' ? query() : query;
      if (this.#fallback || this.#handlers.size === 0) return { ...more };
      return { ...more, handles: [...this.#handlers.keys()].join(',') };
    };
    this.#client = new WshubClient(url, { ...rest, query: declared, autoConnect: false, envelope: 'standard' });
    if (http !== false) this.#http = new WshubHttp(http || url, { token: options.token, fetch });
    this.#client.on('client_message', (data) => this.#request(data));
    this.#client.on('open', (welcome) => {
      this.#generation += 1;
      if (welcome.service === true) return this.#settleReady(null, welcome);
      // A hub without auth lets any token in, as an ordinary client: its
      // requests would never come here. Say so, and do not go on as one.
      const error = new WshubError(
        'wshub: the hub took this connection for an ordinary client, not a service connection: give the admin token (--admin-token) or a token with the service grant',
        'not_a_service',
      );
      this.#refusal = error;
      const heard = this.#settleReady(error) > 0;
      this.#client.close('Not a service connection');
      this.#report(error, 'wshub: not a service connection:', heard);
    });
    this.#client.on('close', (event) => {
      // The hub has told each waiting client `busy`: stop their handlers' output.
      this.#generation += 1;
      for (const req of this.#inFlight) req.abort();
      this.#inFlight.clear();
      if (!event.willReconnect) {
        this.#settleReady(
          new WshubError(`wshub: the service stopped (close ${event.code} ${event.reason})`, 'closed', undefined, {
            closeCode: event.code,
            closeReason: event.reason,
          }),
        );
      }
    });
    if (autoConnect) this.connect();
  }

  /** `connecting`, `open` or `closed`. */
  get state() {
    return this.#client.state;
  }

  /** This connection's client id. */
  get clientId() {
    return this.#client.clientId;
  }

  /** The WshubClient underneath (its `on('open' | 'close' | 'reconnecting' | 'error')`). */
  get client() {
    return this.#client;
  }

  /** Starts connecting (with `autoConnect: false`, or after `close()`). */
  connect() {
    if (this.#client.state === 'closed') this.#refusal = null;
    this.#closed = false;
    this.#client.connect();
  }

  /**
   * Resolves with the welcome of the next service connection (at once if
   * open). Rejects if the service stops first (`closed`), or if the hub took
   * the connection for an ordinary client (`not_a_service`: a wrong or
   * missing admin token on a hub without auth).
   */
  ready() {
    const welcome = this.#client.welcome;
    if (this.#client.state === 'open' && welcome && welcome.service === true) return Promise.resolve(welcome);
    if (this.#refusal && this.#client.state === 'closed') return Promise.reject(this.#refusal);
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Settles `ready()`'s waiters, with the welcome or rejected with `error`; how many there were. */
  #settleReady(error, welcome) {
    const waiters = this.#readyWaiters.splice(0);
    for (const waiter of waiters) {
      if (error) waiter.reject(error);
      else waiter.resolve(welcome);
    }
    return waiters.length;
  }

  /** Closes the connection for good: what it is asked to do next rejects with `closed` (`connect()` starts again). */
  close(reason = 'Service closed') {
    this.#closed = true;
    this.#client.close(reason);
  }

  /**
   * `open`, `close`, `reconnecting`: as WshubClient's; `error`: the
   * connection's errors, and handlers that failed after replying.
   */
  on(type, handler) {
    // Only a service connection's welcome is an `open` of the service.
    if (type === 'open') return this.#client.on('open', (welcome) => welcome.service === true && handler(welcome));
    if (type !== 'error') return this.#client.on(type, handler);
    this.#errorListeners.add(handler);
    const off = this.#client.on('error', handler);
    return () => {
      this.#errorListeners.delete(handler);
      off();
    };
  }

  /**
   * Handles the clients' requests of `type`: `handler(req)` answers with
   * `req.reply(type, data)` (or `req.error(code, message)`), may stream with
   * `req.stream(type, data)` first, or returns the reply's data (replied
   * with the request's own `type`). A handler that throws answers
   * `error` with the thrown `code` (default `internal_error`).
   * Each connection declares the types with a handler when it opens, and
   * the hub sends it requests of those types only (every type once a
   * `fallback` is set, or while no handler is): register them before the
   * connection opens (in the same tick as the constructor, or before
   * `connect()` with `autoConnect: false`); a type added later is declared
   * at the next connection.
   * @returns {() => void} Removes the handler.
   */
  handle(type, handler) {
    this.#handlers.set(type, handler);
    return () => {
      if (this.#handlers.get(type) === handler) this.#handlers.delete(type);
    };
  }

  /** Handles the requests no `handle` takes (default: `error` `unknown_type`). */
  fallback(handler) {
    this.#fallback = handler;
  }

  // ---- Acting on clients -------------------------------------------------------

  /** One message to one client; resolves with 1 if it was there, 0 if not. */
  async send(clientId, type, data, { correlationId } = {}) {
    const message = { type };
    if (data !== undefined) message.data = data;
    if (correlationId !== undefined) message.correlationId = correlationId;
    const reply = await this.#command('send', { clientId, message });
    return reply.data.delivered;
  }

  /**
   * Publishes to one target: a channel (a string, or `{channel}`),
   * `{sessionId}`, `{userId}`, `{clientId}`, `'broadcast'` / `{broadcast: true}`
   * or `'authenticated'` / `{authenticated: true}`; `{batched: true}` holds it
   * for the hub's batch window. Resolves with the clients reached. Over the
   * HTTP API while the connection is down.
   */
  async publish(target, type, data, { batched = false } = {}) {
    const fields = targetFields(target);
    if (this.#closed) throw new WshubError('wshub: the service is closed', 'closed');
    if (this.#client.state !== 'open' && this.#http) return this.#http.publish(fields, type, data, { batched });
    const message = { ...fields, event: type };
    if (data !== undefined) message.data = data;
    if (batched) message.batched = true;
    const reply = await this.#command('publish', message);
    return reply.data.delivered;
  }

  /** Every client. */
  broadcast(type, data, options) {
    return this.publish({ broadcast: true }, type, data, options);
  }

  /** Subscribes a client to a channel (a string or `{channel}`) or `{sessionId}`; false: no such client. */
  async subscribe(clientId, topic) {
    return (await this.#command('subscribe', { clientId, ...topicFields(topic) })).data.done;
  }

  /** Unsubscribes a client from a topic, or (none) from every session; false: no such client. */
  async unsubscribe(clientId, topic) {
    const fields = topic === undefined ? {} : topicFields(topic);
    return (await this.#command('unsubscribe', { clientId, ...fields })).data.done;
  }

  /**
   * Closes a client's connection (a client id, or `{clientId}`) or every one
   * of a user (`{userId}`) with `code` (1000, or 3000 to 4999) and `reason`;
   * resolves with how many were closed.
   */
  async disconnect(who, { code, reason } = {}) {
    const fields = typeof who === 'string' ? { clientId: who } : who.userId !== undefined ? { userId: who.userId } : { clientId: who.clientId };
    if (code !== undefined) fields.code = code;
    if (reason !== undefined) fields.reason = reason;
    return (await this.#command('disconnect', fields)).data.count;
  }

  /** Merges keys into a client's metadata (`null` removes one); false: no such client. */
  async setMeta(clientId, meta) {
    return (await this.#command('set_meta', { clientId, data: meta })).data.done;
  }

  /** The clients subscribed to a channel (a string or `{channel}`) or `{sessionId}`. */
  async subscribers(topic) {
    return (await this.#command('subscribers', topicFields(topic))).data.clients;
  }

  /** Everyone online: `[{userId, status}]`. */
  async presence() {
    return (await this.#command('presence', {})).data.users;
  }

  /** The hub's counters and clients, as `GET /api/ws/stats` has them. */
  async stats() {
    return (await this.#command('stats', {})).data;
  }

  // ---- Inside ------------------------------------------------------------------

  /** @internal Sends a message on the connection as it is; false when down. */
  _transmit(message) {
    return this.#client.send(message);
  }

  /** A command to the hub, answered `ack` (or its own reply), or a WshubError. */
  #command(type, fields) {
    return this.#client.request(type, undefined, { timeout: this.#options.requestTimeout, ...fields });
  }

  async #request(forwarded) {
    if (!forwarded || !forwarded.message) return;
    const generation = this.#generation;
    const req = new ServiceRequest(this, () => generation === this.#generation, forwarded);
    this.#inFlight.add(req);
    try {
      const handler = this.#handlers.get(req.type) ?? this.#fallback;
      if (!handler) {
        req.error('unknown_type', `Unknown message type: ${req.type}`);
        return;
      }
      const result = await handler(req);
      if (!req.replied && !req.signal.aborted && req.correlationId !== undefined) req.reply(req.type, result ?? null);
    } catch (err) {
      if (!req.replied && generation === this.#generation) {
        const code = err && typeof err.code === 'string' ? err.code : 'internal_error';
        req.error(code, (err && err.message) || String(err));
      } else if (!req.signal.aborted) {
        this.#report(err);
      }
    } finally {
      this.#inFlight.delete(req);
    }
  }

  /**
   * Tells the `error` listeners (else the console, unless `heard` says a
   * caller got it already): a handler that failed after replying, or a
   * connection that is not a service's.
   */
  #report(err, what = 'wshub: a request handler failed after replying:', heard = false) {
    // A WshubError, as every `error` event is: the handler's own error is its `cause`.
    const error =
      err instanceof WshubError
        ? err
        : new WshubError(`${what} ${err && err.message !== undefined ? err.message : String(err)}`, 'handler', undefined, { cause: err });
    if (this.#errorListeners.size === 0) {
      if (!heard) console.error(what, error);
      return;
    }
    for (const listener of [...this.#errorListeners]) listener(error);
  }
}

export default WshubService;
