// Typed use through require() (the package's .d.cts), checked by tsc.

import wshub = require('@wshub/client');
import server = require('@wshub/client/server');

const client = new wshub.WshubClient('ws://127.0.0.1:3000/ws');
client.on('ai_progress', (data) => data.progress.chunksReceived.toFixed());
// @ts-expect-error not a field
client.on('ai_progress', (data) => data.progress.nope);
const hub = new server.WshubService('ws://127.0.0.1:3000/ws', { token: 'admin' });
hub.handle('x', (req) => req.reply('y', 1));
export const closed: wshub.CloseAction = wshub.closeAction(1000);
