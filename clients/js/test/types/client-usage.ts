// Typed use of the client, checked by `tsc --strict --noEmit`. A line under
// `// @ts-expect-error` must fail to compile: the types refuse it.

import { WshubClient, WshubError, closeAction, type AnyMessage, type Subscribed } from '@wshub/client';
import type { AgentStatus, FileChanged, HubErrorCode } from '@wshub/client';

declare const client: WshubClient;

// subscribe() resolves to where the stream stands.
export async function positions(): Promise<number> {
  const at: Subscribed = await client.subscribe('files');
  const seq: number | undefined = at.seq;
  const epoch: string | undefined = at.epoch;
  const recovered: boolean | undefined = at.recovered;
  // @ts-expect-error seq may be absent (a stream without history)
  const sure: number = at.seq;
  // @ts-expect-error no such field
  at.position;
  void [epoch, recovered, sure];
  return seq ?? 0;
}

// The seeds' events: payload types by `type`.
client.on('ai_progress', (data, message) => {
  const chunks: number = data.progress.chunksReceived;
  const session: string | undefined = message.sessionId;
  // @ts-expect-error not a field of AiProgressInfo
  data.progress.percent;
  void [chunks, session];
});
client.on('agent_status', (data) => {
  const status: AgentStatus = data;
  // @ts-expect-error state is a union of the three states
  const wrong: 'sleeping' = data.state;
  void [status, wrong];
});
client.on('stream:chunk', (data) => data.content.toUpperCase());
// @ts-expect-error the handler's payload is the event's, not a string
client.on('notification', (data: string) => data);

// Channel events: message.channel tells which, and narrows message.data.
client.on('event', (_data, message) => {
  if (message.channel === 'files') {
    const changed: FileChanged = message.data;
    void changed;
  }
  if (message.channel === 'diagnostics') {
    const severity: 'error' | 'warning' | 'info' | 'hint' = message.data.diagnostics[0].severity;
    // @ts-expect-error a diagnostics event has no `file` of its own
    message.data.file;
    void severity;
  }
});

// The client's own events.
client.on('close', ({ code, reason, willReconnect }) => console.log(code, reason, willReconnect));
client.on('recovery', ({ stream, recovered }) => console.log(stream, recovered));
// `error` is always a WshubError: its code without a cast.
client.on('error', (error) => {
  const code: string = error.code;
  console.log(code, error.closeCode, error.url, error.cause);
});
// @ts-expect-error `open` gives the welcome, which has no `code`
client.on('open', (welcome) => welcome.code);

// Messages outside the event map: data is unknown.
client.on('my:custom', (data) => {
  // @ts-expect-error unknown must be narrowed first
  data.anything;
});

// onAny: a union discriminated by type.
client.onAny((message: AnyMessage) => {
  if (message.type === 'connection') console.log(message.data.clientId, message.data.heartbeatMs);
  if (message.type === 'error') {
    const code: HubErrorCode | string = message.data.code;
    void code;
  }
  if (message.type === 'ai_complete') console.log(message.data.result.chunks);
  // @ts-expect-error a pong has no data to read
  if (message.type === 'pong') message.data.x;
});

// Publishing a seed event checks its payload.
void client.publish('files', 'notification', { level: 'info', message: 'hi' });
// @ts-expect-error `level` is one of four
void client.publish('files', 'notification', { level: 'fatal', message: 'hi' });
void client.publish({ sessionId: 's1' }, 'my:own', { anything: true });
// @ts-expect-error a channel or a session, not both
void client.publish({ channel: 'a', sessionId: 's1' }, 'my:own', 1);
// The hub's own types are received (typed) but never published.
client.on('user_presence', (data) => console.log(data.userId, data.status));
// @ts-expect-error user_presence is the hub's own
void client.publish('files', 'user_presence', { userId: 'u', status: 'online' });
// @ts-expect-error so is heartbeat
void client.publish('files', 'heartbeat', { timestamp: 't' });
// @ts-expect-error and error
void client.publish('files', 'error', {});

// The seeds' requests are typed: their data, and their replies.
export async function start(): Promise<string> {
  try {
    const reply = await client.request('agent:start', { projectId: 'p1', projectPath: '/srv/p1' });
    const type: 'agent:started' = reply.type;
    void type;
    return reply.data.sessionId;
  } catch (err) {
    // Errors carry the hub's code.
    if (err instanceof WshubError && err.code === 'busy') return 'try again';
    throw err;
  }
}
// @ts-expect-error projectPath is missing
void client.request('agent:start', { projectId: 'p1' });
void client.request('agent:cancel').then((reply) => reply.data.sessionId.toUpperCase());
void client.request('agent:message', { content: 'hi' }, { timeout: 60000 });
// Any other type: the reply you expect, named.
void client.request<{ type: 'joined'; data: { members: number } }>('room:join', { room: 'r' }).then((r) => r.data.members.toFixed());
void client.ready().then((welcome) => welcome.clientId);

// An application's own event map.
interface MyEvents {
  'chat:message': { from: string; text: string };
  'build:done': { ok: boolean; ms: number };
}
const mine = new WshubClient<MyEvents>('ws://127.0.0.1:3000/ws', { token: () => 'jwt' });
mine.on('chat:message', (data) => console.log(data.from, data.text));
// @ts-expect-error `text` is a string
mine.on('build:done', (data) => data.ok.toUpperCase());
void mine.publish('room-1', 'build:done', { ok: true, ms: 12 });
// @ts-expect-error ms is missing
void mine.publish('room-1', 'build:done', { ok: true });
mine.onAny((message) => {
  if (message.type === 'chat:message') console.log(message.data.text);
});

// An application's own request map, beside its event map.
interface MyRequests {
  'room:join': { data: { room: string }; reply: { type: 'joined'; data: { members: number } } };
}
const rooms = new WshubClient<MyEvents, MyRequests>('ws://127.0.0.1:3000/ws');
export async function join(): Promise<number> {
  const reply = await rooms.request('room:join', { room: 'r1' });
  // @ts-expect-error `room` is a string
  void rooms.request('room:join', { room: 1 });
  return reply.data.members;
}

// @ts-expect-error an unknown close action
const action: ReturnType<typeof closeAction> = 'retry';
void action;
// @ts-expect-error the options are typed
new WshubClient('ws://h/ws', { reconnect: 'yes' });
