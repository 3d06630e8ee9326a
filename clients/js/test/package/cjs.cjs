// The same as esm.mjs, in a fresh CommonJS project: require() by package name.

const WebSocket = require('ws');
const { WshubClient, WshubError } = require('@wshub/client');
const { WshubService } = require('@wshub/client/server');
const defaultExport = require('@wshub/client').default;

const url = process.env.WSHUB_URL;
const token = process.env.WSHUB_ADMIN_TOKEN;
const deadline = setTimeout(() => fail(new Error('no result within 20 s')), 20000);
function fail(err) {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
}

async function main() {
  const service = new WshubService(url, { token, WebSocket });
  service.handle('greet', (req) => req.reply('greeted', { hello: req.data.name, user: req.userId }));
  await service.ready();
  const client = new WshubClient(url, { WebSocket, userId: 'cjs-user' });
  const files = new Promise((resolve) => client.on('event', (data, message) => resolve({ data, channel: message.channel })));
  const subscribed = await client.subscribe('files');
  const delivered = await service.publish('files', 'event', { file: 'a.ts', event: 'change', timestamp: 't' });
  const event = await files;
  const reply = await client.request('greet', { name: 'cjs' });
  const refused = await client.request('nobody:handles').catch((err) => ({ isWshubError: err instanceof WshubError, code: err.code }));
  client.close();
  service.close();
  clearTimeout(deadline);
  console.log(JSON.stringify({ module: 'cjs', defaultIsClient: defaultExport === WshubClient, subscribed, delivered, event, reply: { type: reply.type, data: reply.data }, refused }));
}
main().catch(fail);
