// The wshub dashboard. Everything it shows comes over its own WebSocket
// on /admin: the hub's history of every metric once (admin_history), then
// the hub's numbers every second (admin_stats). The admin token is kept in
// this tab's sessionStorage only and sent as a WebSocket subprotocol
// (wshub.bearer.<base64url token>), never in a URL. Actions (publish,
// disconnect, unsubscribe) are service commands on the same connection,
// each confirmed here first and logged by the hub with who took it.

import { Chart, short } from "./chart.js";

const TOKEN_KEY = "wshub.admin.token";
const SECONDS = 300;
const MINUTES = 60;
const REQUEST_TIMEOUT = 10000;

const $ = (selector) => document.querySelector(selector);
const access = document.querySelector('meta[name="wshub-access"]').content;

const state = {
  ws: null,
  me: null,
  refused: null,
  retry: 500,
  retryTimer: null,
  metrics: [],
  series: new Map(),
  charts: [],
  range: "seconds",
  stats: null,
  selected: null,
  pending: new Map(),
  next: 1,
};

function element(name, attributes = {}, ...children) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}

function b64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + " KiB";
  return n + " B";
}

function micros(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + " s";
  if (us >= 1e3) return (us / 1e3).toFixed(1) + " ms";
  return us + " µs";
}

function ago(ms) {
  const secs = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min";
  return Math.floor(secs / 3600) + " h " + Math.floor((secs % 3600) / 60) + " min";
}

// --- getting in ---------------------------------------------------------

function setStatus(text, kind) {
  const status = $("#status");
  status.textContent = text;
  status.className = kind;
}

function showLogin(message) {
  $("#dashboard").hidden = true;
  $("#locked").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  $("#login-message").textContent = message || "";
  setStatus("signed out", "off");
  $("#token").focus();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(state.retryTimer);
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close(1000, "Signed out");
    state.ws = null;
  }
  forget();
  showLogin();
}

/** Drops everything the hub said: nothing shows once signed out. */
function forget() {
  state.stats = null;
  state.selected = null;
  state.metrics = [];
  state.series.clear();
  state.charts = [];
  for (const id of ["#now", "#charts", "#cluster", "#channels", "#users", "#clients", "#detail", "#log"]) {
    $(id).replaceChildren();
  }
  $("#cluster-section").hidden = true;
}

function connect(token) {
  clearTimeout(state.retryTimer);
  state.refused = null;
  const url = new URL(location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "";
  url.hash = "";
  const protocols = token ? ["wshub", "wshub.bearer." + b64url(token)] : ["wshub"];
  setStatus("connecting", "wait");
  const ws = new WebSocket(url.href, protocols);
  state.ws = ws;
  ws.onmessage = (event) => receive(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.ws !== ws) return;
    state.ws = null;
    for (const [, request] of state.pending) request.reject(new Error("disconnected"));
    state.pending.clear();
    if (state.refused || event.code === 1008) {
      sessionStorage.removeItem(TOKEN_KEY);
      forget();
      if (access === "locked") return showLocked(state.refused);
      return showLogin(state.refused || `Refused (${event.code} ${event.reason})`);
    }
    setStatus(`disconnected (${event.code}); reconnecting`, "wait");
    state.retryTimer = setTimeout(() => connect(sessionStorage.getItem(TOKEN_KEY)), state.retry);
    state.retry = Math.min(state.retry * 2, 5000);
  };
}

function showLocked(message) {
  $("#login").hidden = true;
  $("#dashboard").hidden = true;
  $("#locked").hidden = false;
  if (message) $("#locked-message").textContent = message;
  setStatus("locked", "off");
}

// --- the connection -----------------------------------------------------

function receive(message) {
  const data = message.data || {};
  switch (message.type) {
    case "connection":
      state.me = data.clientId;
      state.retry = 500;
      return;
    case "admin_history":
      return history(data);
    case "admin_stats":
      return stats(data);
    case "error":
      if (data.code === "unauthorized") {
        state.refused = data.error;
        return;
      }
      break;
  }
  const request = message.correlationId && state.pending.get(message.correlationId);
  if (request) {
    state.pending.delete(message.correlationId);
    clearTimeout(request.timer);
    if (message.type === "error") request.reject(new Error(`${data.code}: ${data.error}`));
    else request.resolve(message);
  }
}

function request(body) {
  return new Promise((resolve, reject) => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    const id = `d${state.next++}`;
    const timer = setTimeout(() => {
      state.pending.delete(id);
      reject(new Error("no answer within 10 s"));
    }, REQUEST_TIMEOUT);
    state.pending.set(id, { resolve, reject, timer });
    state.ws.send(JSON.stringify({ ...body, correlationId: id }));
  });
}

// --- the series and charts ----------------------------------------------

function history(data) {
  state.metrics = data.metrics.map((m) => ({ name: m.metric, kind: m.kind, help: m.help, chart: m.chart }));
  state.series.clear();
  for (const m of data.metrics) {
    state.series.set(m.metric, { seconds: m.seconds.values.slice(), minutes: m.minutes.values.slice() });
  }
  $("#memory").textContent = `time series: ${data.metrics.length} metrics, ${bytes(data.seriesBytes)} in the hub`;
  const container = $("#charts");
  container.replaceChildren();
  const groups = new Map();
  state.metrics.forEach((metric) => {
    const key = metric.chart.title;
    if (!groups.has(key)) groups.set(key, { chart: metric.chart, metrics: [] });
    groups.get(key).metrics.push(metric);
  });
  state.charts = [...groups.values()].map((group) => ({
    chart: new Chart(container, group.chart.title, group.chart.unit),
    metrics: group.metrics,
  }));
  $("#login").hidden = true;
  $("#locked").hidden = true;
  $("#dashboard").hidden = false;
  $("#signout").hidden = access === "open";
  setStatus("live", "on");
  draw();
}

function label(name) {
  const dot = name.indexOf(".");
  return dot >= 0 ? name.slice(dot + 1) : name;
}

function draw() {
  const minutes = state.range === "minutes";
  const step = minutes ? 60 : 1;
  const span = minutes ? MINUTES * 60 : SECONDS;
  for (const { chart, metrics } of state.charts) {
    const lines = metrics.map((metric) => {
      const series = state.series.get(metric.name);
      let values = minutes ? series.minutes : series.seconds;
      // A rate's minute is its sum: drawn per second, as the seconds are.
      if (minutes && metric.kind === "rate") values = values.map((v) => v / 60);
      return { label: label(metric.name), help: metric.help, values, index: metrics.indexOf(metric) };
    });
    chart.draw(lines, { step, span });
  }
}

function append(row, key, keep) {
  if (!row) return;
  state.metrics.forEach((metric, i) => {
    const values = state.series.get(metric.name)[key];
    values.push(row[i] ?? 0);
    if (values.length > keep) values.splice(0, values.length - keep);
  });
}

// --- the numbers --------------------------------------------------------

function card(name, title, value, detail) {
  return element(
    "div",
    { class: "card", "data-now": name },
    element("div", { class: "title", textContent: title }),
    element("div", { class: "value", textContent: value }),
    element("div", { class: "detail", textContent: detail || "" }),
  );
}

function table(headers, rows) {
  const head = element("tr", {}, ...headers.map((h) => element("th", { textContent: h })));
  return element("table", {}, element("thead", {}, head), element("tbody", {}, ...rows));
}

function cells(values) {
  return values.map(([column, value]) =>
    value instanceof Node ? element("td", { "data-col": column }, value) : element("td", { "data-col": column, textContent: String(value) }),
  );
}

function button(text, onclick, className = "") {
  return element("button", { type: "button", textContent: text, onclick, className });
}

function stats(data) {
  if (!state.metrics.length) return;
  state.stats = data;
  append(data.second, "seconds", SECONDS);
  append(data.minute, "minutes", MINUTES);
  const now = data.now;
  const env = Object.entries(now.byEnvelope).map(([name, n]) => `${name} ${n}`).join(" · ");
  $("#hub").textContent = data.hub ? `hub ${data.hub}` : "";
  $("#uptime").textContent = `up ${ago(Date.now() - data.uptime * 1000)}`;
  $("#now").replaceChildren(
    card("connections", "Connections", now.connections,
      `${env} · ${now.authenticated} authenticated, ${now.anonymous} not · ${now.services} services · ${now.consoles} dashboards`),
    card("users", "Users online", now.usersOnline, `${now.users} connected here`),
    card("channels", "Channels", now.channels, `${now.sessions} sessions`),
    card("sessions", "Sessions", now.sessions, "with a subscriber here"),
    card("threads", "Threads", now.threads, `of ${now.threadLimit} · ${now.writerThreads} writers`),
    card("memory", "Memory", bytes(now.residentBytes), `${now.queuedMessages} messages queued`),
    card("redis", "Redis", now.redisUp === null ? "none" : now.redisUp ? "up" : "down",
      now.redisUp === null ? "this hub alone" : data.hub ? `as ${data.hub}` : ""),
    card("latency", "Latency p99", micros(now.latencyP99Us), "arrival to first write, last second"),
  );
  draw();
  cluster(data.cluster);
  channels(data.topChannels);
  users(data.users);
  clients(data.clients);
}

function cluster(view) {
  $("#cluster-section").hidden = !view;
  if (!view) return;
  const rows = view.hubs.map((hub) =>
    element("tr", { "data-hub": hub.hub, class: hub.this ? "this" : "" }, ...cells([
      ["hub", hub.hub + (hub.this ? " (this)" : "")],
      ["connections", hub.connections],
      ["users", hub.users],
      ["channels", hub.channels],
      ["sessions", hub.sessions],
      ["services", hub.services],
      ["sent", short(hub.sentPerSecond)],
      ["received", short(hub.receivedPerSecond)],
    ])),
  );
  const total = view.total;
  rows.push(element("tr", { "data-hub": "total", class: "total" }, ...cells([
    ["hub", `cluster: ${total.hubs} hubs, Redis ${view.redisUp ? "up" : "down"}`],
    ["connections", total.connections],
    ["users", `${total.usersOnline} online`],
    ["channels", ""],
    ["sessions", ""],
    ["services", total.services],
    ["sent", short(total.sentPerSecond)],
    ["received", short(total.receivedPerSecond)],
  ])));
  $("#cluster").replaceChildren(table(
    ["hub", "connections", "users", "channels", "sessions", "services", "out/s", "in/s"], rows));
}

function channels(top) {
  const list = (rows, column) => table(["channel", "subscribers", "msgs/s"], rows.map((r) =>
    element("tr", { "data-channel": r.channel }, ...cells([
      ["channel", r.channel], ["subscribers", r.subscribers], ["perSecond", r.perSecond],
    ])),
  ));
  $("#channels").replaceChildren(
    element("div", {}, element("h3", { textContent: "By subscribers" }), list(top.bySubscribers)),
    element("div", {}, element("h3", { textContent: "By messages/s" }), list(top.byMessages)),
  );
}

function users(listing) {
  const rows = listing.list.map((u) =>
    element("tr", { "data-user": u.userId }, ...cells([
      ["user", u.userId],
      ["status", u.status],
      ["connections", u.connections],
      ["actions", u.connections ? button("Disconnect", () => disconnectUser(u.userId)) : ""],
    ])),
  );
  $("#users").replaceChildren(
    element("p", { class: "count", textContent: `${listing.total} users online${listing.total > listing.list.length ? `, ${listing.list.length} shown` : ""}` }),
    table(["user", "status", "connections here", ""], rows),
  );
}

function clients(listing) {
  const filter = $("#client-filter").value.trim().toLowerCase();
  const shown = listing.list.filter((c) =>
    !filter || c.id.toLowerCase().includes(filter) || (c.userId || "").toLowerCase().includes(filter));
  const rows = shown.map((c) => {
    const row = element("tr", { "data-client": c.id, class: c.id === state.selected ? "selected" : "" }, ...cells([
      ["id", c.id + (c.id === state.me ? " (this page)" : "")],
      ["user", c.userId || "—"],
      ["envelope", c.envelope],
      ["kind", c.console ? "dashboard" : c.service ? "service" : c.authenticated ? "authenticated" : "anonymous"],
      ["address", c.address],
      ["subscriptions", c.channels + c.sessions],
      ["since", ago(c.connectedAt)],
    ]));
    row.onclick = () => select(c.id);
    return row;
  });
  $("#clients").replaceChildren(
    element("p", { class: "count", textContent: `${listing.total} connected${listing.total > listing.list.length ? `, the newest ${listing.list.length} listed` : ""}` }),
    table(["client", "user", "envelope", "kind", "address", "subs", "connected"], rows),
  );
}

// --- one client ---------------------------------------------------------

async function select(id) {
  state.selected = id;
  for (const row of document.querySelectorAll("tr[data-client]")) {
    row.classList.toggle("selected", row.dataset.client === id);
  }
  let answer;
  try {
    answer = await request({ type: "client_info", clientId: id });
  } catch (err) {
    return $("#detail").replaceChildren(element("p", { class: "error", textContent: String(err.message) }));
  }
  const info = answer.data;
  if (!info.found) {
    const where = info.hub ? `: it is on hub ${info.hub}, open that hub's dashboard` : " here";
    return $("#detail").replaceChildren(element("p", { textContent: `No client ${id}${where}.` }));
  }
  const c = info.client;
  const field = (name, title, value) => [
    element("dt", { textContent: title }),
    element("dd", { "data-field": name, textContent: value }),
  ];
  const subscriptions = [
    ...c.channels.map((name) => ({ channel: name })),
    ...c.sessions.map((name) => ({ sessionId: name })),
  ];
  const subs = element("ul", { class: "subs" }, ...subscriptions.map((topic) => {
    const name = topic.channel ? `channel ${topic.channel}` : `session ${topic.sessionId}`;
    return element("li", { "data-topic": name }, `${name} `, button("Unsubscribe", () => unsubscribe(c.id, topic)));
  }));
  $("#detail").replaceChildren(
    element("h3", { textContent: `Client ${c.id}` }),
    element("dl", {},
      ...field("id", "id", c.id),
      ...field("address", "address", c.address),
      ...field("user", "user", c.userId || "—"),
      ...field("envelope", "envelope", c.envelope),
      ...field("kind", "kind", c.console ? "dashboard" : c.service ? "service connection" : c.authenticated ? "authenticated" : "not authenticated"),
      ...field("queue", "queue", `${c.queue.messages} messages, ${bytes(c.queue.bytes)}`),
      ...field("since", "connected", `${new Date(c.connectedAt).toISOString()} (${ago(c.connectedAt)} ago)`),
      ...field("alive", "answers pings", c.isAlive ? "yes" : "no"),
      ...field("catching-up", "catching up", c.catchingUp.join(", ") || "—"),
      ...field("meta", "metadata", JSON.stringify(c.meta)),
    ),
    element("h4", { textContent: `Subscriptions (${subscriptions.length})` }),
    subs,
    element("div", { class: "actions" },
      Object.assign(button("Disconnect", () => disconnectClient(c.id), "danger"), { id: "detail-disconnect" }),
      button("Refresh", () => select(c.id)),
    ),
  );
}

// --- actions: each confirmed, then sent ---------------------------------

function confirmAction(text) {
  return new Promise((resolve) => {
    const dialog = $("#confirm");
    $("#confirm-text").textContent = text;
    dialog.hidden = false;
    const done = (answer) => {
      dialog.hidden = true;
      $("#confirm-yes").onclick = null;
      $("#confirm-no").onclick = null;
      resolve(answer);
    };
    $("#confirm-yes").onclick = () => done(true);
    $("#confirm-no").onclick = () => done(false);
    $("#confirm-yes").focus();
  });
}

function logAction(text, ok) {
  const entry = element("li", { class: ok ? "ok" : "error", textContent: `${new Date().toLocaleTimeString()} ${text}` });
  $("#log").prepend(entry);
  while ($("#log").children.length > 20) $("#log").lastChild.remove();
}

async function act(question, body, describe) {
  if (!(await confirmAction(question))) return logAction(`cancelled: ${question}`, true);
  try {
    const answer = await request(body);
    logAction(describe(answer.data || {}), true);
  } catch (err) {
    logAction(`${question} failed: ${err.message}`, false);
  }
}

function disconnectClient(id) {
  return act(`Disconnect client ${id}?`,
    { type: "disconnect", clientId: id, code: 1000, reason: "Disconnected from the dashboard" },
    (data) => `disconnected client ${id} (${data.count ?? 0} closed)`);
}

function disconnectUser(user) {
  return act(`Disconnect every connection of user ${user}?`,
    { type: "disconnect", userId: user, code: 1000, reason: "Disconnected from the dashboard" },
    (data) => `disconnected user ${user} (${data.count ?? 0} closed)`);
}

function unsubscribe(id, topic) {
  const name = topic.channel ? `channel ${topic.channel}` : `session ${topic.sessionId}`;
  return act(`Unsubscribe client ${id} from ${name}?`, { type: "unsubscribe", clientId: id, ...topic },
    () => `unsubscribed client ${id} from ${name}`).then(() => select(id));
}

async function publish(event) {
  event.preventDefault();
  const kind = $("#publish-target").value;
  const name = $("#publish-name").value.trim();
  const type = $("#publish-event").value.trim() || "notification";
  let data;
  try {
    data = JSON.parse($("#publish-data").value || "null");
  } catch (err) {
    return logAction(`the data is not JSON: ${err.message}`, false);
  }
  if (kind !== "broadcast" && !name) return logAction(`name the ${kind} to publish to`, false);
  const target = kind === "broadcast" ? { broadcast: true } : { [kind]: name };
  const where = kind === "broadcast" ? "everyone" : `${kind} ${name}`;
  await act(`Publish ${type} to ${where}?`, { type: "publish", event: type, data, ...target },
    (answer) => `published ${type} to ${where}: ${answer.delivered ?? 0} recipients here`);
}

// --- start --------------------------------------------------------------

function start() {
  $("#login-form").onsubmit = (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    $("#token").value = "";
    if (!token) return showLogin("Enter the admin token");
    sessionStorage.setItem(TOKEN_KEY, token);
    $("#login-message").textContent = "";
    connect(token);
  };
  $("#signout").onclick = signOut;
  $("#publish-form").onsubmit = publish;
  $("#client-filter").oninput = () => state.stats && clients(state.stats.clients);
  $("#client-find").onclick = () => {
    const id = $("#client-filter").value.trim();
    if (id) select(id);
  };
  for (const range of document.querySelectorAll("input[name=range]")) {
    range.onchange = () => {
      state.range = range.value;
      draw();
    };
  }
  if (access === "locked") return showLocked();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (access === "open" || token) connect(token);
  else showLogin();
}

start();
