// History and recovery against the real hub (PROTOCOL.md, "History and
// recovery"): every publication on a stream carries `seq` and `epoch`; the
// client re-subscribes with `since` and gets what it missed, in order, once;
// it reports `recovered: false` when the hub lost the history, a `gap` when a
// message went missing on the way, and drops duplicates.
//
// These need the hub's seq/epoch and `--history-size`. A hub without them
// fails each test at its first check ("the hub sends no seq").

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WshubClient } from '../wshub.js';
import { WebSocket, record, startHub, startProxy, waitFor } from '../test-support/hub.mjs';

const ADMIN = 'admin-secret';
const cleanup = [];
let hub;

before(async () => {
  hub = await startHub(['--admin-token', ADMIN]);
  cleanup.push(() => hub.stop());
});
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

function connect(url, options = {}) {
  const client = new WshubClient(url, { WebSocket, minDelay: 10, maxDelay: 50, ...options });
  cleanup.push(() => client.close());
  return client;
}
async function proxy(target = hub.addr) {
  const p = await startProxy(target);
  cleanup.push(() => p.close());
  return p;
}
const publish = (target, data, type = 'event', on = hub) => on.post('/api/publish', { ...target, type, data }, ADMIN);

/** `subscribed` data must carry the stream's position. */
function hasPosition(data, what = 'subscribed') {
  assert.equal(typeof data.seq, 'number', `the hub sends no seq yet: ${what} is ${JSON.stringify(data)}`);
  assert.equal(typeof data.epoch, 'string', `the hub sends no epoch: ${JSON.stringify(data)}`);
}

/** Cuts the client off, runs `meanwhile` while it cannot reconnect, then lets it back in. */
async function whileAway(gate, events, meanwhile, on = hub) {
  const opens = events.count('open');
  const gone = events.all('open').at(-1).clientId;
  gate.refuse = true;
  gate.cut();
  await events.wait('close', () => true, events.count('close') + 1);
  // The hub hears of the cut a little after the client: until then it would still deliver.
  await waitFor(async () => !(await on.get('/api/ws/stats', ADMIN)).clients.some((c) => c.id === gone), 'the hub to drop the old connection');
  await meanwhile();
  gate.refuse = false;
  return events.wait('open', () => true, opens + 1);
}

describe('positions', () => {
  test('publications carry consecutive seq and one epoch; the client tracks the last', async () => {
    const client = connect(hub.url);
    const events = record(client);
    const start = await client.subscribe('rec-positions');
    hasPosition(start);
    for (const n of [1, 2, 3]) await publish({ channel: 'rec-positions' }, { n });
    await waitFor(() => events.messages('event').length === 3, 'three publications');
    const got = events.messages('event');
    assert.deepEqual(got.map((m) => m.seq), [start.seq + 1, start.seq + 2, start.seq + 3]);
    assert.ok(got.every((m) => m.epoch === start.epoch));
    assert.deepEqual(client.positions['channel:rec-positions'], { seq: start.seq + 3, epoch: start.epoch });
  });

  test("a session and the user's own channel are streams too; batch items carry their own seq", async () => {
    const client = connect(hub.url, { userId: 'streams-user' });
    const events = record(client);
    hasPosition(await client.subscribeSession('rec-session'));
    await publish({ sessionId: 'rec-session' }, { progress: { chunksReceived: 1 } }, 'ai_progress');
    await hub.post('/api/publish', { sessionId: 'rec-session', type: 'ai_progress', data: { progress: { chunksReceived: 2 } }, batched: true }, ADMIN);
    await hub.post('/api/publish', { sessionId: 'rec-session', type: 'ai_progress', data: { progress: { chunksReceived: 3 } }, batched: true }, ADMIN);
    await publish({ userId: 'streams-user' }, { level: 'info', message: 'hi' }, 'notification');
    await waitFor(() => events.messages('ai_progress').length === 3 && events.messages('notification').length === 1, 'the deliveries');
    const progress = events.messages('ai_progress');
    assert.deepEqual(progress.map((m) => m.seq - progress[0].seq), [0, 1, 2]);
    assert.deepEqual(progress.map((m) => !!m.batched), [false, true, true]);
    const note = events.messages('notification')[0];
    assert.equal(typeof note.seq, 'number');
    assert.equal(typeof note.epoch, 'string');
    assert.equal(client.positions['channel:user:streams-user'].seq, note.seq);
  });
});

describe('recovery', () => {
  test('after a network cut the missed publications come in order, once, then the live ones', async () => {
    const gate = await proxy();
    const client = connect(gate.url);
    const events = record(client);
    hasPosition(await client.subscribe('rec-cut'));
    for (const n of [1, 2]) await publish({ channel: 'rec-cut' }, { n });
    await waitFor(() => events.messages('event').length === 2, 'the first two');
    const before = client.positions['channel:rec-cut'];

    await whileAway(gate, events, async () => {
      for (const n of [3, 4, 5]) assert.equal((await publish({ channel: 'rec-cut' }, { n })).data.delivered, 0);
    });
    const recovery = await events.wait('recovery');
    assert.deepEqual(
      { stream: recovery.stream, channel: recovery.channel, recovered: recovery.recovered, since: recovery.since },
      { stream: 'channel:rec-cut', channel: 'rec-cut', recovered: true, since: before },
    );
    await waitFor(() => events.messages('event').length === 5, 'the three missed');
    await publish({ channel: 'rec-cut' }, { n: 6 });
    await waitFor(() => events.messages('event').length === 6, 'the live one');
    const got = events.messages('event');
    assert.deepEqual(got.map((m) => m.data.n), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(got.map((m) => m.seq - got[0].seq), [0, 1, 2, 3, 4, 5]);
    assert.equal(events.count('gap'), 0);
  });

  test('the session of the URL recovers too', async () => {
    const gate = await proxy();
    const client = connect(gate.url, { userId: 'url-session-user', sessionId: 'rec-url-session' });
    const events = record(client);
    const first = await events.waitMessage('subscribed', (m) => m.sessionId === 'rec-url-session');
    hasPosition(first.data);
    await publish({ sessionId: 'rec-url-session' }, { task: { prompt: 'p' } }, 'ai_start');
    await events.waitMessage('ai_start');
    await whileAway(gate, events, async () => {
      await publish({ sessionId: 'rec-url-session' }, { progress: { chunksReceived: 1 } }, 'ai_progress');
      await publish({ sessionId: 'rec-url-session' }, { result: { chunks: 1 } }, 'ai_complete');
    });
    assert.equal((await events.wait('recovery')).recovered, true);
    await events.waitMessage('ai_complete');
    const types = events.log.filter((e) => e.name === 'message' && e.event.type.startsWith('ai_')).map((e) => e.event.type);
    assert.deepEqual(types, ['ai_start', 'ai_progress', 'ai_complete']);
    assert.equal(events.count('gap'), 0);
  });

  test("a user's own channel user:<id> catches up on the notifications it missed", async () => {
    const gate = await proxy();
    const client = connect(gate.url, { userId: 'dave' });
    const events = record(client);
    hasPosition(await client.subscribe('user:dave'));
    await publish({ userId: 'dave' }, { level: 'info', message: 'one' }, 'notification');
    await events.waitMessage('notification');
    await whileAway(gate, events, async () => {
      await publish({ userId: 'dave' }, { level: 'info', message: 'two' }, 'notification');
      await publish({ userId: 'dave' }, { level: 'warning', message: 'three' }, 'notification');
    });
    assert.equal((await events.wait('recovery')).recovered, true);
    await waitFor(() => events.messages('notification').length >= 3, 'the missed notifications');
    assert.deepEqual(events.messages('notification').map((m) => m.data.message), ['one', 'two', 'three']);
  });

  test('resuming from a saved position replays from there', async () => {
    const writer = connect(hub.url);
    hasPosition(await writer.subscribe('rec-saved'));
    for (const n of [1, 2, 3]) await publish({ channel: 'rec-saved' }, { n });
    await waitFor(() => writer.positions['channel:rec-saved']?.seq >= 3, 'the writer to see them');
    const third = writer.positions['channel:rec-saved'];
    const reader = connect(hub.url);
    const events = record(reader);
    const answer = await reader.subscribe('rec-saved', { since: { seq: third.seq - 2, epoch: third.epoch } });
    assert.equal(answer.recovered, true);
    await waitFor(() => events.messages('event').length === 2, 'the replay');
    assert.deepEqual(events.messages('event').map((m) => m.data.n), [2, 3]);
  });

  test('a restarted hub lost the history: recovered false, then live again', async () => {
    const first = await startHub(['--admin-token', ADMIN]);
    cleanup.push(() => first.stop());
    const gate = await proxy(first.addr);
    const client = connect(gate.url);
    const events = record(client);
    hasPosition(await client.subscribe('rec-restart'));
    await publish({ channel: 'rec-restart' }, { n: 1 }, 'event', first);
    await events.waitMessage('event');
    await first.stop();
    const second = await startHub(['--admin-token', ADMIN]);
    cleanup.push(() => second.stop());
    gate.setTarget(second.addr);
    const recovery = await events.wait('recovery');
    assert.equal(recovery.recovered, false);
    assert.equal(recovery.stream, 'channel:rec-restart');
    await publish({ channel: 'rec-restart' }, { n: 2 }, 'event', second);
    await waitFor(() => events.messages('event').length === 2, 'the live one');
    assert.equal(events.messages('event')[1].epoch, recovery.epoch);
  });

  test('older than the history: recovered false, and what is left is delivered in order', async () => {
    const small = await startHub(['--admin-token', ADMIN, '--history-size', '2']);
    cleanup.push(() => small.stop());
    const gate = await proxy(small.addr);
    const client = connect(gate.url);
    const events = record(client);
    hasPosition(await client.subscribe('rec-old'));
    await publish({ channel: 'rec-old' }, { n: 1 }, 'event', small);
    await events.waitMessage('event');
    await whileAway(gate, events, async () => {
      for (const n of [2, 3, 4, 5]) await publish({ channel: 'rec-old' }, { n }, 'event', small);
    }, small);
    assert.equal((await events.wait('recovery')).recovered, false);
    await publish({ channel: 'rec-old' }, { n: 6 }, 'event', small);
    await events.waitMessage('event', (m) => m.data.n === 6);
    const ns = events.messages('event').map((m) => m.data.n);
    assert.equal(ns[0], 1);
    assert.deepEqual(ns.slice(1), [...ns.slice(1)].sort((a, b) => a - b), 'in order');
    assert.ok(!ns.slice(1).includes(2), `2 fell out of a history of 2: ${ns}`);
  });
});

describe('gaps and duplicates', () => {
  test('a publication lost on the way is a gap event with its range', async () => {
    const gate = await proxy();
    const client = connect(gate.url);
    const events = record(client);
    const start = await client.subscribe('rec-gap');
    hasPosition(start);
    gate.drop = (m) => m.channel === 'rec-gap' && m.data && m.data.n === 2;
    for (const n of [1, 2, 3]) await publish({ channel: 'rec-gap' }, { n });
    const gap = await events.wait('gap');
    assert.deepEqual(gap, { stream: 'channel:rec-gap', channel: 'rec-gap', epoch: start.epoch, from: start.seq + 2, to: start.seq + 2 });
    await waitFor(() => events.messages('event').length === 2, 'the two that came');
    assert.deepEqual(events.messages('event').map((m) => m.data.n), [1, 3]);
  });

  test('a publication delivered twice reaches the handlers once', async () => {
    const gate = await proxy();
    const client = connect(gate.url);
    const got = [];
    client.on('event', (data) => got.push(data.n));
    hasPosition(await client.subscribe('rec-dup'));
    gate.duplicate = (m) => m.channel === 'rec-dup' && m.type === 'event';
    for (const n of [1, 2]) await publish({ channel: 'rec-dup' }, { n });
    await waitFor(() => gate.duplicated.length === 2 && got.length >= 2, 'both, sent twice');
    // The ping's pong is queued after both copies: nothing more is coming.
    await client.request('ping');
    assert.deepEqual(got, [1, 2]);
  });
});
