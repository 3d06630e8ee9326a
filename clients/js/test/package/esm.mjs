// Run by tests/npm_package.rs in a fresh ESM project where the packed
// @wshub/client is installed: the client and the backend SDK, imported by
// their package names, against a real hub. Prints one JSON line; exits 1 on failure.
//
// WSHUB_URL, WSHUB_ADMIN_TOKEN.

import WebSocket from 'ws';
import { WshubClient, WshubError } from '@wshub/client';
import { WshubService } from '@wshub/client/server';

const url = process.env.WSHUB_URL;
const token = process.env.WSHUB_ADMIN_TOKEN;
const deadline = setTimeout(() => fail(new Error('no result within 20 s')), 20000);
function fail(err) {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
}

try {
  const service = new WshubService(url, { token, WebSocket });
  service.handle('greet', (req) => req.reply('greeted', { hello: req.data.name, user: req.userId }));
  await service.ready();
  const client = new WshubClient(url, { WebSocket, userId: 'esm-user' });
  const files = new Promise((resolve) => client.on('event', (data, message) => resolve({ data, channel: message.channel })));
  const subscribed = await client.subscribe('files');
  const delivered = await service.publish('files', 'event', { file: 'a.ts', event: 'change', timestamp: 't' });
  const event = await files;
  const reply = await client.request('greet', { name: 'esm' });
  const refused = await client.request('nobody:handles').catch((err) => ({ isWshubError: err instanceof WshubError, code: err.code }));
  client.close();
  service.close();
  clearTimeout(deadline);
  console.log(JSON.stringify({ module: 'esm', subscribed, delivered, event, reply: { type: reply.type, data: reply.data }, refused }));
} catch (err) {
  fail(err);
}
