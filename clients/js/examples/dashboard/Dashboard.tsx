// 001's dashboard (Code Cloud Agents) on the package's hooks: the seed's
// own `useWebSocket(token)` shape, plus who is online and a channel feed.
// Built by tsc (jsx: react-jsx) and rendered against a hub in tests/npm_package.rs.

import { useWebSocket, usePresence, useChannel, WshubProvider } from '@wshub/client/react';
import type { FileChanged, WshubClient } from '@wshub/client';

export function Dashboard({ token, url }: { token: string; url?: string }) {
  const { isConnected, agentStatus, notifications, sendPresence } = useWebSocket(token, { url });

  return (
    <div>
      <div id="status">Status: {isConnected ? 'Connected' : 'Disconnected'}</div>
      <div id="agent">Agent: {agentStatus?.state}</div>
      {notifications.map((n, i) => (
        <div key={i} className={`alert-${n.level}`}>
          {n.message}
        </div>
      ))}
      <button onClick={() => void sendPresence('away')}>Away</button>
    </div>
  );
}

/** Who is online and the latest file changes, over a shared client. */
export function Team({ client }: { client: WshubClient }) {
  return (
    <WshubProvider client={client}>
      <Online />
      <FileFeed />
    </WshubProvider>
  );
}

function Online() {
  const { users } = usePresence();
  return <ul id="online">{users.map((u) => <li key={u.userId}>{`${u.userId}: ${u.status}`}</li>)}</ul>;
}

function FileFeed() {
  const { messages } = useChannel<FileChanged>('files', { types: ['event'] });
  return (
    <ol id="files">
      {messages.map((m, i) => (
        <li key={i}>{`${m.data.event} ${m.data.file}`}</li>
      ))}
    </ol>
  );
}
