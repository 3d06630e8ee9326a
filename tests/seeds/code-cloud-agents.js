// The Code Cloud Agents clients, from their WebSocket documentation: the
// browser class `CloudAgentsWebSocket` with its usage, the React hook
// `useWebSocket`, and the Node.js client, against wshub.
//
// Between the SEED lines the code is the documentation's, verbatim, but for
// the URLs, which go through at() to reach the hub under test, and the
// hook's TypeScript annotations, removed so node runs it. Around it, the
// harness: the page (`document`, `showToast`) and React (`useState`,
// `useEffect`, `useRef`) reduced to what the code calls, recording what it
// got, and the order the clients connect in.
//
// Tokens (the hub's --tokens file): `your-token-here` (the class),
// `your-token` (the hook), `test-token` (the Node.js client); a fourth
// client, with the token `not-a-token`, is let in as anonymous.
'use strict';

const harness = require('./harness');
const { at, record, until, socketsWith } = harness;

// The page the class's usage writes to.
const document = {
  getElementById: (id) => ({
    set innerText(value) {
      record(`#${id}.innerText`, value);
    },
  }),
};
const showToast = (level, message) => record('showToast', { level, message });

// React, as far as the hook goes: effects run at once, state is kept in slots.
const hookState = [];
const useState = (initial) => {
  const slot = { value: initial };
  hookState.push(slot);
  const set = (next) => {
    slot.value = typeof next === 'function' ? next(slot.value) : next;
  };
  return [initial, set];
};
const useEffect = (effect) => {
  effect();
};
const useRef = (current) => ({ current });

// ---- SEED: Browser (JavaScript)
class CloudAgentsWebSocket {
  constructor(token) {
    this.token = token;
    this.ws = null;
    this.reconnectDelay = 5000;
    this.connect();
  }

  connect() {
    this.ws = new WebSocket(at(`ws://localhost:3000/ws?token=${this.token}`));

    this.ws.onopen = () => {
      console.log('✅ WebSocket connected');
      this.startHeartbeat();
    };

    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.handleMessage(message);
    };

    this.ws.onclose = () => {
      console.log('🔌 WebSocket disconnected');
      this.reconnect();
    };

    this.ws.onerror = (error) => {
      console.error('WebSocket error:', error);
    };
  }

  handleMessage(message) {
    switch (message.type) {
      case 'agent_status':
        this.onAgentStatus(message.data);
        break;
      case 'chat_message':
        this.onChatMessage(message.data);
        break;
      case 'notification':
        this.onNotification(message.data);
        break;
      case 'user_presence':
        this.onUserPresence(message.data);
        break;
    }
  }

  startHeartbeat() {
    this.heartbeatInterval = setInterval(() => {
      this.send({ type: 'ping' });
    }, 30000);
  }

  reconnect() {
    clearInterval(this.heartbeatInterval);
    setTimeout(() => {
      console.log('🔄 Reconnecting...');
      this.connect();
    }, this.reconnectDelay);
  }

  send(message) {
    if (this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  setPresence(status) {
    this.send({
      type: 'user_presence',
      data: status
    });
  }

  // Override these in your app
  onAgentStatus(data) { console.log('Agent status:', data); }
  onChatMessage(data) { console.log('Chat message:', data); }
  onNotification(data) { console.log('Notification:', data); }
  onUserPresence(data) { console.log('User presence:', data); }

  close() {
    clearInterval(this.heartbeatInterval);
    this.ws.close();
  }
}
// ---- END SEED

// ---- SEED: React Hook (TypeScript annotations removed)
function useWebSocket(token) {
  const [isConnected, setIsConnected] = useState(false);
  const [agentStatus, setAgentStatus] = useState(null);
  const [notifications, setNotifications] = useState([]);
  const wsRef = useRef(null);

  useEffect(() => {
    const ws = new WebSocket(at(`ws://localhost:3000/ws?token=${token}`));
    wsRef.current = ws;

    ws.onopen = () => {
      setIsConnected(true);
    };

    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);

      switch (message.type) {
        case 'agent_status':
          setAgentStatus(message.data);
          break;
        case 'notification':
          setNotifications(prev => [...prev, message.data]);
          break;
      }
    };

    ws.onclose = () => {
      setIsConnected(false);
    };

    return () => {
      ws.close();
    };
  }, [token]);

  const sendPresence = (status) => {
    wsRef.current?.send(JSON.stringify({
      type: 'user_presence',
      data: status
    }));
  };

  return {
    isConnected,
    agentStatus,
    notifications,
    sendPresence
  };
}
// ---- END SEED

const greeted = (token) => () =>
  socketsWith('token', token).some((s) => s.seen.some((m) => m.type === 'auth'));
const told = (token, userId, status) => () =>
  socketsWith('token', token).some((s) =>
    s.seen.some((m) => m.type === 'user_presence' && m.data.userId === userId && m.data.status === status));

async function main() {
  // ---- SEED: Usage
  const client = new CloudAgentsWebSocket('your-token-here');

  // Custom handlers
  client.onAgentStatus = (data) => {
    document.getElementById('agent-status').innerText = data.state;
  };

  client.onNotification = (data) => {
    showToast(data.level, data.message);
  };
  // ---- END SEED
  // The two handlers the usage leaves to the class, recorded.
  client.onChatMessage = (data) => record('client.onChatMessage', data);
  client.onUserPresence = (data) => record('client.onUserPresence', data);
  await until(greeted('your-token-here'));

  const { sendPresence } = useWebSocket('your-token');
  await until(greeted('your-token'));

  {
    // ---- SEED: Node.js Client
    const WebSocket = require('ws');

    const ws = new WebSocket(at('ws://localhost:3000/ws?token=test-token'));

    ws.on('open', () => {
      console.log('✅ Connected');

      // Send presence
      ws.send(JSON.stringify({
        type: 'user_presence',
        data: 'online'
      }));
    });

    ws.on('message', (data) => {
      const message = JSON.parse(data);
      console.log('📨', message);
    });

    ws.on('close', () => {
      console.log('🔌 Disconnected');
    });
    // ---- END SEED
    harness.watch(ws, ws.url);
  }
  await until(greeted('test-token'));

  if (harness.config.anonymous !== false) {
    const anonymous = new CloudAgentsWebSocket('not-a-token');
    anonymous.onAgentStatus = (data) => record('anonymous.onAgentStatus', data);
    anonymous.onChatMessage = (data) => record('anonymous.onChatMessage', data);
    anonymous.onNotification = (data) => record('anonymous.onNotification', data);
    anonymous.onUserPresence = (data) => record('anonymous.onUserPresence', data);
    await until(greeted('not-a-token'));
  }

  const user = (token) => harness.config.users[token];
  // The class's own heartbeat, without waiting 30 s for it.
  client.send({ type: 'ping' });
  await until(() => socketsWith('token', 'your-token-here')[0].seen.some((m) => m.type === 'pong'));

  sendPresence('busy');
  client.setPresence('away');
  await until(told('your-token-here', user('your-token'), 'busy'));
  await until(told('your-token', user('your-token-here'), 'away'));

  harness.ready(() => ({
    hook: {
      isConnected: hookState[0].value,
      agentStatus: hookState[1].value,
      notifications: hookState[2].value,
    },
  }));
}

main();
