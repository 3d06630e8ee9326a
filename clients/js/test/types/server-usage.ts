// Typed use of the backend SDK, checked by `tsc --strict --noEmit`.

import { WshubClient, WshubError } from '@wshub/client';
import { WshubHttp, WshubService, type HubStats } from '@wshub/client/server';

// The requests it handles, by type: their data and replies. The same map
// types a client's request().
interface Requests {
  'agent:start': { data: { projectId: string; projectPath: string }; reply: { type: 'agent:started'; data: { sessionId: string } } };
  'agent:message': { data: { content: string }; reply: { type: 'stream:complete'; data: { sessionId: string } } };
  'math:add': { data: { a: number; b: number }; reply: { type: 'math:add'; data: number } };
}

const hub = new WshubService<Requests>('ws://127.0.0.1:3000/ws', { token: 'admin' });
hub.handle('math:add', (req) => req.data.a + req.data.b);
// @ts-expect-error `a` is a number
hub.handle('math:add', (req) => req.data.a.toUpperCase());
hub.on('error', (error) => console.log(error.code, error.message));

export async function add(client: WshubClient<{}, Requests>): Promise<number> {
  const sum = await client.request('math:add', { a: 1, b: 2 });
  // @ts-expect-error b is missing
  void client.request('math:add', { a: 1 });
  const started = await client.request('agent:start', { projectId: 'p', projectPath: '/p' });
  const session: string = started.data.sessionId;
  void session;
  return sum.data;
}

// The seeds' request map is the default: 003's agent service, typed.
const seeds = new WshubService('ws://127.0.0.1:3000/ws', { token: 'admin' });
seeds.handle('agent:start', (req) => req.reply('agent:started', { sessionId: `${req.data.projectId}:${req.sessionId ?? req.clientId}` }));
seeds.handle('agent:message', (req) => {
  const sessionId = req.sessionId ?? req.clientId;
  req.stream('stream:chunk', { sessionId, content: req.data.content });
  // @ts-expect-error the client may have no session: null is not a string
  req.stream('stream:chunk', { sessionId: req.sessionId, content: 'x' });
  return req.reply('stream:complete', { sessionId });
});
seeds.handle('agent:cancel', (req) => {
  // @ts-expect-error agent:cancel carries no data
  req.data.anything;
  return req.reply('agent:cancelled', { sessionId: req.clientId });
});

hub.handle('agent:start', (req) => {
  const project: string = req.data.projectId;
  // @ts-expect-error not a field of the request's data
  req.data.nope;
  void project;
  return req.reply('agent:started', { sessionId: req.sessionId ?? req.clientId });
});
hub.handle('agent:message', async (req) => {
  for (const word of req.data.content.split(' ')) req.stream('stream:chunk', { sessionId: req.clientId, content: word });
  // @ts-expect-error stream:complete carries the sessionId
  req.reply('stream:complete', {});
  if (req.signal.aborted) return;
  req.reply('stream:complete', { sessionId: req.clientId });
});
hub.handle('other:thing', (req) => ({ echoed: req.data }));

export async function act(clientId: string): Promise<void> {
  const delivered: number = await hub.publish({ channel: 'files' }, 'event', { file: 'a.ts', event: 'change', timestamp: 't' });
  await hub.publish({ userId: 'u1' }, 'notification', { level: 'success', message: 'done' });
  // @ts-expect-error a notification's level is one of four
  await hub.publish({ userId: 'u1' }, 'notification', { level: 'great', message: 'done' });
  await hub.publish('broadcast', 'my:event', { any: 1 }, { batched: true });
  // @ts-expect-error not a target
  await hub.publish({ room: 'x' }, 'my:event', 1);
  // @ts-expect-error exactly one target
  await hub.publish({ channel: 'files', userId: 'u1' }, 'my:event', 1);
  // @ts-expect-error the hub's own types are refused: it announces presence itself
  await hub.publish('x', 'user_presence', { userId: 'u1', status: 'online' });
  // @ts-expect-error and its heartbeat
  await hub.publish('x', 'heartbeat', { timestamp: 't' });
  // @ts-expect-error and any of its own types
  await hub.broadcast('subscribed', {});
  // @ts-expect-error not on a session either
  await hub.subscribe(clientId, { channel: 'a', sessionId: 'b' });
  const done: boolean = await hub.subscribe(clientId, { sessionId: 's1' });
  const closed: number = await hub.disconnect({ userId: 'u1' }, { code: 4000, reason: 'Bye' });
  const stats: HubStats = await hub.stats();
  const online = await hub.presence();
  console.log(delivered, done, closed, stats.activeConnections, online[0]?.status);
  const http = new WshubHttp('http://127.0.0.1:3000', { token: async () => 'admin' });
  await http.publish({ sessionId: 's1' }, 'ai_progress', { progress: { chunksReceived: 1, contentLength: 2 } });
  // @ts-expect-error reserved over HTTP too
  await http.publish('x', 'connection', {});
  try {
    await http.stats();
  } catch (err) {
    if (err instanceof WshubError) console.log(err.code, err.status);
  }
}
