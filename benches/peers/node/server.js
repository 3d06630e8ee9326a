'use strict';
// Reference peer for wshub's benchmark (benches/hub/): the protocol subset
// the benchmark uses (welcome, subscribe, publish, ping), written on the `ws`
// package the way the hand-rolled Node servers that wshub replaces are.
//
//   node server.js [--port N]      (or PORT=N; 0 picks a free port)
//
// Listens on 127.0.0.1 only, prints `listening on ws://ADDR/ws` on stdout,
// and exits on SIGTERM or SIGINT.
//
// What it sends has the fields of wshub's standard envelope, in wshub's
// order and with values of the same shape, so both do the same work per
// message: the `connection` welcome then `auth`, `subscribed` with where the
// channel stands (`seq`, `epoch`), and each delivery with `from` (`clientId`
// like wshub's `c_1-0954ab34`), `seq` (per channel, from 1) and `epoch` (12
// hex digits, made when the channel is first named).

const { randomBytes } = require('crypto');
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

/**
 * channel name -> its stream: the seq of its last publication in its epoch,
 * and the Set of sockets subscribed to it. A channel outlives its
 * subscribers, as a stream in wshub's history does, so its numbering goes on.
 */
const channels = new Map();
let clients = 0;

/** What wshub's welcome says of the heartbeat (its default), only so the
 * welcome weighs the same: this peer sends no protocol pings. */
const HEARTBEAT_MS = 30000;

/** `name`'s stream, opened with a new epoch if it is new. */
function open(name) {
  let channel = channels.get(name);
  if (!channel) {
    channel = { seq: 0, epoch: randomBytes(6).toString('hex'), subscribers: new Set() };
    channels.set(name, channel);
  }
  return channel;
}

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
  const clientId = `c_${(++clients).toString(16)}-${randomBytes(4).toString('hex')}`;
  const mine = new Set();
  send(ws, {
    type: 'connection',
    data: { clientId, userId: null, sessionId: null, authenticated: false, heartbeatMs: HEARTBEAT_MS },
  });
  send(ws, { type: 'auth', data: { success: true, userId: null } });

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
    const { type, channel } = msg;
    const correlationId = msg.correlationId ?? undefined; // null: none, as in wshub
    switch (type) {
      case 'ping':
        return send(ws, { type: 'pong', correlationId });
      case 'subscribe': {
        if (typeof channel !== 'string') return fail(ws, 'invalid_channel', 'Missing channel', correlationId);
        const stream = open(channel);
        stream.subscribers.add(ws);
        mine.add(channel);
        const data = { seq: stream.seq, epoch: stream.epoch };
        return send(ws, { type: 'subscribed', channel, data, correlationId });
      }
      case 'publish': {
        if (typeof channel !== 'string') return fail(ws, 'invalid_channel', 'Missing channel', correlationId);
        const stream = open(channel);
        // Encoded once; every subscriber's socket is handed the same Buffer.
        const event = Buffer.from(JSON.stringify({
          type: typeof msg.event === 'string' ? msg.event : 'event',
          channel,
          data: msg.data !== undefined ? msg.data : msg.payload,
          from: { clientId, userId: null },
          seq: ++stream.seq,
          epoch: stream.epoch,
          timestamp: new Date().toISOString(),
        }));
        let delivered = 0;
        for (const peer of stream.subscribers) {
          if (peer.readyState === 1) {
            peer.send(event, { binary: false });
            delivered++;
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
    for (const channel of mine) channels.get(channel)?.subscribers.delete(ws);
  });
  ws.on('error', () => {}); // the socket closes after it; 'close' cleans up
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
