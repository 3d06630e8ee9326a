// 003's agent flow end to end, run by tests/npm_package.rs in a fresh ESM
// project: a client (the packed WshubClient) asks the agent service
// (examples/agent-service.mjs, a separate node process written with the
// SDK) to start and to answer; the answer streams to the client's session.
// Then the backend is killed in the middle of an answer: that request gets
// `busy`; with no backend the hub says `unknown_type`; once a new backend
// is up, new requests are served. Prints one JSON line; exits 1 on failure.
//
// WSHUB_URL, WSHUB_ADMIN_TOKEN, AGENT_SERVICE (the example's path).

import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import { WshubClient } from '@wshub/client';

const url = process.env.WSHUB_URL;
const deadline = setTimeout(() => fail(new Error('no result within 60 s')), 60000);
const backends = [];
function fail(err) {
  console.error(err && err.stack ? err.stack : err);
  for (const child of backends) child.kill('SIGKILL');
  process.exit(1);
}
process.on('unhandledRejection', fail);

/** Starts the agent service and waits until it says it is connected. */
function startBackend() {
  const child = spawn(process.execPath, [process.env.AGENT_SERVICE, url], {
    env: { ...process.env, AGENT_CHUNK_MS: '20' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  backends.push(child);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const ready = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('agent service connected')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the agent service exited (${code}): ${out}`)));
  });
  return { child, ready, exited };
}

/** Resolves with the value `check()` returns once it is truthy. */
async function until(check, what) {
  const end = Date.now() + 15000;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const first = startBackend();
await first.ready;

const client = new WshubClient(url, { WebSocket, userId: 'dev', sessionId: 'agent-session' });
const chunks = [];
client.on('stream:chunk', (data, message) => chunks.push({ content: data.content, seq: message.seq, sessionId: message.sessionId }));
await until(() => client.positions['session:agent-session'], 'the session subscribed');

const started = await client.request('agent:start', { projectId: 'p1', projectPath: '/work/p1' });
const complete = await client.request('agent:message', { content: 'hello there world' });
const answered = chunks.splice(0);

// Killed in the middle of a long answer: the request in flight gets busy.
const long = client
  .request('agent:message', { content: Array.from({ length: 2000 }, (_, i) => `w${i}`).join(' ') }, { timeout: 30000 })
  .then(
    (reply) => ({ unexpected: reply.type }),
    (err) => ({ code: err.code, message: err.message }),
  );
await until(() => chunks.length >= 2, 'two chunks of the long answer');
first.child.kill('SIGKILL');
await first.exited;
const busy = await long;
const cutAfter = chunks.length;

// No backend: nobody handles it.
const nobody = await client.request('agent:start', {}).catch((err) => err.code);

// A new backend: new requests are served, from the start.
const second = startBackend();
await second.ready;
chunks.splice(0);
const again = await client.request('agent:message', { content: 'back again' });
const afterRestart = chunks.splice(0);

client.close();
second.child.kill('SIGTERM');
await second.exited;
clearTimeout(deadline);
console.log(
  JSON.stringify({
    started: { type: started.type, data: started.data },
    complete: { type: complete.type, data: complete.data },
    answered,
    busy,
    cutAfter,
    nobody,
    again: { type: again.type, data: again.data },
    afterRestart,
  }),
);
