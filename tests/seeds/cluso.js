// The Cluso Server's web client, from its WebSocket documentation ("Quick
// Start", "Client"), against wshub.
//
// Between the SEED lines the code is the documentation's, verbatim, but for
// its URL, which goes through at() to reach the hub under test. Around it,
// the harness: the function the handler calls, recording what it got, and
// when to tell the test it may publish.
'use strict';

const harness = require('./harness');
const { at, record } = harness;

const handleFileChange = (data) => record('handleFileChange', data);

// ---- SEED: Client
const ws = new WebSocket(at('ws://localhost:3000/ws'))

ws.addEventListener('open', () => {
  ws.send(JSON.stringify({
    type: 'subscribe',
    channel: 'files'
  }))
})

ws.addEventListener('message', (event) => {
  const msg = JSON.parse(event.data)
  if (msg.type === 'event' && msg.channel === 'files') {
    handleFileChange(msg.data)
  }
})
// ---- END SEED

// Ready once the hub confirmed the subscription.
harness
  .until(() => harness.sockets[0].seen.some((m) => m.type === 'subscribed' && m.channel === 'files'))
  .then(() => harness.ready());
