// Reconnecting against the real hub: full-jitter backoff within its bounds,
// the close-code table (1000 and 1008 stop, 1001 reconnects at once, 1006
// and 1013 back off, 4001 asks the token provider again), subscriptions
// re-sent after a hub restart, and the heartbeat watchdog.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { WshubClient, backoffDelay, closeAction, restartDelay } from '../wshub.js';
import { WebSocket, now, record, signJwt, startHub, startProxy, waitFor } from '../test-support/hub.mjs';

const ADMIN = 'admin-secret';
const cleanup = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

function connect(url, options = {}) {
  const client = new WshubClient(url, { WebSocket, minDelay: 20, maxDelay: 200, ...options });
  cleanup.push(() => client.close());
  return client;
}
async function hub(args = []) {
  const h = await startHub(['--admin-token', ADMIN, ...args]);
  cleanup.push(() => h.stop());
  return h;
}
async function proxy(target) {
  const p = await startProxy(target);
  cleanup.push(() => p.close());
  return p;
}
/** Long enough for any reconnect the test's small delays would schedule. */
const settle = (ms = 250) => new Promise((resolve) => setTimeout(resolve, ms));

describe('backoff', () => {
  test('full jitter: a delay in [0, min(maxDelay, minDelay * 2^attempt))', () => {
    const top = () => 0.999999;
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 40].map((a) => backoffDelay(a, 500, 20000, top)), [499, 999, 1999, 3999, 7999, 15999, 19999, 19999]);
    assert.equal(backoffDelay(3, 500, 20000, () => 0), 0);
    assert.equal(backoffDelay(1, 500, 20000, () => 0.5), 500);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(i % 8, 500, 20000);
      assert.ok(d >= 0 && d < Math.min(20000, 500 * 2 ** (i % 8)), `delay ${d}`);
    }
  });

  test('the close-code table, as the Rust client has it (src/client/close.rs)', () => {
    const codes = [0, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4001, 4002, 4499, 4500, 4999, 5000];
    const table = Object.fromEntries(codes.map((c) => [c, closeAction(c)]));
    assert.deepEqual(table, {
      0: 'backoff', 1000: 'stop', 1001: 'reconnect', 1002: 'stop', 1003: 'stop', 1005: 'backoff', 1006: 'backoff',
      1007: 'stop', 1008: 'stop', 1009: 'stop', 1010: 'stop', 1011: 'backoff', 1012: 'backoff', 1013: 'backoff',
      1014: 'backoff', 3000: 'backoff', 3999: 'backoff', 4000: 'backoff', 4001: 'refresh', 4002: 'backoff',
      4499: 'backoff', 4500: 'stop', 4999: 'stop', 5000: 'backoff',
    });
  });

  test('a hub going away (1001): a random delay up to 1 s, or minDelay if longer', () => {
    assert.equal(restartDelay(20, () => 0), 0);
    assert.equal(restartDelay(20, () => 0.5), 500);
    assert.equal(restartDelay(20, () => 0.999999), 999);
    assert.equal(restartDelay(3000, () => 0.5), 1500);
    const delays = Array.from({ length: 200 }, () => restartDelay(20));
    assert.ok(delays.every((d) => d >= 0 && d < 1000));
    assert.ok(delays.some((d) => d > 750) && delays.some((d) => d < 250), 'spread over the second');
  });

  test('attempts against a hub that is not there: counted, each delay within its bound, then give up', async () => {
    const h = await hub();
    const gate = await proxy(h.addr);
    gate.refuse = true;
    const client = connect(gate.url, { minDelay: 10, maxDelay: 40, maxAttempts: 6 });
    const events = record(client);
    const last = await events.wait('close', (e) => e.action === 'stop');
    const tries = events.all('reconnecting');
    assert.deepEqual(tries.map((t) => t.attempt), [1, 2, 3, 4, 5, 6]);
    tries.forEach((t, i) => {
      assert.equal(t.action, 'backoff');
      assert.ok(t.delay >= 0 && t.delay < Math.min(40, 10 * 2 ** i), `attempt ${t.attempt}: ${t.delay} ms`);
    });
    assert.equal(last.code, 1006);
    assert.equal(client.state, 'closed');
    assert.equal(gate.connections, 7, 'the first connect and six attempts');
    assert.equal(events.count('open'), 0);
  });

  test('the attempt count restarts after a welcome', async () => {
    const h = await hub();
    const gate = await proxy(h.addr);
    const client = connect(gate.url, { minDelay: 10, maxDelay: 40 });
    const events = record(client);
    await events.wait('open');
    gate.refuse = true;
    gate.cut();
    await events.wait('reconnecting', (e) => e.attempt === 3);
    gate.refuse = false;
    await events.wait('open', () => true, 2);
    gate.cut();
    const next = await events.wait('reconnecting', () => true, events.count('reconnecting') + 1);
    assert.equal(next.attempt, 1);
  });

  test('reconnect: false stops at the first close', async () => {
    const h = await hub();
    const gate = await proxy(h.addr);
    const client = connect(gate.url, { reconnect: false });
    const events = record(client);
    await events.wait('open');
    gate.cut();
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.action, client.state], [1006, 'stop', 'closed']);
  });
});

describe('close codes', () => {
  test('1008 Unauthorized stops: no second try, the token provider asked once', async () => {
    const h = await hub(['--jwt-secret', 'a-secret-of-at-least-32-bytes!!!']);
    const gate = await proxy(h.addr);
    let asked = 0;
    const client = connect(gate.url, { token: () => (asked++, 'not-a-jwt') });
    const events = record(client);
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.reason, close.action, close.willReconnect], [1008, 'Unauthorized', 'stop', false]);
    const err = events.all('error').find((e) => e.code === 'unauthorized');
    assert.ok(err, 'the unauthorized error came first');
    assert.equal(client.state, 'closed');
    await settle();
    assert.equal(asked, 1);
    assert.equal(gate.connections, 1);
  });

  test('1001 (hub shutting down) reconnects within a second; the subscription is back on the restarted hub', async () => {
    const first = await startHub(['--admin-token', ADMIN]);
    const gate = await proxy(first.addr);
    const client = connect(gate.url, { userId: 'restarter', minDelay: 10, maxDelay: 50 });
    const events = record(client);
    await client.subscribe('restart-channel');
    await client.subscribeSession('restart-session');

    await first.stop();
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.action], [1001, 'reconnect']);
    assert.ok(close.delay >= 0 && close.delay < 1000, `${close.delay} ms`);
    const retry = await events.wait('reconnecting');
    assert.deepEqual([retry.attempt, retry.delay, retry.action], [1, close.delay, 'reconnect']);

    const second = await hub();
    gate.setTarget(second.addr);
    const open = await events.wait('open', () => true, 2);
    assert.equal(open.reconnected, true);
    await events.wait('message', (m) => m.type === 'subscribed' && m.channel === 'restart-channel', 2);
    await events.wait('message', (m) => m.type === 'subscribed' && m.sessionId === 'restart-session', 2);
    assert.equal((await second.post('/api/publish', { channel: 'restart-channel', data: { n: 1 } }, ADMIN)).data.delivered, 1);
    assert.equal((await second.post('/api/publish', { sessionId: 'restart-session', type: 'ai_start', data: {} }, ADMIN)).data.delivered, 1);
    await events.waitMessage('event', (m) => m.channel === 'restart-channel');
    await events.waitMessage('ai_start', (m) => m.sessionId === 'restart-session');
  });

  test('1006 (network cut) backs off and reconnects with the subscriptions', async () => {
    const h = await hub();
    const gate = await proxy(h.addr);
    const client = connect(gate.url, { minDelay: 10, maxDelay: 50 });
    const events = record(client);
    await client.subscribe('cut-channel');
    gate.cut();
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.action], [1006, 'backoff']);
    assert.ok(close.delay >= 0 && close.delay < 10);
    await events.wait('open', () => true, 2);
    await waitFor(async () => (await h.post('/api/publish', { channel: 'cut-channel', data: {} }, ADMIN)).data.delivered === 1, 'the re-subscription');
  });

  test('1013 (server full) backs off until there is room', async () => {
    const h = await hub(['--max-connections', '1']);
    const first = connect(h.url, { userId: 'first' });
    await record(first).wait('open');
    const second = connect(h.url, { userId: 'second', minDelay: 20, maxDelay: 100 });
    const events = record(second);
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.reason, close.action], [1013, 'Server full', 'backoff']);
    first.close();
    await events.wait('open');
  });

  test('the application: 1000 and 4500 to 4999 stop; 4000 to 4499 back off and come back', async () => {
    const h = await hub();
    const kicked = connect(h.url, { userId: 'kicked' });
    const kickedEvents = record(kicked);
    await kickedEvents.wait('open');
    await h.post('/api/disconnect', { clientId: kicked.clientId, code: 1000, reason: 'Signed out' }, ADMIN);
    const close = await kickedEvents.wait('close');
    assert.deepEqual([close.code, close.reason, close.action, kicked.state], [1000, 'Signed out', 'stop', 'closed']);

    const banned = connect(h.url, { userId: 'banned' });
    const bannedEvents = record(banned);
    await bannedEvents.wait('open');
    await h.post('/api/disconnect', { clientId: banned.clientId, code: 4500, reason: 'Account suspended' }, ADMIN);
    const gone = await bannedEvents.wait('close');
    assert.deepEqual([gone.code, gone.action, banned.state], [4500, 'stop', 'closed']);

    for (const code of [4000, 4499]) {
      const bounced = connect(h.url, { userId: `bounced-${code}` });
      const bouncedEvents = record(bounced);
      await bouncedEvents.wait('open');
      await h.post('/api/disconnect', { clientId: bounced.clientId, code, reason: 'Move along' }, ADMIN);
      assert.equal((await bouncedEvents.wait('close')).action, 'backoff');
      await bouncedEvents.wait('open', () => true, 2);
    }
  });

  test('closeAction overrides the table for the codes it answers', async () => {
    const h = await hub();
    const client = connect(h.url, { closeAction: (code) => (code === 4000 ? 'stop' : undefined) });
    const events = record(client);
    await events.wait('open');
    await h.post('/api/disconnect', { clientId: client.clientId, code: 4000 }, ADMIN);
    assert.equal((await events.wait('close')).action, 'stop');
  });

  test('4001 (token expired) asks the token provider again and reconnects at once', async () => {
    const secret = 'a-secret-of-at-least-32-bytes!!!';
    const h = await hub(['--jwt-secret', secret, '--jwt-leeway', '0']);
    const tokens = [];
    const client = connect(h.url, {
      token: async () => {
        // The first token runs out in a second or two; the next lasts.
        const token = signJwt(secret, { sub: 'expiring', exp: now() + (tokens.length === 0 ? 2 : 600) });
        tokens.push(token);
        return token;
      },
    });
    const events = record(client);
    await events.wait('open');
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.reason, close.action, close.delay], [4001, 'Token expired', 'refresh', 0]);
    assert.ok(events.all('error').some((e) => e.code === 'token_expired'));
    const open = await events.wait('open', () => true, 2);
    assert.equal(open.userId, 'expiring');
    assert.equal(tokens.length, 2);
  });
});

describe('handlers', () => {
  test("off() removes a once() handler by the function given; a throwing handler is an 'error' WshubError", async () => {
    const h = await hub();
    const client = connect(h.url);
    const events = record(client);
    const seen = [];
    const handler = (welcome) => seen.push(welcome.clientId);
    client.once('open', handler);
    client.off('open', handler);
    client.on('pong', () => {
      throw new TypeError('a bug in the app');
    });
    await events.wait('open');
    assert.deepEqual(seen, []);
    await client.request('ping');
    const error = await events.wait('error');
    assert.equal(error.name, 'WshubError');
    assert.equal(error.code, 'handler');
    assert.match(error.message, /a bug in the app/);
    assert.ok(error.cause instanceof TypeError);
  });
});

describe('heartbeat', () => {
  test('a connection that goes silent is declared dead and replaced', async () => {
    const h = await hub(['--heartbeat-interval', '0.2']);
    const gate = await proxy(h.addr);
    // Silence after 200 + 800 ms: a busy machine may hold a pong up for a while.
    const client = connect(gate.url, { heartbeat: { grace: 800 }, minDelay: 10, maxDelay: 50 });
    const events = record(client);
    const open = await events.wait('open');
    assert.equal(open.heartbeatMs, 200);
    await client.subscribe('hb-channel');
    const frozenAt = Date.now();
    gate.freeze();
    const close = await events.wait('close');
    assert.equal(close.code, 1006);
    assert.match(close.reason, /No message within 1000 ms/);
    assert.equal(close.action, 'backoff');
    // The last message came at most one heartbeat before the freeze.
    assert.ok(Date.now() - frozenAt >= 800, 'not before the silence window');
    const second = await events.wait('open', () => true, 2);
    assert.notEqual(second.clientId, open.clientId);
    await waitFor(async () => (await h.post('/api/publish', { channel: 'hb-channel', data: {} }, ADMIN)).data.delivered === 1, 'the re-subscription');
  });

  test('an idle healthy connection stays open: the pings are answered, their pongs not shown', async () => {
    // Silence after 200 + 800 ms: a busy machine may hold a pong up for a while.
    const h = await hub(['--heartbeat-interval', '0.2']);
    const client = connect(h.url, { heartbeat: { grace: 800 } });
    const events = record(client);
    await events.wait('open');
    await settle(2500); // two and a half silence windows
    assert.equal(events.count('close'), 0);
    assert.equal(client.state, 'open');
    assert.equal(events.messages('pong').length, 0);
  });
});
