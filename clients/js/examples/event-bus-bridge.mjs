// 000's event bus bridge (the Cursor Chat Agent), ported to the backend SDK:
// domain events on the application's EventBus become client messages,
// broadcast through the hub instead of a hand-written WebSocketManager.
//
//   WSHUB_ADMIN_TOKEN=s3cret node event-bus-bridge.mjs ws://127.0.0.1:3000/ws
//
// Run as a script, it bridges domain events read from stdin, one JSON line
// each: {"event": "MessageSent", "data": {...}}.

import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { WshubService } from '@wshub/client/server';

/** Domain event -> the client message type the Cursor Chat Agent's clients read. */
export const BRIDGED = {
  MessageSent: 'messageReceived',
  MessageReceived: 'messageReceived',
  activeIDEChanged: 'ideStatusChanged',
  userAppDetected: 'userAppDetected',
  connectionStatus: 'connectionStatus',
  workspaceChanged: 'workspaceChanged',
};

/** Forwards each bridged domain event to every client. */
export function bridge(eventBus, hub) {
  for (const [event, type] of Object.entries(BRIDGED)) {
    eventBus.on(event, (data) => hub.broadcast(type, data).catch((err) => console.error(`${event}: ${err.message}`)));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
  const hub = new WshubService(process.argv[2] || 'ws://127.0.0.1:3000/ws', { token: process.env.WSHUB_ADMIN_TOKEN, WebSocket });
  const eventBus = new EventEmitter();
  bridge(eventBus, hub);
  await hub.ready();
  console.log('bridging');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim()) {
      const { event, data } = JSON.parse(line);
      eventBus.emit(event, data);
    }
  }
  hub.close();
}
