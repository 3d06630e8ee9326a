// The Node backend SDK (server.js) against the real hub: requests by type
// (replies, returned values, errors, streams to the session), every target
// of a publish, the HTTP fallback while the connection is down, acting on
// clients, presence and stats, and the reconnect after a cut with what it
// means for requests in flight.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { WshubClient, WshubError } from '../wshub.js';
import { WshubHttp, WshubService } from '../server.js';
import { WebSocket, record, startHub, startProxy, waitFor, within } from '../test-support/hub.mjs';

const ADMIN = 'server-sdk-admin';
const cleanup = [];
// Requests go round the service connections of a hub that handle their
// type: each test has its own hub.
let hub;

beforeEach(async () => {
  hub = await startHub(['--admin-token', ADMIN, '--presence-grace', '0', '--batch-window', '0.05']);
  cleanup.push(() => hub.stop());
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function client(url, options = {}) {
  const c = new WshubClient(url, { WebSocket, minDelay: 20, maxDelay: 200, ...options });
  cleanup.push(() => c.close());
  return c;
}

function service(url = hub.url, options = {}) {
  const s = new WshubService(url, { WebSocket, token: ADMIN, minDelay: 20, maxDelay: 200, ...options });
  cleanup.push(() => s.close());
  return s;
}

/** A client that is open, with its recorder. */
async function openClient(options = {}, url = hub.url) {
  const c = client(url, options);
  const events = record(c);
  await events.wait('open');
  return { c, events };
}

describe('requests by type', () => {
  test('reply, a returned value, an error, an unknown type, a fallback', async () => {
    const backend = service();
    backend.handle('math:add', (req) => req.data.a + req.data.b);
    backend.handle('agent:start', (req) => {
      assert.equal(req.userId, 'ann');
      assert.equal(req.sessionId, 'ann-session');
      req.reply('agent:started', { sessionId: req.sessionId });
    });
    backend.handle('agent:fail', () => {
      throw Object.assign(new Error('No agent for that project'), { code: 'agent_failed' });
    });
    backend.handle('agent:crash', () => {
      throw new Error('boom');
    });
    await backend.ready();
    const { c } = await openClient({ userId: 'ann', sessionId: 'ann-session' });

    const started = await c.request('agent:start', { projectId: 'p1' });
    assert.equal(started.type, 'agent:started');
    assert.deepEqual(started.data, { sessionId: 'ann-session' });
    const sum = await c.request('math:add', { a: 2, b: 3 });
    assert.deepEqual([sum.type, sum.data], ['math:add', 5]);
    // A flat message's own fields are its data.
    const flat = await c.request('math:add', undefined, { a: 1, b: 1 });
    assert.equal(flat.data, 2);

    const failed = await c.request('agent:fail', {}).catch((err) => err);
    assert.ok(failed instanceof WshubError);
    assert.deepEqual([failed.code, failed.message], ['agent_failed', 'No agent for that project']);
    assert.equal((await c.request('agent:crash').catch((err) => err)).code, 'internal_error');
    const unknown = await c.request('agent:nothing').catch((err) => err);
    assert.deepEqual([unknown.code, unknown.message], ['unknown_type', 'Unknown message type: agent:nothing']);

    // A service with a fallback declares nothing: it gets the types no
    // other service declared.
    const catchAll = service();
    catchAll.fallback((req) => ({ echoed: req.type }));
    await catchAll.ready();
    assert.deepEqual((await c.request('anything:else')).data, { echoed: 'anything:else' });
  });

  test('services with different handlers each get the types they declared', async () => {
    const agents = service();
    agents.handle('agent:start', (req) => ({ by: 'agents', clientId: req.clientId }));
    agents.handle('agent:cancel', () => ({ by: 'agents' }));
    const files = service();
    files.handle('file:read', () => ({ by: 'files' }));
    await Promise.all([agents.ready(), files.ready()]);
    const { c } = await openClient();
    for (let n = 0; n < 3; n += 1) {
      assert.equal((await c.request('agent:start')).data.by, 'agents');
      assert.equal((await c.request('file:read')).data.by, 'files');
      assert.equal((await c.request('agent:cancel')).data.by, 'agents');
    }
    const unknown = await c.request('chat:send').catch((err) => err);
    assert.equal(unknown.code, 'unknown_type');
  });

  test("a streamed answer goes to the client's session, in order, before the reply", async () => {
    const backend = service();
    backend.handle('agent:message', async (req) => {
      for (const word of req.data.content.split(' ')) req.stream('stream:chunk', { sessionId: req.sessionId, content: word });
      req.reply('stream:complete', { sessionId: req.sessionId });
    });
    await backend.ready();
    const { c, events } = await openClient({ sessionId: 'stream-session' });
    await events.waitMessage('subscribed', (m) => m.sessionId === 'stream-session');
    const done = await c.request('agent:message', { content: 'one two three' });
    assert.equal(done.type, 'stream:complete');
    const chunks = events.messages('stream:chunk');
    assert.deepEqual(chunks.map((m) => m.data.content), ['one', 'two', 'three']);
    // Publications to the session: each has its place in the stream.
    assert.deepEqual(chunks.map((m) => m.seq - chunks[0].seq), [0, 1, 2]);
    assert.ok(chunks.every((m) => m.sessionId === 'stream-session'));

    // Without a session, to the client itself.
    const { c: lone, events: loneEvents } = await openClient();
    await lone.request('agent:message', { content: 'just me' });
    assert.deepEqual(loneEvents.messages('stream:chunk').map((m) => m.data.content), ['just', 'me']);
  });
});

describe('acting on clients', () => {
  test('send, publish to every target, batched; the counts come back', async () => {
    const backend = service();
    await backend.ready();
    const { c: amy, events: amyEvents } = await openClient({ userId: 'amy', sessionId: 'amy-s' });
    const { c: bob, events: bobEvents } = await openClient({ userId: 'bob' });
    await amyEvents.waitMessage('subscribed', (m) => m.sessionId === 'amy-s');
    await bob.subscribe('news');

    assert.equal(await backend.send(amy.clientId, 'notification', { level: 'info', message: 'hi amy' }), 1);
    assert.equal((await amyEvents.waitMessage('notification')).data.message, 'hi amy');
    assert.equal(await backend.send('c_nobody', 'notification', { level: 'info', message: 'x' }), 0);

    assert.equal(await backend.publish('news', 'event', { headline: 1 }), 1);
    assert.equal((await bobEvents.waitMessage('event')).channel, 'news');
    assert.equal(await backend.publish({ sessionId: 'amy-s' }, 'ai_progress', { progress: { chunksReceived: 1, contentLength: 5 } }), 1);
    assert.equal((await amyEvents.waitMessage('ai_progress')).sessionId, 'amy-s');
    assert.equal(await backend.publish({ userId: 'bob' }, 'chat_message', { conversationId: 'c', messageId: 'm', content: 'yo', sender: 's', timestamp: 't' }), 1);
    await bobEvents.waitMessage('chat_message');
    assert.equal(await backend.publish({ clientId: bob.clientId }, 'direct', { n: 1 }), 1);
    await bobEvents.waitMessage('direct');
    assert.equal(await backend.broadcast('notification', { level: 'info', message: 'everyone' }), 3);
    await amyEvents.waitMessage('notification', (m) => m.data.message === 'everyone');
    await bobEvents.waitMessage('notification', (m) => m.data.message === 'everyone');
    assert.ok((await backend.publish('authenticated', 'agent_status', { agentName: 'A', state: 'idle' })) >= 2);
    await bobEvents.waitMessage('agent_status');

    await backend.publish({ sessionId: 'amy-s' }, 'ai_progress', { progress: { chunksReceived: 2, contentLength: 10 } }, { batched: true });
    await backend.publish({ sessionId: 'amy-s' }, 'ai_progress', { progress: { chunksReceived: 3, contentLength: 15 } }, { batched: true });
    await waitFor(() => amyEvents.messages('ai_progress').filter((m) => m.batched).length === 2, 'the batch');

    await assert.rejects(backend.publish({ channel: 'a', userId: 'b' }, 'x'), /exactly one target/);
  });

  test('subscribe, unsubscribe, meta, subscribers, disconnect, presence, stats', async () => {
    const backend = service();
    await backend.ready();
    const { c: cy, events } = await openClient({ userId: 'cy' });

    assert.equal(await backend.subscribe(cy.clientId, 'git'), true);
    await events.waitMessage('subscribed', (m) => m.channel === 'git');
    assert.equal(await backend.subscribe(cy.clientId, { sessionId: 'cy-s' }), true);
    await events.waitMessage('subscribed', (m) => m.sessionId === 'cy-s');
    assert.equal(await backend.subscribe('c_nobody', 'git'), false);

    assert.equal(await backend.setMeta(cy.clientId, { role: 'reviewer' }), true);
    const listening = await backend.subscribers('git');
    assert.deepEqual(listening.map((x) => [x.id, x.userId, x.meta]), [[cy.clientId, 'cy', { role: 'reviewer' }]]);
    assert.equal((await backend.subscribers({ sessionId: 'cy-s' })).length, 1);

    assert.equal(await backend.unsubscribe(cy.clientId, 'git'), true);
    await events.waitMessage('unsubscribed', (m) => m.channel === 'git');
    assert.deepEqual(await backend.subscribers('git'), []);

    assert.ok((await backend.presence()).some((u) => u.userId === 'cy' && u.status === 'online'));
    const stats = await backend.stats();
    assert.ok(stats.activeConnections >= 2);
    assert.ok(stats.serviceConnections >= 1);
    assert.ok(stats.clients.some((x) => x.id === cy.clientId));

    assert.equal(await backend.disconnect({ userId: 'cy' }, { code: 4003, reason: 'Moved' }), 1);
    const closed = await events.wait('close');
    assert.deepEqual([closed.code, closed.reason], [4003, 'Moved']);
  });

  test('one-shot publishes over HTTP, and the fallback while the connection is down', async () => {
    const http = new WshubHttp(hub.url, { token: ADMIN });
    const { c, events } = await openClient();
    await c.subscribe('http-news');
    assert.equal(await http.publish('http-news', 'event', { n: 1 }), 1);
    await events.waitMessage('event', (m) => m.data.n === 1);
    assert.ok(Array.isArray(await http.presence()));
    assert.ok((await http.stats()).activeConnections >= 1);
    const refused = await new WshubHttp(hub.url, { token: 'wrong' }).publish('x', 'event', 1).catch((err) => err);
    assert.equal(refused.code, 'unauthorized', refused.message);

    // A service whose hub cannot be reached publishes over HTTP meanwhile.
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    gate.refuse = true;
    const backend = service(gate.url, { http: hub.http });
    assert.equal(await backend.publish('http-news', 'event', { n: 2 }), 1);
    await events.waitMessage('event', (m) => m.data.n === 2);
    assert.notEqual(backend.state, 'open');
  });
});

describe('a handler that fails after replying', () => {
  test("is an 'error' WshubError (code handler, the throw its cause); the client has its reply", async () => {
    const backend = service();
    const errors = [];
    backend.on('error', (err) => errors.push(err));
    backend.handle('late:fail', (req) => {
      req.reply('done', 1);
      throw new RangeError('after the reply');
    });
    await backend.ready();
    const { c } = await openClient();
    assert.equal((await c.request('late:fail')).type, 'done');
    const error = await waitFor(() => errors[0], 'the error');
    assert.ok(error instanceof WshubError);
    assert.equal(error.code, 'handler');
    assert.match(error.message, /after the reply/);
    assert.ok(error.cause instanceof RangeError);
  });
});

describe('the HTTP API', () => {
  test('a token function is asked at each call, by WshubHttp and by the fallback', async () => {
    const { c, events } = await openClient();
    await c.subscribe('fn-news');
    let asked = 0;
    const token = async () => {
      asked += 1;
      return ADMIN;
    };
    const http = new WshubHttp(hub.url, { token });
    assert.equal(await http.publish('fn-news', 'event', { n: 1 }), 1);
    assert.ok((await http.stats()).activeConnections >= 1);
    assert.equal(asked, 2);
    await events.waitMessage('event', (m) => m.data.n === 1);

    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    gate.refuse = true;
    const backend = service(gate.url, { token, http: hub.http });
    assert.equal(await backend.publish('fn-news', 'event', { n: 2 }), 1);
    await events.waitMessage('event', (m) => m.data.n === 2);
    const failing = new WshubHttp(hub.url, { token: () => Promise.reject(new Error('vault down')) });
    const refused = await failing.publish('fn-news', 'event', 1).catch((err) => err);
    assert.deepEqual([refused.code, refused.message], ['token', 'wshub: the token provider failed: vault down']);
  });

  test('a bad channel or session name is invalid_channel, as over the connection', async () => {
    const http = new WshubHttp(hub.url, { token: ADMIN });
    const backend = service();
    await backend.ready();
    for (const target of [{ channel: 'bad name' }, { sessionId: 'bad name' }]) {
      const overHttp = await http.publish(target, 'event', 1).catch((err) => err);
      const overWs = await backend.publish(target, 'event', 1).catch((err) => err);
      assert.deepEqual([overHttp.code, overWs.code], ['invalid_channel', 'invalid_channel'], overHttp.message);
      assert.equal(overHttp.status, 400);
    }
  });

  test('after close() a publish rejects with closed instead of going over HTTP', async () => {
    const { c, events } = await openClient();
    await c.subscribe('after-close');
    const backend = service();
    await backend.ready();
    backend.close();
    const err = await backend.publish('after-close', 'event', { n: 1 }).catch((e) => e);
    assert.equal(err.code, 'closed');
    // An HTTP one would have arrived by the time this request is answered.
    await c.request('ping');
    assert.equal(events.messages('event').length, 0);
  });
});

describe('reconnecting', () => {
  test('a cut: requests in flight get busy, the service reconnects and serves new ones', async () => {
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    const backend = service(gate.url);
    const lifecycle = [];
    backend.on('close', (e) => lifecycle.push(['close', e.code]));
    backend.on('reconnecting', (e) => lifecycle.push(['reconnecting', e.action]));
    const taken = [];
    backend.handle('slow', (req) => {
      taken.push(req);
      // Never answers by itself: it waits for the cut.
      return new Promise((resolve) => req.signal.addEventListener('abort', () => resolve(undefined)));
    });
    backend.handle('fast', () => 'ok');
    await backend.ready();
    const { c } = await openClient();

    const inFlight = c.request('slow', {});
    await waitFor(() => taken.length === 1, 'the request to reach the service');
    gate.cut();
    const busy = await within(inFlight.catch((err) => err), 'busy');
    assert.equal(busy.code, 'busy', busy.message);
    // The hub may tell the client before the service's own socket hears of the cut.
    await waitFor(() => taken[0].signal.aborted, 'the handler aborted');
    assert.equal(taken[0].reply('late', 1), false, 'nothing goes out on a connection that ended');

    await waitFor(() => backend.state === 'open', 'the service back');
    assert.deepEqual(lifecycle.slice(0, 2), [['close', 1006], ['reconnecting', 'backoff']]);
    assert.equal((await c.request('fast')).data, 'ok');
  });
});

describe('a token that does not make a service connection', () => {
  test('a wrong or missing admin token on a hub without auth: not_a_service, ready() rejects, nothing stays connected', async () => {
    for (const token of ['not-the-admin-token', undefined]) {
      const backend = service(hub.url, { token });
      const errors = [];
      backend.on('error', (err) => errors.push(err));
      const opened = [];
      backend.on('open', (welcome) => opened.push(welcome));
      const err = await within(backend.ready().then(() => null, (e) => e), 'ready() to settle');
      assert.ok(err instanceof WshubError, String(err));
      assert.equal(err.code, 'not_a_service');
      assert.match(err.message, /not a service connection.*admin token/);
      assert.deepEqual(errors.map((e) => e.code), ['not_a_service']);
      assert.deepEqual(opened, [], 'no open for a connection that is not a service');
      assert.equal(backend.state, 'closed');
      assert.equal((await backend.ready().catch((e) => e)).code, 'not_a_service', 'and again, until connect()');
      await waitFor(async () => (await hub.get('/api/ws/stats', ADMIN)).clients.length === 0, 'the hub to see it leave');
    }
  });

  test('the admin token: the welcome says service, ready() resolves with it', async () => {
    const backend = service();
    const welcome = await within(backend.ready(), 'ready');
    assert.equal(welcome.service, true);
    assert.equal(backend.state, 'open');
  });
});

describe('socket errors', () => {
  test('say which URL (token hidden), how it closed, and why', async () => {
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    gate.refuse = true;
    const c = client(gate.url, { token: 'secret-token', reconnect: false });
    const events = record(c);
    const error = await events.wait('error');
    assert.equal(error.code, 'socket');
    assert.equal(error.closeCode, 1006);
    assert.match(error.message, /^wshub: could not connect to ws:\/\/127\.0\.0\.1:\d+\/ws\?token=\*\*\*&envelope=standard: .+ \(close 1006\)$/);
    assert.ok(!error.message.includes('secret-token'));
    assert.equal(error.url, `${gate.url}?token=***&envelope=standard`);
  });
});
