// A client of the agent service's WebSocket handler (its "WebSocket
// Patterns" document), against wshub.
//
// That document has the server (`websocket.handler.ts`) and the message
// types (`messages.types.ts`), but no client code: this client is written
// against those types, with their field names, and reads each message the
// way the handler itself does (`const { type, payload, correlationId } =
// message`). It plays one session through: `agent:start`, `agent:message`
// (streamed back as `stream:chunk`s; its content is `content` in the
// harness config, if given), `agent:cancel`, `ping`, a type the service does
// not know and a frame that is not JSON, recording what each reply carried.
'use strict';

const harness = require('./harness');
const { at, record } = harness;

// IWebSocketMessage: { type, payload, timestamp: number, correlationId? },
// sent the way the handler's own `_send` builds one.
const send = (ws, type, payload, correlationId) => {
  const message = {
    type,
    payload,
    timestamp: Date.now(),
    ...(correlationId && { correlationId })
  };
  ws.send(JSON.stringify(message));
};

const ws = new WebSocket(at('ws://localhost:3001/ws'));

ws.onmessage = (event) => {
  const message = JSON.parse(event.data);
  const { type, payload, correlationId } = message;
  record('timestamp', typeof message.timestamp);

  switch (type) {
    case 'connection:established': {
      const { clientId } = payload;
      record(type, { clientId });
      // IAgentStartPayload
      send(ws, 'agent:start', { projectId: 'p1', projectPath: '/projects/p1' }, 'start-1');
      break;
    }
    case 'agent:started': {
      const { sessionId } = payload;
      record(type, { sessionId, correlationId });
      // IAgentMessagePayload
      send(ws, 'agent:message', { content: harness.config.content || 'write a haiku' });
      break;
    }
    case 'status:update': {
      // IStatusUpdatePayload
      const { sessionId, status } = payload;
      record(type, { sessionId, status });
      break;
    }
    case 'stream:chunk': {
      // IStreamChunkPayload
      const { sessionId, content } = payload;
      record(type, { sessionId, content });
      break;
    }
    case 'stream:complete': {
      const { sessionId } = payload;
      record(type, { sessionId });
      send(ws, 'agent:cancel', {}, 'cancel-1');
      break;
    }
    case 'agent:cancelled': {
      const { sessionId } = payload;
      record(type, { sessionId, correlationId });
      send(ws, 'ping', {}, 'ping-1');
      break;
    }
    case 'pong':
      record(type, { payload, correlationId });
      send(ws, 'agent:pause', {}, 'pause-1');
      break;
    case 'error': {
      const { message: text } = payload;
      record(type, { message: text, correlationId });
      // Then a frame that is not JSON, which the handler answers without
      // a correlationId.
      if (correlationId === 'pause-1') ws.send('{"type": "agent:message",');
      else harness.ready();
      break;
    }
  }
};
