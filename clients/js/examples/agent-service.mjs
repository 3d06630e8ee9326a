// 003's agent service, ported to the backend SDK: `agent:start` ->
// `agent:started`; `agent:message` -> a `stream:chunk` per word to the
// client's session, then `stream:complete` as the reply; `agent:cancel`
// stops that client's stream -> `agent:cancelled`. Run several: requests go
// round them; one that stops mid-answer leaves its clients `busy`, not waiting.
//
//   WSHUB_ADMIN_TOKEN=s3cret node agent-service.mjs ws://127.0.0.1:3000/ws
//
// AGENT_CHUNK_MS (default 20) paces the words, as a model would.

import { setTimeout as delay } from 'node:timers/promises';

import { WshubService } from '@wshub/client/server';

const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
const hub = new WshubService(process.argv[2] || 'ws://127.0.0.1:3000/ws', { token: process.env.WSHUB_ADMIN_TOKEN, WebSocket });
const pace = Number(process.env.AGENT_CHUNK_MS ?? 20);
/** clientId -> the AbortController of its running answer. */
const running = new Map();

hub.handle('agent:start', (req) => req.reply('agent:started', { sessionId: req.sessionId ?? req.clientId }));

hub.handle('agent:message', async (req) => {
  const sessionId = req.sessionId ?? req.clientId;
  const cancel = new AbortController();
  running.set(req.clientId, cancel);
  try {
    req.stream('status:update', { sessionId, status: 'streaming' });
    for (const word of String(req.data?.content ?? '').split(/\s+/).filter(Boolean)) {
      if (cancel.signal.aborted || req.signal.aborted) return;
      req.stream('stream:chunk', { sessionId, content: `${word} ` });
      await delay(pace);
    }
    req.stream('status:update', { sessionId, status: 'idle' });
    req.reply('stream:complete', { sessionId });
  } finally {
    running.delete(req.clientId);
  }
});

hub.handle('agent:cancel', (req) => {
  running.get(req.clientId)?.abort();
  return req.reply('agent:cancelled', { sessionId: req.sessionId ?? req.clientId });
});

hub.on('open', ({ clientId }) => console.log(`agent service connected as ${clientId}`));
hub.on('close', ({ code, reason, willReconnect }) => console.log(`closed ${code} ${reason}${willReconnect ? ', reconnecting' : ''}`));
process.on('SIGTERM', () => {
  hub.close();
  process.exit(0);
});
