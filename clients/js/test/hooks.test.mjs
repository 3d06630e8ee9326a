// The hooks over one shared client (react.js), rendered with react-dom on
// jsdom against the real hub: WshubProvider and useWshub, useChannel
// (publications, the subscription's answer, a refusal, the last component
// to leave unsubscribes), usePresence, useRequest (a reply and an error from
// a service), useEvent.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { WshubClient } from '../wshub.js';
import { WshubService } from '../server.js';
import { WebSocket, record, startHub, startProxy, waitFor } from '../test-support/hub.mjs';
import { React, loadHooks, openPage, renderHook, renderHookIn } from '../test-support/react-env.mjs';

const ADMIN = 'hooks-admin';
const cleanup = [];
let hub;
let hooks;

before(async () => {
  hub = await startHub(['--admin-token', ADMIN, '--presence-grace', '0', '--allow-client-publish']);
  openPage();
  hooks = await loadHooks();
});
after(async () => {
  for (const fn of cleanup.reverse()) await fn();
  await hub.stop();
  // The page stays: React may still render what the closes set, after this
  // hook; the file's process ends with it.
});

function newClient(options = {}) {
  const client = new WshubClient(hub.url, { WebSocket, minDelay: 20, maxDelay: 200, ...options });
  cleanup.push(() => client.close());
  return client;
}

/** Renders `useHook()` inside a WshubProvider with `props`; unmounted after the file. */
function mountIn(props, useHook) {
  const view = renderHookIn((element) => React.createElement(hooks.WshubProvider, props, element), useHook);
  cleanup.push(() => view.unmount());
  return view;
}

describe('WshubProvider and useWshub', () => {
  test('a provider with a url owns a client; useWshub follows its state', async () => {
    const view = mountIn({ url: hub.url, options: { WebSocket, userId: 'prov-user' } }, () => hooks.useWshub());
    await view.until((v) => v.isConnected, 'connected');
    assert.equal(view.current.state, 'open');
    assert.equal(view.current.welcome.userId, 'prov-user');
    assert.ok(view.current.client instanceof WshubClient);
    view.unmount();
    await waitFor(() => view.current.client.state === 'closed', 'the owned client closed with the provider');
  });

  test("useWshub's error is cleared once the client is connected again", async () => {
    const gate = await startProxy(hub.addr);
    cleanup.push(() => gate.close());
    const client = new WshubClient(gate.url, { WebSocket, minDelay: 10, maxDelay: 40 });
    cleanup.push(() => client.close());
    const view = mountIn({ client }, () => hooks.useWshub());
    await view.until((v) => v.isConnected, 'connected');
    assert.equal(view.current.error, null);
    gate.refuse = true;
    gate.cut();
    await view.until((v) => v.error && v.error.code === 'socket', 'the socket error');
    gate.refuse = false;
    await view.until((v) => v.isConnected, 'connected again');
    assert.equal(view.current.error, null, 'not a stale error next to a live connection');
  });

  test('a client from the CommonJS copy is recognised (the dual-package hazard)', async () => {
    const { WshubClient: CjsClient } = createRequire(import.meta.url)('../cjs/wshub.cjs');
    const client = new CjsClient(hub.url, { WebSocket, userId: 'from-cjs' });
    cleanup.push(() => client.close());
    const probe = renderHook(hooks.useWshub, { client });
    cleanup.push(() => probe.unmount());
    await probe.until((v) => v.isConnected, 'connected');
    assert.equal(probe.current.client, client, 'its own client, not one made from the options');
    assert.equal(probe.current.welcome.userId, 'from-cjs');
  });

  test("'use client' opens the hooks module and its CommonJS copy (React Server Components)", () => {
    for (const file of ['../react.js', '../cjs/react.cjs']) {
      const text = readFileSync(new URL(file, import.meta.url), 'utf8');
      assert.match(text, /^(\/\/[^\n]*\n)*'use client';\n/, file);
    }
  });

  test('useWshub(options) owns a client of its own', async () => {
    const probe = renderHook(hooks.useWshub, { url: hub.url, WebSocket, userId: 'own-user' });
    cleanup.push(() => probe.unmount());
    await probe.until((v) => v.isConnected, 'connected');
    assert.equal(probe.current.welcome.userId, 'own-user');
  });
});

describe('useChannel', () => {
  test('publications, the subscription answer, publish; the last to leave unsubscribes', async () => {
    const client = newClient({ userId: 'chan-user' });
    const view = mountIn({ client }, () => hooks.useChannel('dash-files', { keep: 2 }));
    const twin = mountIn({ client }, () => hooks.useChannel('dash-files'));
    await view.until((v) => v.subscribed, 'subscribed');
    assert.equal(typeof view.current.subscribed.seq, 'number');
    assert.equal(typeof view.current.subscribed.epoch, 'string');

    for (const n of [1, 2, 3]) {
      await hub.post('/api/publish', { channel: 'dash-files', type: 'event', data: { file: `f${n}.ts`, event: 'change' } }, ADMIN);
    }
    await view.until((v) => v.messages.length === 2 && v.lastMessage.data.file === 'f3.ts', 'the last two kept');
    assert.deepEqual(view.current.messages.map((m) => m.data.file), ['f2.ts', 'f3.ts']);
    assert.equal(await view.current.publish('event', { file: 'mine.ts', event: 'add' }), 1);
    await view.until((v) => v.lastMessage.data.file === 'mine.ts', 'its own publication');

    view.unmount();
    await twin.until((v) => v.messages.length === 4, 'the other component still receives');
    const subscribers = async () => (await hub.get('/api/subscribers?channel=dash-files', ADMIN)).data.clients.length;
    assert.equal(await subscribers(), 1, 'one component left; the other holds the subscription');
    twin.unmount();
    await waitFor(async () => (await subscribers()) === 0, 'unsubscribed when the last left');
  });

  test('under StrictMode (mount, cleanup, mount) the channel stays subscribed, and after a reconnect', async () => {
    const client = newClient({ userId: 'strict-user' });
    const events = record(client);
    // Open first, so that the cleanup's unsubscribe goes out between the two subscribes.
    await events.wait('open');
    const strict = (element) => React.createElement(React.StrictMode, null, React.createElement(hooks.WshubProvider, { client }, element));
    const view = renderHookIn(strict, () => hooks.useChannel('strict-files'));
    cleanup.push(() => view.unmount());
    await view.until((v) => v.subscribed, 'subscribed');
    const subscribers = async () => (await hub.get('/api/subscribers?channel=strict-files', ADMIN)).data.clients.map((c) => c.id);
    await waitFor(async () => (await subscribers())[0] === client.clientId, 'the hub has the subscription');
    await hub.post('/api/publish', { channel: 'strict-files', type: 'event', data: { n: 1 } }, ADMIN);
    await view.until((v) => v.messages.some((m) => m.data.n === 1), 'the first publication');
    assert.deepEqual(client.subscriptions, ['channel:strict-files']);

    await hub.post('/api/disconnect', { clientId: client.clientId, code: 4000, reason: 'Reconnect, please' }, ADMIN);
    await events.wait('open', () => true, 2);
    await waitFor(async () => (await subscribers())[0] === client.clientId, 're-subscribed on the new connection');
    await hub.post('/api/publish', { channel: 'strict-files', type: 'event', data: { n: 2 } }, ADMIN);
    await view.until((v) => v.messages.some((m) => m.data.n === 2), 'a publication after the reconnect');
  });

  test('a refused subscription is the error', async () => {
    const client = newClient();
    const view = mountIn({ client }, () => hooks.useChannel('bad name'));
    await view.until((v) => v.error, 'the error');
    assert.equal(view.current.error.code, 'invalid_channel');
  });
});

describe('usePresence and useEvent', () => {
  test('who is online, kept current; setStatus; a handler per type', async () => {
    const client = newClient({ userId: 'watcher' });
    const notes = [];
    const view = mountIn({ client }, () => {
      hooks.useEvent('notification', (data) => notes.push(data.message));
      return hooks.usePresence();
    });
    await view.until((v) => v.users.some((u) => u.userId === 'watcher'), 'itself online');
    const other = newClient({ userId: 'visitor' });
    await record(other).wait('open');
    await view.until((v) => v.statusOf('visitor') === 'online', 'the visitor');
    await other.setPresence('away');
    await view.until((v) => v.statusOf('visitor') === 'away', 'away');
    other.close();
    await view.until((v) => v.statusOf('visitor') === 'offline' && !v.users.some((u) => u.userId === 'visitor'), 'gone');
    await view.current.setStatus('busy');
    await view.until((v) => v.statusOf('watcher') === 'busy', 'its own status');

    await hub.post('/api/publish', { userId: 'watcher', type: 'notification', data: { level: 'info', message: 'hello' } }, ADMIN);
    await waitFor(() => notes.includes('hello'), 'the notification');
  });
});

describe('useRequest', () => {
  test('loading, the reply and its data; an error reply', async () => {
    const backend = new WshubService(hub.url, { WebSocket, token: ADMIN });
    cleanup.push(() => backend.close());
    // It answers once the test has seen the hook loading.
    let answer;
    const answered = new Promise((resolve) => (answer = resolve));
    backend.handle('agent:start', async (req) => {
      await answered;
      req.reply('agent:started', { sessionId: `s-${req.data.projectId}` });
    });
    backend.handle('agent:fail', (req) => req.error('agent_failed', 'No agent'));
    await backend.ready();
    const client = newClient();
    const view = mountIn({ client }, () => ({ start: hooks.useRequest('agent:start'), fail: hooks.useRequest('agent:fail') }));
    await waitFor(() => client.state === 'open', 'open');
    assert.equal(view.current.start.loading, false);
    const pending = view.current.start.send({ projectId: 'p1' });
    await view.until((v) => v.start.loading, 'loading');
    answer();
    const reply = await pending;
    assert.equal(reply.type, 'agent:started');
    await view.until((v) => !v.start.loading && v.start.data, 'the reply');
    assert.deepEqual(view.current.start.data, { sessionId: 's-p1' });

    await view.current.fail.send({}).catch(() => {});
    await view.until((v) => v.fail.error, 'the error');
    assert.deepEqual([view.current.fail.error.code, view.current.fail.loading], ['agent_failed', false]);
  });
});
