'use client';

// React hooks over wshub.js (`@wshub/client/react`). This module imports
// `react`; wshub.js does not. It is a client module (`'use client'`): React
// Server Components frameworks keep it out of the server.
//
//   <WshubProvider url="wss://example.com/ws" options={{ token: getToken }}>...</WshubProvider>
//   const { isConnected, state } = useWshub();
//   const { messages, subscribed } = useChannel('files');
//   const { users, setStatus } = usePresence();
//   const { send, reply, error, loading } = useRequest('agent:start');
//   useEvent('notification', (data) => toast(data.message));
//
// And the seeds' own hook shapes:
//
//   const { isConnected, agentStatus, notifications, sendPresence } = useWebSocket(token);
//   const { isConnected, send, lastMessage } = useWebSocket({ sessionId, onMessage });
//   const { aiStatus, aiProgress, aiResult, aiError, subscribe } = useAIWebSocket(sessionId);
//
// A hook given connection options (or the provider given a `url`) owns one
// WshubClient for the component's life: it connects after mount,
// reconnects by wshub.js's rules, and closes on unmount. Without them, the
// hooks use the provider's client. The URL defaults to the page's own host,
// `/ws`. Messages come in the standard envelope, so the payload is
// `message.data` (`message.data.progress`). Types: react.d.ts.

import { createContext, createElement, useCallback, useContext, useEffect, useRef, useState } from 'react';

import { WshubClient, defaultUrl, isWshubClient } from './wshub.js';

/**
 * @typedef {object} HookOptions
 * @property {string} [url] The hub (default: `ws(s)://<page host>/ws`).
 * @property {string} [sessionId]
 * @property {string} [userId]
 * @property {string | (() => string | Promise<string>)} [token]
 * @property {(message: import('./wshub.js').WshubMessage) => void} [onMessage] Every message from the hub.
 * @property {(welcome: import('./wshub.js').WelcomeEvent) => void} [onOpen]
 * @property {(event: import('./wshub.js').CloseEvent) => void} [onClose]
 * @property {(error: Error) => void} [onError]
 * @property {boolean} [reconnect=true]
 * @property {number} [reconnectInterval=500] The backoff's base delay in ms (wshub.js `minDelay`).
 * @property {number} [maxReconnectAttempts=Infinity]
 * @property {Function} [WebSocket] A WebSocket constructor (outside browsers).
 * @property {import('./wshub.js').WshubOptions} [client] Any other WshubClient option.
 */

const useLatest = (value) => {
  const ref = useRef(value);
  ref.current = value;
  return ref;
};

/**
 * One client for the component's life, made again when what it connects
 * with changes. `setup(client, active)` adds the hook's own handlers;
 * `active()` is false once the client is being replaced. With `enabled`
 * false it makes none (the hook uses another client).
 */
function useClient(options, setup, enabled = true) {
  const latest = useLatest(options);
  const setupRef = useLatest(setup);
  const [client, setClient] = useState(null);
  const [isConnected, setConnected] = useState(false);
  const tokenKey = typeof options.token === 'function' ? 'function' : options.token;

  useEffect(() => {
    if (!enabled) return undefined;
    let active = true;
    const o = latest.current;
    const more = o.client || {};
    const reconnectInterval = o.reconnectInterval ?? more.minDelay ?? 500;
    const created = new WshubClient(o.url || defaultUrl(), {
      ...o.client,
      WebSocket: o.WebSocket ?? (o.client && o.client.WebSocket),
      // Asked at every connect, so a new token prop is used on the next reconnect.
      token: () => {
        const token = latest.current.token ?? (latest.current.client || {}).token;
        return typeof token === 'function' ? token() : token;
      },
      userId: o.userId ?? more.userId,
      sessionId: o.sessionId ?? more.sessionId,
      reconnect: o.reconnect ?? more.reconnect ?? true,
      minDelay: reconnectInterval,
      maxDelay: more.maxDelay ?? Math.max(20000, reconnectInterval),
      maxAttempts: o.maxReconnectAttempts ?? more.maxAttempts ?? Infinity,
    });
    created.on('open', (welcome) => {
      if (!active) return;
      setConnected(true);
      if (latest.current.onOpen) latest.current.onOpen(welcome);
    });
    created.on('close', (event) => {
      if (!active) return;
      setConnected(false);
      if (latest.current.onClose) latest.current.onClose(event);
    });
    created.on('error', (error) => {
      if (active && latest.current.onError) latest.current.onError(error);
    });
    created.onAny((message) => {
      if (active && latest.current.onMessage) latest.current.onMessage(message);
    });
    setupRef.current(created, () => active);
    setClient(created);
    return () => {
      active = false;
      setConnected(false);
      setClient(null);
      created.close();
    };
  }, [
    enabled,
    options.url,
    tokenKey,
    options.userId,
    options.sessionId,
    options.reconnect,
    options.reconnectInterval,
    options.maxReconnectAttempts,
    options.WebSocket,
  ]);

  return { client: enabled ? client : null, isConnected: enabled && isConnected };
}

/** A promise nobody has to catch: the hook reports failures through onError. */
const quiet = (promise) => {
  promise.catch(() => {});
  return promise;
};

/**
 * Called with a token (Code Cloud Agents): `{isConnected, agentStatus, notifications, sendPresence}`,
 * from `agent_status` and `notification` messages.
 *
 * Called with options (AI Canvas): `{isConnected, send, lastMessage}`; `send(message)`
 * sends `{type, ...}` and returns false when not connected.
 *
 * Both also return `client`, the WshubClient (null before the first effect).
 *
 * @param {string | HookOptions} tokenOrOptions
 * @param {HookOptions} [more] With a token: the other options (`url`, ...).
 */
export function useWebSocket(tokenOrOptions, more = {}) {
  const byToken = typeof tokenOrOptions === 'string';
  const options = byToken ? { ...more, token: tokenOrOptions } : { ...more, ...(tokenOrOptions || {}) };
  const [agentStatus, setAgentStatus] = useState(null);
  const [notifications, setNotifications] = useState([]);
  const [lastMessage, setLastMessage] = useState(null);

  const { client, isConnected } = useClient(options, (created, active) => {
    if (byToken) {
      created.on('agent_status', (data) => active() && setAgentStatus(data));
      created.on('notification', (data) => active() && setNotifications((list) => [...list, data]));
    } else {
      created.onAny((message) => active() && setLastMessage(message));
    }
  });

  const sendPresence = useCallback(
    (status) => (client ? quiet(client.setPresence(status)) : Promise.resolve()),
    [client],
  );
  const send = useCallback((message) => (client ? client.send(message) : false), [client]);

  return byToken
    ? { isConnected, agentStatus, notifications, sendPresence, client }
    : { isConnected, send, lastMessage, client };
}

/**
 * AI progress of one session (AI Canvas): `ai_start`, `ai_progress`,
 * `ai_complete` and `ai_error` set `aiStatus` (`idle`, `started`,
 * `progress`, `complete`, `error`) and `aiProgress` (`data.progress`),
 * `aiResult` (`data.result`), `aiError` (`data.error`); `aiTask`
 * (`data.task`) too. `subscribe(id)` follows another session as well.
 *
 * @param {string} sessionId
 * @param {HookOptions} [options]
 */
export function useAIWebSocket(sessionId, options = {}) {
  const [ai, setAi] = useState({ aiStatus: 'idle', aiTask: null, aiProgress: null, aiResult: null, aiError: null });
  const field = (data, name) => (data && typeof data === 'object' && name in data ? data[name] : data ?? null);

  const { client, isConnected } = useClient({ ...options, sessionId }, (created, active) => {
    const on = (type, next) => created.on(type, (data) => active() && setAi((state) => ({ ...state, ...next(data) })));
    on('ai_start', (data) => ({ aiStatus: 'started', aiTask: field(data, 'task'), aiProgress: null, aiResult: null, aiError: null }));
    on('ai_progress', (data) => ({ aiStatus: 'progress', aiProgress: field(data, 'progress') }));
    on('ai_complete', (data) => ({ aiStatus: 'complete', aiResult: field(data, 'result') }));
    on('ai_error', (data) => ({ aiStatus: 'error', aiError: field(data, 'error') }));
  });

  const subscribe = useCallback(
    (id = sessionId) => (client ? quiet(client.subscribeSession(id)) : Promise.resolve()),
    [client, sessionId],
  );

  return { isConnected, ...ai, subscribe, client };
}

// ---- Hooks over one shared client ------------------------------------------

const WshubContext = createContext(null);

/**
 * Gives the components below one client: `client` (yours, you close it), or
 * one made from `url` and `options` (WshubClient options) that lives as long
 * as the provider.
 * @param {{client?: WshubClient, url?: string, options?: object, children?: any}} props
 */
export function WshubProvider({ client, url, options, children }) {
  const { client: owned } = useClient({ url, ...options, client: options }, () => {}, !client);
  return createElement(WshubContext.Provider, { value: client ?? owned }, children);
}

/** The client of the nearest WshubProvider (null before it connected once, or without one). */
export function useWshubClient() {
  return useContext(WshubContext);
}

/** The client a hook works on: its `client` option, else the provider's. */
function useTarget(options) {
  const provided = useContext(WshubContext);
  // By the brand, not instanceof: the client may come from the package's
  // other copy (CommonJS where this is ESM, or the reverse).
  return (options && isWshubClient(options.client) ? options.client : null) ?? provided;
}

/** Follows a client's connection: state, welcome and the last error (until it is open again). */
function useConnection(client) {
  const [view, setView] = useState(() => snapshot(client, null));
  useEffect(() => {
    setView(snapshot(client, null));
    if (!client) return undefined;
    const offs = [
      // Connected again: the error that came before it is over.
      client.on('open', () => setView(() => snapshot(client, null))),
      client.on('close', () => setView((v) => snapshot(client, v.error))),
      client.on('reconnecting', () => setView((v) => snapshot(client, v.error))),
      client.on('error', (error) => setView(() => snapshot(client, error))),
    ];
    return () => offs.forEach((off) => off());
  }, [client]);
  return view;
}

function snapshot(client, error) {
  const state = client ? client.state : 'closed';
  return { client, state, isConnected: state === 'open', welcome: client ? client.welcome : null, error };
}

/**
 * The connection: `{client, state, isConnected, welcome, error}`.
 * `useWshub()` follows the provider's client; `useWshub({url?, token?, ...})`
 * owns one for the component's life (the options of `useWebSocket`).
 * @param {object} [options]
 */
export function useWshub(options) {
  const owns = options !== undefined && !isWshubClient(options.client);
  const provided = useTarget(owns ? undefined : options);
  const { client: owned } = useClient(owns ? options : {}, () => {}, owns);
  return useConnection(owns ? owned : provided);
}

/**
 * Calls `handler(data, message)` for every message of `type` while mounted
 * (the latest handler: it may change at every render).
 * @param {string} type
 * @param {(data: any, message: object) => void} handler
 * @param {{client?: WshubClient}} [options]
 */
export function useEvent(type, handler, options) {
  const client = useTarget(options);
  const latest = useLatest(handler);
  useEffect(() => {
    if (!client) return undefined;
    return client.on(type, (...args) => latest.current(...args));
  }, [client, type]);
}

/** Hub messages that answer a client, not publications. */
const REPLIES = new Set(['subscribed', 'unsubscribed', 'published', 'ack', 'error', 'pong', 'presence', 'subscribers', 'connection', 'auth']);

/** How many components of a client hold each channel: the last to leave unsubscribes. */
const holders = new WeakMap();

function hold(client, channel, delta) {
  let counts = holders.get(client);
  if (!counts) holders.set(client, (counts = new Map()));
  const count = (counts.get(channel) ?? 0) + delta;
  if (count > 0) counts.set(channel, count);
  else counts.delete(channel);
  return count;
}

/**
 * Subscribes to a channel while mounted (the subscription outlives
 * reconnects, with recovery) and keeps its publications:
 * `{messages, lastMessage, subscribed, error, publish}`. `subscribed` is
 * the hub's `{seq, epoch, recovered?}`; `messages` the last `keep` (100)
 * publications, or only those of `types`.
 * @param {string | null | undefined} channel No channel, no subscription.
 * @param {{client?: WshubClient, keep?: number, types?: string[], onMessage?: (message: object) => void}} [options]
 */
export function useChannel(channel, options = {}) {
  const client = useTarget(options);
  const latest = useLatest(options);
  const [view, setView] = useState({ messages: [], lastMessage: null, subscribed: null, error: null });
  useEffect(() => {
    setView({ messages: [], lastMessage: null, subscribed: null, error: null });
    if (!client || !channel) return undefined;
    let active = true;
    const offAny = client.onAny((message) => {
      if (!active || message.channel !== channel || REPLIES.has(message.type)) return;
      const { types, keep = 100, onMessage } = latest.current;
      if (types && !types.includes(message.type)) return;
      if (onMessage) onMessage(message);
      setView((v) => ({ ...v, lastMessage: message, messages: [...v.messages, message].slice(-keep) }));
    });
    // Every welcome re-sends it; `subscribed` follows the latest answer.
    const offSubscribed = client.on('subscribed', (data, message) => {
      if (active && message.channel === channel) setView((v) => ({ ...v, subscribed: data, error: null }));
    });
    hold(client, channel, +1);
    client.subscribe(channel).then(
      (data) => active && setView((v) => ({ ...v, subscribed: data, error: null })),
      (error) => active && setView((v) => ({ ...v, error })),
    );
    return () => {
      active = false;
      offAny();
      offSubscribed();
      if (hold(client, channel, -1) === 0 && client.state !== 'closed') quiet(client.unsubscribe(channel));
    };
  }, [client, channel]);
  const publish = useCallback(
    (event, data) => (client && channel ? client.publish(channel, event, data) : Promise.reject(new Error('wshub: no client or channel'))),
    [client, channel],
  );
  return { ...view, publish };
}

/**
 * Who is online: `{users, statusOf, setStatus, error}`. Asked at every
 * welcome, then kept current from the hub's `user_presence` messages
 * (`offline` removes a user).
 * @param {{client?: WshubClient}} [options]
 */
export function usePresence(options) {
  const client = useTarget(options);
  const [view, setView] = useState({ users: [], error: null });
  useEffect(() => {
    setView({ users: [], error: null });
    if (!client) return undefined;
    let active = true;
    const load = () =>
      client.presence().then(
        (users) => active && setView({ users, error: null }),
        (error) => active && setView((v) => ({ ...v, error })),
      );
    const offOpen = client.on('open', load);
    const offPresence = client.on('user_presence', (data) => {
      if (!active || !data || typeof data.userId !== 'string') return;
      setView((v) => {
        const others = v.users.filter((u) => u.userId !== data.userId);
        const users = data.status === 'offline' ? others : [...others, { userId: data.userId, status: data.status }];
        users.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
        return { ...v, users };
      });
    });
    if (client.state === 'open') load();
    return () => {
      active = false;
      offOpen();
      offPresence();
    };
  }, [client]);
  const statusOf = useCallback((userId) => {
    const entry = view.users.find((u) => u.userId === userId);
    return entry ? entry.status : 'offline';
  }, [view.users]);
  const setStatus = useCallback(
    (status) => (client ? client.setPresence(status) : Promise.reject(new Error('wshub: no client'))),
    [client],
  );
  return { users: view.users, statusOf, setStatus, error: view.error };
}

/**
 * A request of `type` to the application: `{send, reply, data, error,
 * loading}`. `send(data, options?)` resolves with the reply (and rejects
 * with the WshubError, as `request()`); the state follows the latest call.
 * @param {string} type
 * @param {{client?: WshubClient, timeout?: number}} [options]
 */
export function useRequest(type, options = {}) {
  const client = useTarget(options);
  const [view, setView] = useState({ reply: null, data: null, error: null, loading: false });
  const calls = useRef(0);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  const timeout = options.timeout;
  const send = useCallback(
    (data, fields = {}) => {
      if (!client) return Promise.reject(new Error('wshub: no client yet'));
      const call = ++calls.current;
      const current = () => mounted.current && call === calls.current;
      setView((v) => ({ ...v, error: null, loading: true }));
      const request = client.request(type, data, timeout === undefined ? fields : { timeout, ...fields });
      request.then(
        (reply) => current() && setView({ reply, data: reply.data, error: null, loading: false }),
        (error) => current() && setView((v) => ({ ...v, error, loading: false })),
      );
      return request;
    },
    [client, type, timeout],
  );
  return { send, ...view };
}
