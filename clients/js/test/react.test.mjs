// The React hooks in Node (react-dom on jsdom) against the real hub: the two
// shapes of useWebSocket (a token: agent status, notifications, presence;
// options: send, lastMessage and the callbacks), useAIWebSocket's states
// from a session's AI messages, and the default URL from the page's host.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WshubClient } from '../wshub.js';
import { WebSocket, now, record, signJwt, startHub, startProxy, waitFor } from '../test-support/hub.mjs';
import { loadHooks, openPage, renderHook } from '../test-support/react-env.mjs';

const ADMIN = 'admin-secret';
const SECRET = 'react-test-secret-of-32-bytes!!!';
const cleanup = [];
let hub;
let open;
let hooks;
let closePage;

before(async () => {
  hub = await startHub(['--admin-token', ADMIN, '--presence-grace', '0']);
  open = await startHub(['--admin-token', ADMIN]);
  cleanup.push(() => hub.stop(), () => open.stop());
  closePage = openPage();
  hooks = await loadHooks();
});
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
  closePage();
});

function mount(useHook, ...args) {
  const probe = renderHook(useHook, ...args);
  cleanup.push(() => probe.unmount());
  return probe;
}

describe('useWebSocket(token)', () => {
  test('isConnected, agentStatus and notifications from the hub; sendPresence', async () => {
    const authed = await startHub(['--admin-token', ADMIN, '--jwt-secret', SECRET, '--presence-grace', '0']);
    cleanup.push(() => authed.stop());
    const token = signJwt(SECRET, { sub: 'react-user', exp: now() + 600 });
    const probe = mount(hooks.useWebSocket, token, { url: authed.url, WebSocket });
    await waitFor(() => probe.renders.length, 'the first render');
    assert.equal(probe.renders[0].isConnected, false, 'not connected at the first render');
    await probe.until((v) => v.isConnected, 'isConnected');
    assert.equal(probe.current.agentStatus, null);
    assert.deepEqual(probe.current.notifications, []);

    const status = { agentName: 'CLOUD_ASSISTANT', state: 'working', currentTask: 'Analyzing code', progress: 50 };
    await authed.post('/api/publish', { authenticated: true, type: 'agent_status', data: status }, ADMIN);
    await probe.until((v) => v.agentStatus, 'agentStatus');
    assert.deepEqual(probe.current.agentStatus, status);

    await authed.post('/api/publish', { userId: 'react-user', type: 'notification', data: { level: 'success', message: 'All tests passed!' } }, ADMIN);
    await authed.post('/api/publish', { userId: 'react-user', type: 'notification', data: { level: 'error', message: 'Task failed' } }, ADMIN);
    await probe.until((v) => v.notifications.length === 2, 'two notifications');
    assert.deepEqual(probe.current.notifications.map((n) => n.level), ['success', 'error']);

    const watcher = new WshubClient(authed.url, { WebSocket, token: signJwt(SECRET, { sub: 'watcher', exp: now() + 600 }) });
    cleanup.push(() => watcher.close());
    const seen = record(watcher);
    await seen.wait('open');
    await probe.current.sendPresence('busy');
    await seen.waitMessage('user_presence', (m) => m.data.userId === 'react-user' && m.data.status === 'busy');

    probe.unmount();
    await seen.waitMessage('user_presence', (m) => m.data.userId === 'react-user' && m.data.status === 'offline');
  });
});

describe('useWebSocket(options)', () => {
  test('send, lastMessage and the callbacks; it reconnects after a cut', async () => {
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    const calls = { open: [], close: [], message: [] };
    const options = {
      url: gate.url,
      sessionId: 'react-session',
      userId: 'canvas-user',
      WebSocket,
      reconnect: true,
      reconnectInterval: 20,
      maxReconnectAttempts: 10,
      onOpen: (welcome) => calls.open.push(welcome),
      onClose: (event) => calls.close.push(event),
      onMessage: (message) => calls.message.push(message),
    };
    const probe = mount(hooks.useWebSocket, options);
    await probe.until((v) => v.isConnected, 'isConnected');
    assert.equal(calls.open[0].userId, 'canvas-user');
    assert.deepEqual(probe.current.client.subscriptions, ['session:react-session']);

    await waitFor(() => calls.message.some((m) => m.type === 'subscribed'), 'the session confirmed');
    await hub.post('/api/publish', { sessionId: 'react-session', type: 'ai_progress', data: { progress: { chunksReceived: 25, contentLength: 1250 } } }, ADMIN);
    await probe.until((v) => v.lastMessage && v.lastMessage.type === 'ai_progress', 'lastMessage');
    assert.deepEqual(probe.current.lastMessage.data.progress, { chunksReceived: 25, contentLength: 1250 });
    assert.equal(probe.current.lastMessage.sessionId, 'react-session');
    assert.ok(calls.message.some((m) => m.type === 'ai_progress'));

    assert.equal(probe.current.send({ type: 'ping', correlationId: 'from-react' }), true);
    await probe.until((v) => v.lastMessage.type === 'pong' && v.lastMessage.correlationId === 'from-react', 'the pong');

    gate.cut();
    // The reconnect may come before React renders the disconnect: follow the callbacks.
    await waitFor(() => calls.close.length === 1, 'onClose');
    assert.equal(calls.close[0].code, 1006);
    assert.equal(calls.close[0].willReconnect, true);
    await waitFor(() => calls.open.length === 2, 'onOpen again');
    await probe.until((v) => v.isConnected, 'connected again');
    assert.equal(calls.open[1].reconnected, true);
  });

  test('maxReconnectAttempts: 0 gives up at the first close', async () => {
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    const closes = [];
    const probe = mount(hooks.useWebSocket, { url: gate.url, WebSocket, maxReconnectAttempts: 0, onClose: (e) => closes.push(e) });
    await probe.until((v) => v.isConnected, 'isConnected');
    gate.cut();
    await probe.until((v) => !v.isConnected, 'disconnected');
    assert.equal(closes[0].action, 'stop');
    assert.equal(probe.current.client.state, 'closed');
  });
});

describe('useAIWebSocket(sessionId)', () => {
  test('idle, started, progress (batched too), complete, error; subscribe follows another session', async () => {
    const probe = mount(hooks.useAIWebSocket, 'ai-session', { url: hub.url, WebSocket });
    await probe.until((v) => v.isConnected, 'isConnected');
    assert.equal(probe.current.aiStatus, 'idle');
    await waitFor(async () => (await hub.get('/api/subscribers?sessionId=ai-session', ADMIN)).data.clients.length === 1, 'the session subscribed');
    const to = (type, data, extra = {}) => hub.post('/api/publish', { sessionId: 'ai-session', type, data, ...extra }, ADMIN);

    await to('ai_start', { task: { prompt: 'Create a React component', mode: 'generate' } });
    await probe.until((v) => v.aiStatus === 'started', 'started');
    assert.equal(probe.current.aiTask.mode, 'generate');

    await to('ai_progress', { progress: { chunksReceived: 25, contentLength: 1250 } }, { batched: true });
    await to('ai_progress', { progress: { chunksReceived: 50, contentLength: 2500 } }, { batched: true });
    await probe.until((v) => v.aiProgress && v.aiProgress.chunksReceived === 50, 'the second progress');
    assert.equal(probe.current.aiStatus, 'progress');

    await to('ai_complete', { result: { mode: 'generate', contentLength: 5000, chunks: 100 } });
    await probe.until((v) => v.aiStatus === 'complete', 'complete');
    assert.deepEqual(probe.current.aiResult, { mode: 'generate', contentLength: 5000, chunks: 100 });

    await to('ai_start', { task: { prompt: 'again', mode: 'generate' } });
    await probe.until((v) => v.aiStatus === 'started', 'started again');
    assert.deepEqual([probe.current.aiProgress, probe.current.aiResult, probe.current.aiError], [null, null, null]);
    await to('ai_error', { error: { message: 'API rate limit exceeded', type: 'rate_limit_error' } });
    await probe.until((v) => v.aiStatus === 'error', 'error');
    assert.equal(probe.current.aiError.message, 'API rate limit exceeded');

    await probe.current.subscribe('other-session');
    await hub.post('/api/publish', { sessionId: 'other-session', type: 'ai_complete', data: { result: { chunks: 1 } } }, ADMIN);
    await probe.until((v) => v.aiStatus === 'complete' && v.aiResult.chunks === 1, 'the other session');
  });

  test('a new sessionId prop follows the new session', async () => {
    const probe = mount(hooks.useAIWebSocket, 'first-session', { url: hub.url, WebSocket });
    await probe.until((v) => v.isConnected, 'isConnected');
    const firstClient = probe.current.client;
    probe.rerender('second-session', { url: hub.url, WebSocket });
    await probe.until((v) => v.isConnected && v.client !== firstClient, 'the new client');
    assert.equal(firstClient.state, 'closed');
    await waitFor(async () => (await hub.get('/api/subscribers?sessionId=second-session', ADMIN)).data.clients.length === 1, 'the new session subscribed');
    await hub.post('/api/publish', { sessionId: 'second-session', type: 'ai_start', data: { task: { mode: 'edit' } } }, ADMIN);
    await probe.until((v) => v.aiStatus === 'started' && v.aiTask.mode === 'edit', 'started');
  });
});

describe('the default URL', () => {
  test("without url the hooks connect to the page's host, /ws", async () => {
    const restore = openPage(`http://${open.addr}/app/index.html`);
    try {
      const probe = mount(hooks.useWebSocket, { userId: 'page-user', WebSocket });
      await probe.until((v) => v.isConnected, 'isConnected');
      assert.equal(probe.current.client.welcome.userId, 'page-user');
      probe.unmount();
    } finally {
      restore();
    }
  });
});
