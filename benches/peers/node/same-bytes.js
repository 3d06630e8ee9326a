'use strict';
// Checks that the benchmark's servers send the same bytes for the same
// work: connects to each server given, in turn, as the benchmark's clients
// do (a subscriber of `bench`, a publisher asking for `published`, a
// `ping`), and prints every message's length and the delivery itself.
//
//   node same-bytes.js ws://127.0.0.1:PORT1/ws ws://127.0.0.1:PORT2/ws ...
//
// Start each server fresh (wshub with --allow-client-publish), so their
// counters (client ids, seq) have the same number of digits. Exits 1 if
// the servers' messages of a type differ in length.

const WebSocket = require('ws');

const CHANNEL = 'bench';
const TIMEOUT_MS = 5000;

// The benchmark's 64-byte payload (benches/hub/fanout.rs, push_publish),
// with a send time of the width it has there.
const head = '{"Kseq":0,"Ksent":1765133459813000000,"pad":"';
const data = `${head}${'x'.repeat(64 - head.length - 2)}"}`;

/** A socket whose text messages are read one at a time, in order. */
function connect(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const queue = [];
    const waiting = [];
    ws.on('message', (raw) => {
      const text = raw.toString();
      if (waiting.length > 0) waiting.shift()(text);
      else queue.push(text);
    });
    ws.on('error', reject);
    ws.on('open', () => {
      ws.next = () =>
        queue.length > 0
          ? Promise.resolve(queue.shift())
          : new Promise((ok, fail) => {
              const timer = setTimeout(() => fail(new Error(`${url}: nothing for ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
              waiting.push((text) => {
                clearTimeout(timer);
                ok(text);
              });
            });
      resolve(ws);
    });
  });
}

/** Reads until a message of `type`; returns every message read. */
async function until(ws, type) {
  const seen = [];
  for (;;) {
    const text = await ws.next();
    seen.push(text);
    if (JSON.parse(text).type === type) return seen;
  }
}

/** The messages one server sends, in order: [who, text]. */
async function exchange(url) {
  const sub = await connect(url);
  const pub = await connect(url);
  const got = [];
  const note = (who, texts) => texts.forEach((text) => got.push([who, text]));
  note('subscriber', await until(sub, 'connection'));
  note('publisher', await until(pub, 'connection'));
  sub.send(JSON.stringify({ type: 'subscribe', channel: CHANNEL, correlationId: 'sub' }));
  note('subscriber', await until(sub, 'subscribed'));
  pub.send(`{"type":"publish","channel":"${CHANNEL}","correlationId":1,"data":${data}}`);
  note('publisher', await until(pub, 'published'));
  note('subscriber', await until(sub, 'event'));
  pub.send('{"type":"ping","correlationId":2}');
  note('publisher', await until(pub, 'pong'));
  sub.close();
  pub.close();
  return got;
}

async function main() {
  const urls = process.argv.slice(2);
  if (urls.length === 0) {
    console.error('usage: node same-bytes.js URL...');
    process.exit(2);
  }
  const lengths = new Map(); // type -> Map url -> length
  for (const url of urls) {
    console.log(url);
    for (const [who, text] of await exchange(url)) {
      const { type } = JSON.parse(text);
      const bytes = Buffer.byteLength(text);
      console.log(`  ${who.padEnd(10)} ${String(bytes).padStart(4)}  ${text}`);
      const key = `${who} ${type}`;
      if (!lengths.has(key)) lengths.set(key, new Map());
      // The first of its type (the welcome's `auth` follows it).
      if (!lengths.get(key).has(url)) lengths.get(key).set(url, bytes);
    }
  }
  let same = true;
  console.log();
  for (const [key, byUrl] of lengths) {
    const values = urls.map((url) => byUrl.get(url) ?? '-');
    const equal = values.every((v) => v === values[0]);
    same &&= equal;
    console.log(`${equal ? 'same' : 'DIFF'}  ${key.padEnd(22)} ${values.join(' ')}`);
  }
  process.exit(same ? 0 : 1);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(2);
});
