// The AI Canvas Platform's frontend clients, from its WebSocket
// documentation ("Use Cases" 1 to 3 and "JavaScript Testing"), against wshub.
//
// Between the SEED lines the code is the documentation's, verbatim, but for
// the URLs, which go through at() to reach the hub under test; each snippet
// is in a block of its own, since each names its socket `ws`. Use case 3
// starts its task with a fetch to the platform's own API first: that call is
// not the WebSocket's and is left out. Around the code, the harness: the UI
// functions the handlers call, recording what they got, and when to tell
// the test it may publish.
'use strict';

const harness = require('./harness');
const { at, record, until, socketsWith } = harness;

const called = (name) => (...args) => record(name, args);
const showLoadingIndicator = called('showLoadingIndicator');
const updateProgressBar = called('updateProgressBar');
const hideLoadingIndicator = called('hideLoadingIndicator');
const showSuccessNotification = called('showSuccessNotification');
const showErrorNotification = called('showErrorNotification');
const refreshSharedCanvas = called('refreshSharedCanvas');
const notifyUser = called('notifyUser');
const fetchGeneratedDocumentation = called('fetchGeneratedDocumentation');

{
  // ---- SEED: 1. Real-Time AI Notifications
  const ws = new WebSocket(at('ws://localhost:3001/ws?sessionId=my_session'));

  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);

    switch (message.type) {
      case 'ai_start':
        console.log('AI started processing');
        showLoadingIndicator();
        break;

      case 'ai_progress':
        console.log('Progress:', message.progress);
        updateProgressBar(message.progress);
        break;

      case 'ai_complete':
        console.log('AI completed!', message.result);
        hideLoadingIndicator();
        showSuccessNotification();
        break;

      case 'ai_error':
        console.error('AI error:', message.error);
        hideLoadingIndicator();
        showErrorNotification(message.error.message);
        break;
    }
  };
  // ---- END SEED
}

{
  // ---- SEED: 2. Multi-User Collaboration
  const ws = new WebSocket(at('ws://localhost:3001/ws?userId=user123&sessionId=shared_session'));

  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);

    if (message.type === 'ai_complete') {
      refreshSharedCanvas();
      notifyUser('AI agent completed task');
    }
  };
  // ---- END SEED
}

{
  // ---- SEED: 3. Background Processing Notifications (after its fetch)
  // Listen for completion
  const ws = new WebSocket(at('ws://localhost:3001/ws?sessionId=background_task_123'));

  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);

    if (message.type === 'ai_complete') {
      console.log('Background task completed!');
      fetchGeneratedDocumentation();
    }
  };
  // ---- END SEED
}

// ---- SEED: JavaScript Testing
const testWebSocket = () => {
  const ws = new WebSocket(at('ws://localhost:3001/ws?sessionId=test'));

  ws.onopen = () => {
    console.log('✓ Connected');

    // Test ping
    ws.send(JSON.stringify({ type: 'ping' }));

    // Test subscribe
    setTimeout(() => {
      ws.send(JSON.stringify({
        type: 'subscribe',
        sessionId: 'test_session'
      }));
    }, 1000);
  };

  ws.onmessage = (event) => {
    console.log('✓ Received:', event.data);
  };

  ws.onerror = (error) => {
    console.error('✗ Error:', error);
  };

  ws.onclose = () => {
    console.log('✗ Disconnected');
  };
};

testWebSocket();
// ---- END SEED

// Ready once every client has its welcome and the test client its
// `subscribed`.
until(
  () =>
    harness.sockets.every((s) => s.seen.some((m) => m.type === 'connection')) &&
    socketsWith('sessionId', 'test').every((s) =>
      s.seen.some((m) => m.type === 'subscribed' && m.sessionId === 'test_session'))
).then(() => harness.ready());
