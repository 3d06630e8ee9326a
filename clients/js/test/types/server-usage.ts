// Typed use of the backend SDK, checked by `tsc --strict --noEmit`.

import { WshubHttp, WshubService, type HubStats } from '@wshub/client/server';

// The requests it handles, by type, and their data.
interface Requests {
  'agent:start': { projectId: string; projectPath: string };
  'agent:message': { content: string };
}

const hub = new WshubService<Requests>('ws://127.0.0.1:3000/ws', { token: 'admin' });

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
  const done: boolean = await hub.subscribe(clientId, { sessionId: 's1' });
  const closed: number = await hub.disconnect({ userId: 'u1' }, { code: 4000, reason: 'Bye' });
  const stats: HubStats = await hub.stats();
  const online = await hub.presence();
  console.log(delivered, done, closed, stats.activeConnections, online[0]?.status);
  const http = new WshubHttp('http://127.0.0.1:3000', { token: 'admin' });
  await http.publish({ sessionId: 's1' }, 'ai_progress', { progress: { chunksReceived: 1, contentLength: 2 } });
}
