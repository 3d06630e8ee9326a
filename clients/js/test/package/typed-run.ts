// Built by tsc in the fresh TypeScript project and run against a hub: the
// 002 broadcaster example publishing to a typed client subscribed to its
// six channels. Prints one JSON line.

import WebSocket from 'ws';
import { WshubClient, type ChannelEvents } from '@wshub/client';
import { WshubService } from '@wshub/client/server';

import { EventBroadcaster } from './examples/typed-broadcaster.js';

const url = process.env.WSHUB_URL!;
const deadline = setTimeout(() => {
  console.error('no result within 20 s');
  process.exit(1);
}, 20000);

const client = new WshubClient(url, { WebSocket });
const seen: Array<{ channel: string; data: ChannelEvents[keyof ChannelEvents] }> = [];
client.on('event', (_data, message) => {
  seen.push({ channel: message.channel, data: message.data });
});
const channels: Array<keyof ChannelEvents> = ['files', 'diagnostics', 'ai-response', 'search', 'validation', 'git'];
for (const channel of channels) await client.subscribe(channel);
const hub = new WshubService(url, { token: process.env.WSHUB_ADMIN_TOKEN, WebSocket });
await hub.ready();
const broadcaster = new EventBroadcaster(hub);
await broadcaster.fileChanged('src/main.ts', 'change');
await broadcaster.diagnosticsUpdated([{ file: 'src/main.ts', line: 3, column: 7, severity: 'error', message: 'x' }]);
await broadcaster.aiChunk('r1', 'Hello', 0, true);
await broadcaster.searchProgress('retry', 1, 1, []);
await broadcaster.validationComplete({ valid: true });
await broadcaster.gitEvent('commit', 'Fix the parser');
while (seen.length < 6) await new Promise((resolve) => client.once('event', () => resolve(undefined)));
client.close();
hub.close();
clearTimeout(deadline);
console.log(JSON.stringify({ seen }));
