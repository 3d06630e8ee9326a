// The client against the real hub: the welcome, subscriptions and deliveries
// (batches too), requests answered by a service connection (and their error,
// timeout and disconnect paths), publishing, presence, and close().

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WshubClient, WshubError } from '../wshub.js';
import { WebSocket, record, startHub, startProxy, startService, waitFor, within } from '../test-support/hub.mjs';

const ADMIN = 'admin-secret';
let hub;
const clients = [];
const proxies = [];

async function proxy(target) {
  const p = await startProxy(target);
  proxies.push(p);
  return p;
}

/** A client with the test's WebSocket, closed after the file. */
function connect(url, options = {}) {
  const client = new WshubClient(url, { WebSocket, minDelay: 20, maxDelay: 200, ...options });
  clients.push(client);
  return client;
}

before(async () => {
  hub = await startHub(['--admin-token', ADMIN, '--allow-client-publish', '--presence-grace', '0']);
});

after(async () => {
  for (const client of clients) client.close();
  for (const p of proxies) await p.close();
  await hub.stop();
});

describe('connecting', () => {
  test('the welcome opens the client: clientId, user, session, heartbeat', async () => {
    const client = connect(hub.url, { userId: 'alice', sessionId: 'sess-welcome' });
    assert.equal(client.state, 'connecting');
    const events = record(client);
    const open = await events.wait('open');
    assert.equal(client.state, 'open');
    assert.match(open.clientId, /^c_/);
    assert.equal(client.clientId, open.clientId);
    assert.equal(open.userId, 'alice');
    // The session is subscribed after the welcome, not by the URL.
    assert.equal(open.sessionId, null);
    assert.equal(open.authenticated, false);
    assert.equal(typeof open.heartbeatMs, 'number');
    assert.equal(open.reconnected, false);
    assert.deepEqual(client.subscriptions, ['session:sess-welcome']);
    // The welcome is a message too, and the first one.
    assert.equal(events.log.find((e) => e.name === 'message').event.type, 'connection');
  });

  test('the sessionId option is subscribed, once: a publication to it arrives', async () => {
    const client = connect(hub.url, { userId: 'bob', sessionId: 'sess-url' });
    const events = record(client);
    await events.wait('open');
    assert.equal(typeof (await within(client.subscribeSession('sess-url'), 'the subscription')).seq, 'number');
    assert.equal(events.messages('subscribed').length, 1);
    const answer = await hub.post('/api/publish', { sessionId: 'sess-url', type: 'ai_start', data: { task: { prompt: 'p', mode: 'generate' } } }, ADMIN);
    assert.equal(answer.data.delivered, 1);
    const message = await events.waitMessage('ai_start');
    assert.equal(message.sessionId, 'sess-url');
    assert.equal(message.data.task.prompt, 'p');
  });

  test('ready() resolves with the welcome, at once when open; rejects once closed', async () => {
    const client = connect(hub.url, { userId: 'ready-user' });
    const welcome = await within(client.ready(), 'ready');
    assert.equal(welcome.userId, 'ready-user');
    assert.equal(await client.ready(), client.welcome);
    client.close();
    await assert.rejects(client.ready(), { code: 'closed' });
    // Not started yet (autoConnect: false): it waits for connect().
    const later = connect(hub.url, { autoConnect: false, userId: 'later' });
    const waiting = later.ready();
    later.connect();
    assert.equal((await within(waiting, 'ready after connect()')).userId, 'later');
  });

  test('a URL that is not a hub: a TypeError at once; a WebSocket that refuses it: an error and a close', async () => {
    assert.throws(() => new WshubClient('localhost:3000', { WebSocket }), /ws:\/\/.*wss:\/\//);
    class Refusing {
      constructor() {
        throw new SyntaxError('not for me');
      }
    }
    const client = connect(hub.url, { WebSocket: Refusing, autoConnect: false });
    const events = record(client);
    client.connect();
    const close = await events.wait('close');
    assert.deepEqual([close.action, close.willReconnect, client.state], ['stop', false, 'closed']);
    const error = events.all('error')[0];
    assert.deepEqual([error.code, error.message], ['url', 'wshub: cannot connect: not for me']);
  });

  test('Node without a WebSocket constructor says what to pass', () => {
    const saved = globalThis.WebSocket;
    delete globalThis.WebSocket;
    try {
      assert.throws(() => new WshubClient('ws://127.0.0.1:1/ws'), /pass one/);
    } finally {
      if (saved) globalThis.WebSocket = saved;
    }
  });
});

describe('subscriptions', () => {
  test('subscribe, receive with typed handlers, unsubscribe', async () => {
    const client = connect(hub.url, { userId: 'sub-user' });
    const got = [];
    client.on('event', (data, message) => got.push({ data, channel: message.channel }));
    const subscribed = await within(client.subscribe('files'), 'subscribed');
    assert.equal(typeof subscribed, 'object');
    assert.deepEqual(client.subscriptions, ['channel:files']);
    // A second subscribe to the same channel answers at once, without a request.
    assert.deepEqual(await client.subscribe('files'), subscribed);

    const answer = await hub.post('/api/publish', { channel: 'files', data: { file: 'src/main.ts', event: 'change' } }, ADMIN);
    assert.equal(answer.data.delivered, 1);
    await waitFor(() => got.length === 1, 'the event');
    assert.deepEqual(got[0], { data: { file: 'src/main.ts', event: 'change' }, channel: 'files' });

    await client.unsubscribe('files');
    assert.deepEqual(client.subscriptions, []);
    const after = await hub.post('/api/publish', { channel: 'files', data: {} }, ADMIN);
    assert.equal(after.data.delivered, 0, 'unsubscribed: nobody gets it');
  });

  test('subscribe before the connection is open: it goes out with the welcome', async () => {
    const client = connect(hub.url, { userId: 'early' });
    const subscribed = client.subscribe('early-channel');
    assert.equal(client.state, 'connecting');
    await within(subscribed, 'subscribed');
    const answer = await hub.post('/api/publish', { channel: 'early-channel', data: 1 }, ADMIN);
    assert.equal(answer.data.delivered, 1);
  });

  test('a refused subscription rejects with the hub code and is forgotten', async () => {
    const client = connect(hub.url, { userId: 'bad-name' });
    const err = await client.subscribe('bad name').then(
      () => assert.fail('subscribed'),
      (e) => e,
    );
    assert.ok(err instanceof WshubError);
    assert.equal(err.code, 'invalid_channel');
    assert.equal(err.channel, 'bad name');
    assert.deepEqual(client.subscriptions, []);
  });

  test('subscribe, unsubscribe, subscribe in one tick: subscribed on the hub and the client, also after a reconnect', async () => {
    const client = connect(hub.url, { userId: 'remount' });
    const events = record(client);
    const subscribers = async (channel) => (await hub.get(`/api/subscribers?channel=${channel}`, ADMIN)).data.clients.map((c) => c.id);
    // A route A -> B -> A, or two components on one channel: a confirmed
    // subscription left and taken again before the hub answered.
    // Each outcome: the subscription's seq, or the error's code.
    const outcome = (promise) => promise.then((at) => (at ? typeof at.seq : 'done'), (err) => err.code);
    await client.subscribe('remount-a');
    const left = outcome(client.unsubscribe('remount-a'));
    const again = outcome(client.subscribe('remount-a'));
    // React StrictMode's mount, cleanup, mount: one never confirmed.
    const first = outcome(client.subscribe('remount-b'));
    const gone = outcome(client.unsubscribe('remount-b'));
    const back = outcome(client.subscribe('remount-b'));
    const outcomes = await within(Promise.all([left, again, first, gone, back]), 'every answer');
    assert.deepEqual(outcomes, ['done', 'number', 'unsubscribed', 'done', 'number']);
    assert.deepEqual(client.subscriptions.sort(), ['channel:remount-a', 'channel:remount-b']);
    assert.deepEqual(await subscribers('remount-a'), [client.clientId]);
    assert.deepEqual(await subscribers('remount-b'), [client.clientId]);

    // A reconnect re-subscribes both: publications still arrive.
    const before = client.clientId;
    await hub.post('/api/disconnect', { clientId: before, code: 4000, reason: 'Reconnect, please' }, ADMIN);
    await events.wait('open', () => true, 2);
    await waitFor(async () => (await subscribers('remount-a'))[0] === client.clientId, 'a re-subscribed');
    await waitFor(async () => (await subscribers('remount-b'))[0] === client.clientId, 'b re-subscribed');
    assert.notEqual(client.clientId, before);
    for (const channel of ['remount-a', 'remount-b']) {
      assert.equal((await hub.post('/api/publish', { channel, data: { channel } }, ADMIN)).data.delivered, 1);
      await events.waitMessage('event', (m) => m.channel === channel);
    }
  });

  test('subscribeSession and a batch: each message of the batch arrives on its own, in order', async () => {
    const client = connect(hub.url, { userId: 'batch-user' });
    const progress = [];
    client.on('ai_progress', (data, message) => progress.push({ n: data.progress.chunksReceived, batched: message.batched, sessionId: message.sessionId }));
    await client.subscribeSession('sess-batch');
    for (const n of [25, 50, 75]) {
      await hub.post('/api/publish', { sessionId: 'sess-batch', type: 'ai_progress', data: { progress: { chunksReceived: n } }, batched: true }, ADMIN);
    }
    await waitFor(() => progress.length === 3, 'three progress messages');
    assert.deepEqual(progress, [25, 50, 75].map((n) => ({ n, batched: true, sessionId: 'sess-batch' })));
  });

  test('unbatch: false delivers the batch as one message', async () => {
    const client = connect(hub.url, { userId: 'batch-raw', unbatch: false });
    const events = record(client);
    await client.subscribeSession('sess-batch-raw');
    await hub.post('/api/publish', { sessionId: 'sess-batch-raw', type: 'ai_progress', data: { n: 1 }, batched: true }, ADMIN);
    await hub.post('/api/publish', { sessionId: 'sess-batch-raw', type: 'ai_progress', data: { n: 2 }, batched: true }, ADMIN);
    const items = () => events.messages('batch_update').flatMap((batch) => batch.data.messages.map((m) => m.data.n));
    await waitFor(() => items().length === 2, 'both messages, batched');
    assert.deepEqual(items(), [1, 2]);
    assert.equal(events.messages('ai_progress').length, 0);
  });
});

describe('requests', () => {
  let service;
  before(async () => {
    service = await startService(hub, ADMIN, (request, reply) => {
      if (request.type === 'agent:start') reply('agent:started', { sessionId: 's', projectId: request.data.projectId });
      if (request.type === 'agent:fail') reply('error', { code: 'agent_failed', error: 'No agent for that' });
      // agent:silent: never answered
    });
  });
  after(() => service.close());

  test('request resolves with the reply that carries its correlationId', async () => {
    const client = connect(hub.url, { userId: 'req-user' });
    const [a, b] = await Promise.all([
      client.request('agent:start', { projectId: 'p1' }),
      client.request('agent:start', { projectId: 'p2' }),
    ]);
    assert.equal(a.type, 'agent:started');
    assert.equal(a.data.projectId, 'p1');
    assert.equal(b.data.projectId, 'p2');
    assert.notEqual(a.correlationId, b.correlationId);
    const seen = service.requests.filter((r) => r.message.type === 'agent:start' && r.userId === 'req-user');
    assert.equal(seen.length, 2);
    assert.equal(seen[0].clientId, client.clientId);
  });

  test('an error reply rejects with its code', async () => {
    const client = connect(hub.url, { userId: 'req-error' });
    await assert.rejects(client.request('agent:fail', {}), (err) => {
      assert.ok(err instanceof WshubError);
      assert.equal(err.code, 'agent_failed');
      assert.equal(err.message, 'No agent for that');
      assert.equal(err.reply.type, 'error');
      return true;
    });
    // The hub's own errors too; and an answered error is no `error` event.
    const events = record(client);
    await assert.rejects(client.request('publish', {}, { channel: 'x', event: 'connection' }), { code: 'invalid_message' });
    assert.equal(events.count('error'), 0);
  });

  test('no reply within the timeout rejects with code timeout', async () => {
    const client = connect(hub.url, { userId: 'req-timeout' });
    await assert.rejects(client.request('agent:silent', {}, { timeout: 150 }), { code: 'timeout' });
  });

  test('a request sent before a disconnect rejects with code disconnected', async () => {
    const cut = await proxy(hub.addr);
    const client = connect(cut.url, { userId: 'req-cut' });
    const events = record(client);
    await events.wait('open');
    const pending = client.request('agent:silent', {});
    await waitFor(() => service.requests.some((r) => r.clientId === client.clientId), 'the request at the service');
    cut.cut();
    await assert.rejects(pending, { code: 'disconnected' });
    client.close();
  });

  test('requests wait for the connection, then go out', async () => {
    const client = connect(hub.url, { userId: 'req-early' });
    const reply = await client.request('agent:start', { projectId: 'early' });
    assert.equal(reply.data.projectId, 'early');
  });

  test('send() fires and forgets; false when not connected', async () => {
    const client = connect(hub.url, { userId: 'sender', autoConnect: false });
    assert.equal(client.send('ping'), false);
    const events = record(client);
    client.connect();
    await events.wait('open');
    assert.equal(client.send({ type: 'ping', correlationId: 'mine' }), true);
    const pong = await events.waitMessage('pong');
    assert.equal(pong.correlationId, 'mine');
  });

  test('publish resolves with the number of clients reached', async () => {
    const listener = connect(hub.url, { userId: 'listener' });
    await listener.subscribe('pub-channel');
    const got = [];
    listener.on('note', (data, message) => got.push({ data, from: message.from.userId }));
    const publisher = connect(hub.url, { userId: 'publisher' });
    assert.equal(await publisher.publish('pub-channel', 'note', { text: 'hi' }), 1);
    await waitFor(() => got.length === 1, 'the publication');
    assert.deepEqual(got[0], { data: { text: 'hi' }, from: 'publisher' });
  });

  test("an uncorrelated hub error is an 'error' event with its code", async () => {
    const client = connect(hub.url, { userId: 'raw-error' });
    const events = record(client);
    await events.wait('open');
    client.send('no_such_thing_and_no_id');
    // The service gets it; a type the hub reserves gets the hub's own error.
    client.send({ type: 'publish', channel: 'x', event: 'connection' });
    const err = await events.wait('error');
    assert.equal(err.code, 'invalid_message');
  });
});

describe('presence', () => {
  test('setPresence, presence() and user_presence events', async () => {
    const watcher = connect(hub.url, { userId: 'watcher' });
    const changes = [];
    watcher.on('user_presence', (data) => changes.push(data));
    await record(watcher).wait('open');
    const carol = connect(hub.url, { userId: 'carol' });
    await waitFor(() => changes.some((c) => c.userId === 'carol' && c.status === 'online'), 'carol online');
    await carol.setPresence('away');
    await waitFor(() => changes.some((c) => c.userId === 'carol' && c.status === 'away'), 'carol away');
    const users = await watcher.presence();
    assert.deepEqual(users.find((u) => u.userId === 'carol'), { userId: 'carol', status: 'away' });
    assert.ok(users.some((u) => u.userId === 'watcher'));
    carol.close();
    await waitFor(() => changes.some((c) => c.userId === 'carol' && c.status === 'offline'), 'carol offline');
  });
});

describe('close()', () => {
  test('afterwards subscribe() rejects with closed, as request() does; before the first connect() both wait', async () => {
    const client = connect(hub.url, { userId: 'closed-sub' });
    await within(client.ready(), 'open');
    client.close();
    const err = await within(client.subscribe('after-close').then(() => null, (e) => e), 'subscribe() to settle');
    assert.equal(err && err.code, 'closed');
    assert.equal((await client.request('ping').catch((e) => e)).code, 'closed');
    assert.deepEqual(client.subscriptions, []);

    const idle = connect(hub.url, { autoConnect: false, userId: 'not-yet' });
    const subscribed = idle.subscribe('before-connect');
    const pong = idle.request('ping');
    idle.connect();
    assert.equal(typeof (await within(subscribed, 'the subscription')).seq, 'number');
    assert.equal((await within(pong, 'the pong')).type, 'pong');
  });

  test('a reason longer than a Close frame holds is cut to 123 bytes on a character boundary, and the connection ends', async () => {
    const client = connect(hub.url, { userId: 'long-reason' });
    const events = record(client);
    await events.wait('open');
    client.close('é'.repeat(100)); // 200 bytes of UTF-8
    const close = await events.wait('close');
    assert.equal(close.reason, 'é'.repeat(61), 'the 62nd é would end at byte 124');
    await waitFor(async () => !(await hub.get('/api/ws/stats', ADMIN)).clients.some((c) => c.userId === 'long-reason'), 'the hub to see it leave');
  });

  test('stops for good: close 1000 to the hub, pending requests rejected, no reconnect', async () => {
    const cut = await proxy(hub.addr);
    const client = connect(cut.url, { userId: 'closer', minDelay: 10, maxDelay: 20 });
    const events = record(client);
    await events.wait('open');
    const pending = client.request('agent:silent', {});
    client.close();
    assert.equal(client.state, 'closed');
    await assert.rejects(pending, { code: 'closed' });
    await assert.rejects(client.request('ping'), { code: 'closed' });
    const close = await events.wait('close');
    assert.deepEqual({ code: close.code, action: close.action, willReconnect: close.willReconnect }, { code: 1000, action: 'stop', willReconnect: false });
    const stats = await waitFor(async () => {
      const s = await hub.get('/api/ws/stats', ADMIN);
      return !s.clients.some((c) => c.userId === 'closer') && s;
    }, 'the hub to see the client leave');
    assert.ok(stats);
    // Well past the largest backoff delay: nothing tried to connect again.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(cut.connections, 1);
    assert.equal(events.count('reconnecting'), 0);
    assert.equal(events.count('close'), 1);
  });
});
