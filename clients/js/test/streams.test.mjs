// The client's side of history and recovery, against a scripted peer that
// speaks PROTOCOL.md's "History and recovery" (test-support/scripted-hub.mjs)
// and misbehaves on purpose: what `since` the client sends, duplicates
// dropped, gaps and epoch changes reported, `recovered: false` passed on,
// and a live publication that races a re-subscription. recovery.test.mjs
// runs the same story against the real hub.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { WshubClient } from '../wshub.js';
import { WebSocket, record, waitFor, within } from '../test-support/hub.mjs';
import { startScriptedHub } from '../test-support/scripted-hub.mjs';

const cleanup = [];
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function setup(options = {}, hubOptions = {}) {
  const hub = await startScriptedHub(hubOptions);
  cleanup.push(() => hub.close());
  const client = new WshubClient(hub.url, { WebSocket, minDelay: 5, maxDelay: 20, ...options });
  cleanup.push(() => client.close());
  return { hub, client, events: record(client) };
}
const subscribes = (hub, index) => hub.received.filter((r) => r.message.type === 'subscribe' && (index === undefined || r.index === index)).map((r) => r.message);

describe('positions and since', () => {
  test('the position comes from subscribed and each delivery; a reconnect sends it as since', async () => {
    const { hub, client, events } = await setup();
    hub.publish('channel:a', 'event', { n: 0 }); // before the subscription: not for us
    const answer = await client.subscribe('a');
    assert.deepEqual(answer, { seq: 1, epoch: 'e1' });
    assert.deepEqual(client.positions, { 'channel:a': { seq: 1, epoch: 'e1' } });
    hub.publish('channel:a', 'event', { n: 1 });
    hub.publish('channel:a', 'event', { n: 2 });
    await waitFor(() => events.messages('event').length === 2, 'two');
    assert.deepEqual(client.positions['channel:a'], { seq: 3, epoch: 'e1' });

    await hub.away(async () => {
      await events.wait('close');
      hub.publish('channel:a', 'event', { n: 3 });
      hub.publish('channel:a', 'event', { n: 4 });
    });
    const recovery = await events.wait('recovery');
    assert.deepEqual(recovery, { stream: 'channel:a', channel: 'a', recovered: true, since: { seq: 3, epoch: 'e1' }, seq: 5, epoch: 'e1' });
    const again = subscribes(hub, 1);
    assert.deepEqual(again.map((m) => [m.channel, m.since]), [['a', { seq: 3, epoch: 'e1' }]]);
    await waitFor(() => events.messages('event').length === 4, 'the replay');
    assert.deepEqual(events.messages('event').map((m) => m.data.n), [1, 2, 3, 4]);
    assert.equal(events.count('gap'), 0);
  });

  test('unsubscribe forgets the position; a later subscribe starts live', async () => {
    const { hub, client } = await setup();
    await client.subscribe('b');
    hub.publish('channel:b', 'event', {});
    await waitFor(() => client.positions['channel:b']?.seq === 1, 'the delivery');
    await client.unsubscribe('b');
    assert.equal(client.positions['channel:b'], undefined);
    await client.subscribe('b');
    assert.deepEqual(subscribes(hub).map((m) => m.since), [undefined, undefined]);
  });

  test('a subscription the hub ended (unsubscribed) is not sent again', async () => {
    const { hub, client, events } = await setup();
    await client.subscribe('kept');
    await client.subscribe('revoked');
    hub.send(hub.connections[0], { type: 'unsubscribed', channel: 'revoked', data: {} });
    await waitFor(() => !client.subscriptions.includes('channel:revoked'), 'the client to forget it');
    hub.cut();
    await events.wait('open', () => true, 2);
    await waitFor(() => subscribes(hub, 1).length === 1, 'the re-subscription');
    assert.deepEqual(subscribes(hub, 1).map((m) => m.channel), ['kept']);
  });
});

describe('a subscribe the hub does not answer in time', () => {
  test('a first one rejects with timeout; the client reconnects and the next connection subscribes it', async () => {
    const { hub, client, events } = await setup({ requestTimeout: 150 });
    await events.wait('open');
    hub.hold = (message, index) => index === 0 && message.type === 'subscribe';
    const err = await within(client.subscribe('late').then(() => null, (e) => e), 'subscribe() to settle');
    assert.deepEqual([err.code, err.stream, err.channel], ['timeout', 'channel:late', 'late']);
    const close = await events.wait('close');
    assert.deepEqual([close.code, close.action], [1006, 'backoff']);
    assert.match(close.reason, /No answer to subscribe within 150 ms/);
    await events.wait('open', () => true, 2);
    assert.deepEqual(await within(client.subscribe('late'), 'the subscription on the next connection'), { seq: 0, epoch: 'e1' });
    assert.deepEqual(subscribes(hub, 1).map((m) => m.channel), ['late']);
    hub.publish('channel:late', 'event', { n: 1 });
    await events.waitMessage('event');
  });

  test('a re-subscription with since: an error, a new connection, and the stream recovered there', async () => {
    const { hub, client, events } = await setup({ requestTimeout: 150 });
    await client.subscribe('slow');
    hub.publish('channel:slow', 'event', { n: 1 });
    await events.waitMessage('event');
    await hub.away(async () => {
      await events.wait('close');
      hub.publish('channel:slow', 'event', { n: 2 });
      // The next connection's re-subscription goes unanswered.
      hub.hold = (message, index) => index === 1 && message.type === 'subscribe';
    });
    const error = await events.wait('error', (e) => e.code === 'timeout');
    assert.deepEqual([error.stream, error.channel], ['channel:slow', 'slow']);
    // (After the attempts refused while away.)
    const close = await events.wait('close', (e) => /No answer to subscribe/.test(e.reason));
    assert.deepEqual([close.code, close.action], [1006, 'backoff']);
    const recovery = await events.wait('recovery');
    assert.deepEqual([recovery.recovered, recovery.since], [true, { seq: 1, epoch: 'e1' }]);
    assert.deepEqual(subscribes(hub, 2).map((m) => m.since), [{ seq: 1, epoch: 'e1' }]);
    hub.publish('channel:slow', 'event', { n: 3 });
    await waitFor(() => events.messages('event').length === 3, 'the missed one, then the live one');
    assert.deepEqual(events.messages('event').map((m) => m.data.n), [1, 2, 3]);
    assert.equal(events.count('gap'), 0);
  });
});

describe('duplicates, gaps, epochs', () => {
  test('a seq at or below the last is dropped; a jump is a gap with its range', async () => {
    const { hub, client, events } = await setup();
    await client.subscribe('g');
    const conn = hub.connections[0];
    const at = (seq, epoch = 'e1') => hub.send(conn, { type: 'event', channel: 'g', data: { seq }, seq, epoch });
    for (const seq of [1, 2, 2, 1, 5, 6]) at(seq);
    await waitFor(() => events.messages('event').length === 4, 'four distinct');
    assert.deepEqual(events.messages('event').map((m) => m.seq), [1, 2, 5, 6]);
    assert.deepEqual(events.all('gap'), [{ stream: 'channel:g', channel: 'g', epoch: 'e1', from: 3, to: 4 }]);
  });

  test('a new epoch: a gap from 1 unless it starts at 1', async () => {
    const { hub, client, events } = await setup();
    await client.subscribe('ep');
    const conn = hub.connections[0];
    hub.send(conn, { type: 'event', channel: 'ep', data: {}, seq: 1, epoch: 'e1' });
    hub.send(conn, { type: 'event', channel: 'ep', data: {}, seq: 1, epoch: 'x2' }); // history reset, nothing missed
    hub.send(conn, { type: 'event', channel: 'ep', data: {}, seq: 4, epoch: 'x3' }); // reset and three missed
    await waitFor(() => events.messages('event').length === 3, 'all three');
    assert.deepEqual(events.all('gap'), [{ stream: 'channel:ep', channel: 'ep', epoch: 'x3', previousEpoch: 'x2', from: 1, to: 3 }]);
    assert.deepEqual(client.positions['channel:ep'], { seq: 4, epoch: 'x3' });
  });

  test('batch items carry their own seq: duplicates inside are dropped, a jump is a gap', async () => {
    const { hub, client, events } = await setup();
    await client.subscribeSession('bs');
    hub.send(hub.connections[0], {
      type: 'batch_update', sessionId: 'bs', epoch: 'e1',
      data: { messages: [{ type: 'ai_progress', data: { n: 1 }, seq: 1 }, { type: 'ai_progress', data: { n: 1 }, seq: 1 }, { type: 'ai_progress', data: { n: 3 }, seq: 3 }] },
    });
    await waitFor(() => events.messages('ai_progress').length === 2, 'two items');
    assert.deepEqual(events.messages('ai_progress').map((m) => [m.data.n, m.seq, m.epoch, m.sessionId, m.batched]), [[1, 1, 'e1', 'bs', true], [3, 3, 'e1', 'bs', true]]);
    assert.deepEqual(events.all('gap').map((g) => [g.stream, g.from, g.to]), [['session:bs', 2, 2]]);
  });

  test("a user-targeted publication (no channel, no session) is on the user's own stream", async () => {
    const { hub, client, events } = await setup({ userId: 'erin' });
    await events.wait('open');
    hub.send(hub.connections[0], { type: 'notification', data: { message: 'a' }, seq: 7, epoch: 'u1' });
    hub.send(hub.connections[0], { type: 'notification', data: { message: 'a' }, seq: 7, epoch: 'u1' });
    await waitFor(() => client.positions['channel:user:erin'], 'the position');
    await client.request('ping');
    assert.equal(events.messages('notification').length, 1);
    assert.deepEqual(client.positions['channel:user:erin'], { seq: 7, epoch: 'u1' });
  });
});

describe('recovery', () => {
  test('recovered false is passed on; the next publication is taken as it comes', async () => {
    const { hub, client, events } = await setup();
    await client.subscribe('lost');
    hub.publish('channel:lost', 'event', { n: 1 });
    await events.waitMessage('event');
    await hub.away(async () => {
      await events.wait('close');
      hub.reset('channel:lost');
    });
    const recovery = await events.wait('recovery');
    assert.deepEqual(recovery, { stream: 'channel:lost', channel: 'lost', recovered: false, since: { seq: 1, epoch: 'e1' }, seq: 0, epoch: 'e2' });
    hub.publish('channel:lost', 'event', { n: 2 });
    hub.publish('channel:lost', 'event', { n: 3 });
    await waitFor(() => events.messages('event').length === 3, 'the live ones');
    assert.equal(events.count('gap'), 0);
    assert.deepEqual(client.positions['channel:lost'], { seq: 2, epoch: 'e2' });
  });

  test('too old for the history: recovered false', async () => {
    const { hub, client, events } = await setup({}, { history: 2 });
    await client.subscribe('old');
    hub.publish('channel:old', 'event', { n: 1 });
    await events.waitMessage('event');
    await hub.away(async () => {
      await events.wait('close');
      for (const n of [2, 3, 4]) hub.publish('channel:old', 'event', { n });
    });
    assert.equal((await events.wait('recovery')).recovered, false);
  });

  test('the sessionId option: one subscribe per connection, not the URL as well; recovered like any stream', async () => {
    const { hub, client, events } = await setup({ sessionId: 'own' });
    await waitFor(() => subscribes(hub, 0).length === 1, 'the subscription');
    await events.waitMessage('subscribed');
    hub.publish('session:own', 'ai_progress', { n: 1 });
    await events.waitMessage('ai_progress');
    await hub.away(async () => {
      await events.wait('close');
      hub.publish('session:own', 'ai_progress', { n: 2 });
    });
    await events.wait('recovery');
    hub.publish('session:own', 'ai_progress', { n: 3 });
    await waitFor(() => events.messages('ai_progress').length === 3, 'the replay, then the live one');
    assert.deepEqual(events.messages('ai_progress').map((m) => m.data.n), [1, 2, 3]);
    assert.equal(events.count('gap'), 0);
    const last = hub.queries.length - 1;
    assert.deepEqual(subscribes(hub, 0).map((m) => [m.sessionId, m.since]), [['own', undefined]]);
    assert.deepEqual(subscribes(hub, last).map((m) => [m.sessionId, m.since]), [['own', { seq: 1, epoch: 'e1' }]]);
    assert.ok(hub.queries.every((q) => q.sessionId === undefined), JSON.stringify(hub.queries));
  });

  test("a service's subscription lasts for its connection: its position is not kept past it", async () => {
    const { hub, client, events } = await setup({ userId: 'kept' });
    await events.wait('open');
    const conn = hub.connections[0];
    // A service subscribed this client: the hub says so, and publishes.
    hub.send(conn, { type: 'subscribed', channel: 'pushed', data: { seq: 4, epoch: 'p1' } });
    hub.send(conn, { type: 'event', channel: 'pushed', data: {}, seq: 5, epoch: 'p1' });
    hub.send(conn, { type: 'subscribed', channel: 'dropped', data: { seq: 1, epoch: 'd1' } });
    hub.send(conn, { type: 'unsubscribed', channel: 'dropped', data: {} });
    hub.send(conn, { type: 'notification', data: {}, seq: 2, epoch: 'u1' });
    await waitFor(() => client.positions['channel:user:kept'], 'the deliveries');
    assert.deepEqual(Object.keys(client.positions).sort(), ['channel:pushed', 'channel:user:kept']);
    assert.deepEqual(client.subscriptions, [], 'not adopted: it is not re-sent');
    hub.cut();
    await events.wait('open', () => true, 2);
    assert.deepEqual(Object.keys(client.positions), ['channel:user:kept'], "only the user's own stream is still followed");
  });
});
