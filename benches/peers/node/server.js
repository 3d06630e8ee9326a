'use strict';
// Reference peer for wshub's benchmark (benches/hub/): the protocol subset
// the benchmark uses (welcome, subscribe, publish, ping), written on the `ws`
// package the way the hand-rolled Node servers that wshub replaces are.
//
//   node server.js [--port N]      (or PORT=N; 0 picks a free port)
//
// Listens on 127.0.0.1 only, prints `listening on ws://ADDR/ws` on stdout,
// and exits on SIGTERM or SIGINT.

const { WebSocketServer } = require('ws');

function port() {
  const at = process.argv.indexOf('--port');
  const value = at >= 0 ? process.argv[at + 1] : process.env.PORT || '0';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`not a port: ${value}`);
    process.exit(2);
  }
  return n;
}

/** channel name -> Set of sockets subscribed to it */
const channels = new Map();
let clients = 0;

function send(ws, message) {
  ws.send(JSON.stringify({ ...message, timestamp: new Date().toISOString() }));
}

function fail(ws, code, error, correlationId) {
  send(ws, { type: 'error', data: { code, error }, correlationId });
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: port(),
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 64 * 1024,
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  console.log(`listening on ws://${address}:${port}/ws`);
});

wss.on('error', (err) => {
  console.error(`server error: ${err.message}`);
  process.exit(1);
});

wss.on('connection', (ws) => {
  const clientId = `c_${(++clients).toString(36)}`;
  const mine = new Set();
  send(ws, { type: 'connection', data: { clientId } });

  ws.on('message', (raw, isBinary) => {
    if (isBinary) return fail(ws, 'unsupported_frame', 'Binary frames are not supported');
    let msg;
    try {
      msg = JSON.parse(raw.toString());
    } catch {
      return fail(ws, 'invalid_json', 'Invalid message format');
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') {
      return fail(ws, 'invalid_message', 'Invalid message format');
    }
    const { type, channel, correlationId } = msg;
    switch (type) {
      case 'ping':
        return send(ws, { type: 'pong', correlationId });
      case 'subscribe': {
        if (typeof channel !== 'string') return fail(ws, 'invalid_channel', 'Missing channel', correlationId);
        let subscribers = channels.get(channel);
        if (!subscribers) channels.set(channel, (subscribers = new Set()));
        subscribers.add(ws);
        mine.add(channel);
        return send(ws, { type: 'subscribed', channel, data: {}, correlationId });
      }
      case 'publish': {
        if (typeof channel !== 'string') return fail(ws, 'invalid_channel', 'Missing channel', correlationId);
        // Encoded once; every subscriber's socket is handed the same Buffer.
        const event = Buffer.from(JSON.stringify({
          type: typeof msg.event === 'string' ? msg.event : 'event',
          channel,
          data: msg.data !== undefined ? msg.data : msg.payload,
          from: { clientId, userId: null },
          timestamp: new Date().toISOString(),
        }));
        let delivered = 0;
        const subscribers = channels.get(channel);
        if (subscribers) {
          for (const peer of subscribers) {
            if (peer.readyState === 1) {
              peer.send(event, { binary: false });
              delivered++;
            }
          }
        }
        if (correlationId !== undefined) {
          send(ws, { type: 'published', channel, data: { delivered }, correlationId });
        }
        return undefined;
      }
      default:
        return fail(ws, 'unknown_type', `Unknown message type: ${type}`, correlationId);
    }
  });

  ws.on('close', () => {
    for (const channel of mine) {
      const subscribers = channels.get(channel);
      if (subscribers) {
        subscribers.delete(ws);
        if (subscribers.size === 0) channels.delete(channel);
      }
    }
  });
  ws.on('error', () => {}); // the socket closes after it; 'close' cleans up
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
