// React hooks over wshub.js. This module imports `react`; wshub.js does not.
//
//   const { isConnected, agentStatus, notifications, sendPresence } = useWebSocket(token);
//   const { isConnected, send, lastMessage } = useWebSocket({ sessionId, onMessage });
//   const { aiStatus, aiProgress, aiResult, aiError, subscribe } = useAIWebSocket(sessionId);
//
// Each hook owns one WshubClient for the component's life: it connects after
// mount, reconnects by wshub.js's rules, and closes on unmount. The URL
// defaults to the page's own host, `/ws`. Messages come in the standard
// envelope, so the payload is `message.data` (`message.data.progress`).

import { useCallback, useEffect, useRef, useState } from 'react';

import { WshubClient, defaultUrl } from './wshub.js';

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
 * `active()` is false once the client is being replaced.
 */
function useClient(options, setup) {
  const latest = useLatest(options);
  const setupRef = useLatest(setup);
  const [client, setClient] = useState(null);
  const [isConnected, setConnected] = useState(false);
  const tokenKey = typeof options.token === 'function' ? 'function' : options.token;

  useEffect(() => {
    let active = true;
    const o = latest.current;
    const reconnectInterval = o.reconnectInterval ?? 500;
    const created = new WshubClient(o.url || defaultUrl(), {
      ...o.client,
      WebSocket: o.WebSocket ?? (o.client && o.client.WebSocket),
      // Asked at every connect, so a new token prop is used on the next reconnect.
      token: () => {
        const token = latest.current.token;
        return typeof token === 'function' ? token() : token;
      },
      userId: o.userId,
      sessionId: o.sessionId,
      reconnect: o.reconnect ?? true,
      minDelay: reconnectInterval,
      maxDelay: Math.max(20000, reconnectInterval),
      maxAttempts: o.maxReconnectAttempts ?? Infinity,
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
      created.close();
    };
  }, [
    options.url,
    tokenKey,
    options.userId,
    options.sessionId,
    options.reconnect,
    options.reconnectInterval,
    options.maxReconnectAttempts,
    options.WebSocket,
  ]);

  return { client, isConnected };
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
