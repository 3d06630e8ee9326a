// The Cursor Chat Agent's browser client, from its WebSocket documentation
// ("Client Connection" and "Client Event Handling"), against wshub.
//
// Between the SEED lines the code is the documentation's, verbatim, but for
// its URL, which goes through at() to reach the hub under test. Around it,
// the harness: the app functions the handlers call, which record what they
// got, and when to tell the test it may publish.
'use strict';

const harness = require('./harness');
const { at, record } = harness;

const displayMessage = (data) => record('displayMessage', data);
const updateIDEStatus = (data) => record('updateIDEStatus', data);
const updateConnectionStatus = (data) => record('updateConnectionStatus', data);
const updateUserApp = (data) => record('updateUserApp', data);
const updateWorkspace = (data) => record('updateWorkspace', data);

// ---- SEED: Client Connection
// Client-side connection
const ws = new WebSocket(at('ws://localhost:3000'));

ws.onopen = () => {
  console.log('Connected to WebSocket');
};

ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  handleWebSocketMessage(data);
};

ws.onclose = () => {
  console.log('Disconnected from WebSocket');
};

// ---- SEED: Client Event Handling
// Handle WebSocket messages
const handleWebSocketMessage = (data) => {
  switch (data.type) {
    case 'messageReceived':
      displayMessage(data.data);
      break;
      
    case 'ideStatusChanged':
      updateIDEStatus(data.data);
      break;
      
    case 'connectionStatus':
      updateConnectionStatus(data.data);
      break;
      
    case 'userAppDetected':
      updateUserApp(data.data);
      break;
      
    case 'workspaceChanged':
      updateWorkspace(data.data);
      break;
      
    default:
      console.log('Unknown event type:', data.type);
  }
};
// ---- END SEED

// Ready once the hub's heartbeat message (its --json-heartbeat) has come.
harness
  .until(() => harness.sockets[0].seen.some((m) => m.type === 'heartbeat'))
  .then(() => harness.ready());
