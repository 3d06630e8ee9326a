// Typed use of the hooks, checked by `tsc --strict --noEmit` (jsx: react-jsx).

import { WshubClient, type FileChanged } from '@wshub/client';
import { WshubProvider, useChannel, useEvent, usePresence, useRequest, useWebSocket, useWshub } from '@wshub/client/react';

export function Status() {
  const { isConnected, state, welcome, error } = useWshub();
  // @ts-expect-error state is one of three
  const wrong: 'reconnecting' = state;
  void wrong;
  return <p title={error?.message}>{isConnected ? `as ${welcome?.userId}` : state}</p>;
}

export function Files() {
  const { messages, subscribed, error, publish } = useChannel<FileChanged>('files', { keep: 50 });
  useEvent('notification', (data) => console.log(data.level, data.message));
  // @ts-expect-error a notification has no `progress`
  useEvent('notification', (data) => data.progress);
  // Any type, as client.on takes: the client's own events, the hub's, others.
  useEvent('recovery', (event) => console.log(event.stream, event.recovered));
  useEvent('gap', (event) => console.log(event.from, event.to));
  useEvent('error', (error) => console.log(error.code));
  useEvent('user_presence', (data) => console.log(data.status));
  useEvent('my:custom', (data) => console.log(data));
  // @ts-expect-error a gap has no `recovered`
  useEvent('gap', (event) => event.recovered);
  const untyped = useChannel('elsewhere');
  // @ts-expect-error without a payload type, data is unknown
  untyped.messages.map((m) => m.data.file);
  return (
    <ul data-seq={subscribed?.seq} data-error={error?.code} onClick={() => void publish('event', { file: 'x' })}>
      {messages.map((m, i) => (
        <li key={i}>{`${m.type} ${m.channel} ${m.data.file}`}</li>
      ))}
    </ul>
  );
}

export function Online() {
  const { users, statusOf, setStatus } = usePresence();
  return (
    <button onClick={() => void setStatus('away')} title={statusOf('u1')}>
      {users.map((u) => u.userId).join(', ')}
    </button>
  );
}

export function Start() {
  // A seed request: what send takes and the reply are typed.
  const { send, data, loading, error } = useRequest('agent:start');
  const session: string | undefined = data?.sessionId;
  // @ts-expect-error projectPath is missing
  void (() => send({ projectId: 'p1' }));
  // Another: name the reply.
  const join = useRequest<{ type: 'joined'; data: { members: number } }>('room:join');
  return (
    <button disabled={loading} title={error?.code} onClick={() => void send({ projectId: 'p1', projectPath: '/srv/p1' })}>
      {session} {join.data?.members}
    </button>
  );
}

export function Legacy({ token }: { token: string }) {
  const { isConnected, agentStatus, notifications, sendPresence } = useWebSocket(token);
  // @ts-expect-error a token's hook has no `send`
  useWebSocket(token).send;
  return (
    <div onClick={() => void sendPresence('busy')}>
      {isConnected && agentStatus?.state}
      {notifications.map((n, i) => (
        <span key={i}>{n.message}</span>
      ))}
    </div>
  );
}

export function App({ client }: { client: WshubClient }) {
  return (
    <WshubProvider client={client}>
      <Status />
      <Files />
      <Online />
      <Start />
    </WshubProvider>
  );
}
