// Runs 000's event bus bridge (examples/event-bus-bridge.mjs) against a hub
// with a client listening: domain events written to the bridge reach the
// client as the Cursor Chat Agent's messages. Prints one JSON line.

import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { WshubClient } from '@wshub/client';

const url = process.env.WSHUB_URL;
const deadline = setTimeout(() => {
  console.error('no result within 20 s');
  process.exit(1);
}, 20000);

const client = new WshubClient(url, { WebSocket });
const got = [];
client.onAny((message) => {
  if (message.type === 'messageReceived' || message.type === 'ideStatusChanged') got.push({ type: message.type, data: message.data });
});
await new Promise((resolve) => client.once('open', resolve));

const bridge = spawn(process.execPath, ['event-bus-bridge.mjs', url], { stdio: ['pipe', 'pipe', 'inherit'] });
const exited = new Promise((resolve) => bridge.on('exit', resolve));
await new Promise((resolve) => {
  bridge.stdout.on('data', (chunk) => String(chunk).includes('bridging') && resolve());
});
bridge.stdin.write(`${JSON.stringify({ event: 'MessageSent', data: { id: 'msg-123', content: 'Hello, Cursor!', timestamp: 't' } })}\n`);
bridge.stdin.write(`${JSON.stringify({ event: 'activeIDEChanged', data: { port: 9223, status: 'active', workspacePath: '/w' } })}\n`);
while (got.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
bridge.stdin.end();
const code = await exited;
client.close();
clearTimeout(deadline);
console.log(JSON.stringify({ got, code }));
