// Run in the fresh TypeScript project after tsc built the 001 dashboard
// example (dist/examples/Dashboard.js): renders it with react-dom on jsdom,
// against a real hub, and waits for what the hub publishes to show.
// Prints one JSON line.

import { JSDOM } from 'jsdom';
import WebSocket from 'ws';

const url = process.env.WSHUB_URL;
const http = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
const token = process.env.WSHUB_ADMIN_TOKEN;
const deadline = setTimeout(() => {
  console.error(`no result within 20 s; the page: ${globalThis.document && document.body.innerHTML}`);
  process.exit(1);
}, 20000);

const dom = new JSDOM('<!doctype html><div id="root"></div><div id="team"></div>', { url: http });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
if (!globalThis.navigator) globalThis.navigator = dom.window.navigator;
// Node 20 has no global WebSocket: the page's is the ws package's.
globalThis.WebSocket = WebSocket;
globalThis.IS_REACT_ACT_ENVIRONMENT = false;

const React = (await import('react')).default;
const { createRoot } = await import('react-dom/client');
const { WshubClient } = await import('@wshub/client');
const { Dashboard, Team } = await import('./dist/examples/Dashboard.js');

const until = async (check, what) => {
  const end = Date.now() + 15000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${document.body.innerHTML}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};
const text = (selector) => document.querySelector(selector)?.textContent ?? '';
const publish = (body) =>
  fetch(`${http}/api/publish`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });

createRoot(document.getElementById('root')).render(React.createElement(Dashboard, { token: 'unused-in-development', url }));
const shared = new WshubClient(url, { userId: 'dash-user' });
createRoot(document.getElementById('team')).render(React.createElement(Team, { client: shared }));

await until(() => text('#status') === 'Status: Connected', 'connected');
await until(() => text('#online').includes('dash-user: online'), 'presence');
await publish({ broadcast: true, type: 'agent_status', data: { agentName: 'CLOUD_ASSISTANT', state: 'working', progress: 50 } });
await publish({ broadcast: true, type: 'notification', data: { level: 'success', message: 'All tests passed!' } });
await until(() => text('#agent') === 'Agent: working', 'the agent status');
await until(() => text('.alert-success') === 'All tests passed!', 'the notification');
// The hub's answer to the subscription sets its position.
await until(() => shared.positions['channel:files'], 'the feed subscribed');
await publish({ channel: 'files', type: 'event', data: { file: 'src/main.ts', event: 'change', timestamp: 't' } });
await until(() => text('#files').includes('change src/main.ts'), 'the file feed');
clearTimeout(deadline);
console.log(JSON.stringify({ status: text('#status'), agent: text('#agent'), online: text('#online'), files: text('#files') }));
process.exit(0);
