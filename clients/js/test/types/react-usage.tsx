// Typed use of the hooks, checked by `tsc --strict --noEmit` (jsx: react-jsx).

import { WshubClient } from '@wshub/client';
import { WshubProvider, useChannel, useEvent, usePresence, useRequest, useWebSocket, useWshub } from '@wshub/client/react';

export function Status() {
  const { isConnected, state, welcome, error } = useWshub();
  // @ts-expect-error state is one of three
  const wrong: 'reconnecting' = state;
  void wrong;
  return <p title={error?.message}>{isConnected ? `as ${welcome?.userId}` : state}</p>;
}

export function Files() {
  const { messages, subscribed, error, publish } = useChannel('files', { keep: 50 });
  useEvent('notification', (data) => console.log(data.level, data.message));
  // @ts-expect-error a notification has no `progress`
  useEvent('notification', (data) => data.progress);
  return (
    <ul data-seq={subscribed?.seq} data-error={error?.code} onClick={() => void publish('event', { file: 'x' })}>
      {messages.map((m, i) => (
        <li key={i}>{m.type}</li>
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
  const { send, data, loading, error } = useRequest<{ type: 'agent:started'; data: { sessionId: string } }>('agent:start');
  const session: string | undefined = data?.sessionId;
  return (
    <button disabled={loading} title={error?.message} onClick={() => void send({ projectId: 'p1' })}>
      {session}
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
