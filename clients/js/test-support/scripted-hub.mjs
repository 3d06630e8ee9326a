// A scripted stand-in for the hub's history and recovery (PROTOCOL.md,
// "History and recovery"), small enough to read: streams with seq and epoch,
// `subscribe` with `since` answered `subscribed {seq, epoch, recovered}` and
// a replay, and hooks to misbehave on purpose (send anything, at any time).
// It proves the client's side of recovery; recovery.test.mjs proves the same
// against the real hub.

import { requireDep } from './hub.mjs';

const { WebSocketServer } = requireDep('ws');

export async function startScriptedHub({ history = 100 } = {}) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const streams = new Map();
  const connections = [];
  let epochs = 0;
  const stream = (key) => {
    if (!streams.has(key)) streams.set(key, { epoch: `e${++epochs}`, seq: 0, log: [], subscribers: new Set() });
    return streams.get(key);
  };
  const target = (key) => {
    const [kind, ...rest] = key.split(':');
    return kind === 'session' ? { sessionId: rest.join(':') } : { channel: rest.join(':') };
  };
  const stamp = () => new Date().toISOString();

  const hub = {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    connections,
    /** Every message the clients sent, in order, with the connection's index. */
    received: [],
    /** Each connection's query parameters, by index. */
    queries: [],
    /** Called with (connection) after the welcome, before anything is read. */
    afterWelcome: null,
    /** While true, new connections are cut at once. */
    refuse: false,
    /** `(message, index) => true` leaves that message of connection `index` unanswered and undone. */
    hold: null,
    stream,
    /** Publishes on a stream (`channel:x`, `session:y`): seq + 1, kept, sent to subscribers. */
    publish(key, type, data) {
      const s = stream(key);
      s.seq += 1;
      const message = { type, ...target(key), data, seq: s.seq, epoch: s.epoch, timestamp: stamp() };
      s.log.push(message);
      if (s.log.length > history) s.log.shift();
      for (const ws of s.subscribers) ws.send(JSON.stringify(message));
      return message;
    },
    /** Forgets a stream's history: a new epoch from seq 1. */
    reset(key) {
      const s = stream(key);
      s.epoch = `e${++epochs}`;
      s.seq = 0;
      s.log = [];
    },
    send(connection, message) {
      connection.send(JSON.stringify({ timestamp: stamp(), ...message }));
    },
    /** Ends every connection the way a network cut does. */
    cut() {
      for (const ws of connections) ws.terminate();
    },
    /** Cuts the clients off, runs `meanwhile` while they cannot reconnect, then lets them back. */
    async away(meanwhile) {
      hub.refuse = true;
      hub.cut();
      await meanwhile();
      hub.refuse = false;
    },
    async close() {
      hub.cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  server.on('connection', (ws, request) => {
    if (hub.refuse) return ws.terminate();
    const index = connections.push(ws) - 1;
    const query = new URL(request.url, 'ws://x').searchParams;
    hub.queries[index] = Object.fromEntries(query);
    const userId = query.get('userId');
    const sessionId = query.get('sessionId');
    hub.send(ws, { type: 'connection', data: { clientId: `c_${index}`, userId, sessionId, authenticated: false, heartbeatMs: 30000 } });
    if (sessionId) stream(`session:${sessionId}`).subscribers.add(ws);
    if (hub.afterWelcome) hub.afterWelcome(ws, index);
    ws.on('close', () => {
      for (const s of streams.values()) s.subscribers.delete(ws);
    });
    ws.on('message', (raw) => {
      const message = JSON.parse(String(raw));
      hub.received.push({ index, message });
      if (hub.hold && hub.hold(message, index)) return undefined;
      const reply = (type, fields = {}) => hub.send(ws, { type, ...fields, correlationId: message.correlationId });
      if (message.type === 'ping') return reply('pong');
      const key = message.channel !== undefined ? `channel:${message.channel}` : message.sessionId !== undefined ? `session:${message.sessionId}` : null;
      if (message.type === 'subscribe' && key) {
        const s = stream(key);
        s.subscribers.add(ws);
        const since = message.since;
        if (!since) return reply('subscribed', { ...target(key), data: { seq: s.seq, epoch: s.epoch } });
        const oldest = s.log.length ? s.log[0].seq : s.seq + 1;
        const recovered = since.epoch === s.epoch && since.seq + 1 >= oldest;
        reply('subscribed', { ...target(key), data: { seq: s.seq, epoch: s.epoch, recovered } });
        for (const m of s.log) if (recovered && m.seq > since.seq) ws.send(JSON.stringify(m));
        return undefined;
      }
      if (message.type === 'unsubscribe' && key) {
        stream(key).subscribers.delete(ws);
        return reply('unsubscribed', target(key));
      }
      if (message.correlationId !== undefined) reply('ack');
      return undefined;
    });
  });
  return hub;
}
