/**
 * The dashboard: one WebSocket to /api/live (src/server/live.ts) pushes the gateway's overview
 * (src/server/overview.ts) every second, and this script keeps the page in step with it.
 * Rows are keyed and updated in place; every value goes in through textContent, never as HTML:
 * device ids and dead-letter reasons come from devices.
 */
import { RateChart } from './chart.js';

/** The subprotocol live.ts speaks, and the prefix that carries the token (access.ts). */
const LIVE_PROTOCOL = 'edgelog.live.v1';
const TOKEN_SUBPROTOCOL_PREFIX = 'bearer.';
/** Close codes of a refusal (access.ts): like HTTP 401 and 403. */
const CLOSE_AUTH_REQUIRED = 4401;
const CLOSE_NOT_AUTHORIZED = 4403;
/** Reconnects wait 1 s, doubling to 15 s: a restarting gateway is back in seconds, a dead one is not hammered. */
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 15_000;
/** Frames come every second; this long without one means a link that died without closing. */
const STALE_AFTER_MS = 10_000;
const TOKEN_KEY = 'edgelog.adminToken';

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

// ---- formatting ----

const COMPACT_UNITS = ['', 'k', 'M', 'G', 'T'];

/** 0.25 → "0.25", 4.2 → "4.2", 1234 → "1.2k", 3400000 → "3.4M". */
function fmtRate(n) {
  if (!(n > 0)) return '0';
  if (n < 1) return n.toFixed(2).replace(/0$/, '');
  if (n < 10) return n.toFixed(1).replace(/\.0$/, '');
  return compact(n);
}

function compact(n) {
  let unit = 0;
  while (n >= 999.5 && unit < COMPACT_UNITS.length - 1) {
    n /= 1000;
    unit++;
  }
  return (unit > 0 && n < 9.95 ? n.toFixed(1) : String(Math.round(n))) + COMPACT_UNITS[unit];
}

/** Exact up to a million (counts are read, not glanced at), compact above. */
function fmtCount(n) {
  return n < 1e6 ? n.toLocaleString('en-US') : compact(n);
}

function fmtBytes(n) {
  if (n < 0) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${unit === 0 || n >= 10 ? Math.round(n) : n.toFixed(1)} ${units[unit]}`;
}

/** 42 s, 3 min 5 s, 2 h 5 min, 3 d 4 h: two units at most. */
function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return m < 10 && s % 60 !== 0 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * "12 s ago", "3 min ago", "2 h ago": one unit is enough for a glance. Relative to the gateway's
 * clock (the overview's atMs), so a browser with a skewed clock shows the same.
 */
function fmtAgo(thenMs, nowMs) {
  if (thenMs === null) return 'never';
  const s = Math.floor((nowMs - thenMs) / 1000);
  if (s < 1) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

function fmtCatchUp(seconds) {
  if (seconds === 0) return 'caught up';
  if (seconds === null) return 'not catching up';
  return `~${fmtDuration(Math.max(1000, seconds * 1000)).replace(/ \d+ s$/, '')}`;
}

// ---- DOM helpers ----

/** Sets text only when it changed: most values stay the same from one second to the next. */
function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/** A number shown formatted, with the exact value in data-value (for tooltips-free reading and tests). */
function setNumber(el, value, text) {
  setText(el, text);
  setAttr(el, 'data-value', String(value));
}

function h(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

const views = new WeakMap();

/**
 * Makes `parent`'s children (after a <thead>) the views of `items`, in order: a key's element is
 * made once by `create`, refreshed by `update`, moved only when the order changed, and removed
 * when its key is gone.
 */
function sync(parent, items, keyOf, create, update) {
  let byKey = views.get(parent);
  if (byKey === undefined) views.set(parent, (byKey = new Map()));
  const wanted = new Set();
  let at = parent.firstElementChild;
  while (at !== null && at.tagName === 'THEAD') at = at.nextElementSibling;
  for (const item of items) {
    const key = keyOf(item);
    if (wanted.has(key)) continue;
    wanted.add(key);
    let el = byKey.get(key);
    if (el === undefined) byKey.set(key, (el = create(item)));
    update(el, item);
    if (el === at) at = at.nextElementSibling;
    else parent.insertBefore(el, at);
  }
  for (const [key, el] of byKey) {
    if (!wanted.has(key)) {
      el.remove();
      byKey.delete(key);
    }
  }
}

/** A table row of cells; `spec` is one class name per cell. */
function row(spec) {
  const tr = h('tr');
  for (const className of spec) tr.append(h('td', className));
  return tr;
}

/** An expandable <tbody>: a main row whose first cell toggles a detail row holding a sub-table of `columns` ([heading, class]). */
function expandable(name, testid, dataName, cells, columns) {
  const body = h('tbody');
  const main = row(cells);
  main.dataset.testid = testid;
  main.dataset[dataName] = name;
  const toggle = h('button', 'expander');
  toggle.type = 'button';
  toggle.setAttribute('aria-expanded', 'false');
  toggle.append(h('span', 'name', name));
  main.cells[0].append(toggle);
  const detail = h('tr', 'detail');
  detail.hidden = true;
  const cell = h('td');
  cell.colSpan = cells.length;
  const table = h('table', 'sub');
  const head = h('tr');
  for (const [text, className] of columns) head.append(h('th', className, text));
  table.append(h('thead'), h('tbody'));
  table.tHead.append(head);
  cell.append(table);
  detail.append(cell);
  body.append(main, detail);
  toggle.addEventListener('click', () => {
    detail.hidden = !detail.hidden;
    toggle.setAttribute('aria-expanded', String(!detail.hidden));
    if (!detail.hidden && body.renderDetail) body.renderDetail();
  });
  return { body, main, detail, rows: table.tBodies[0] };
}

// ---- sections ----

const chart = new RateChart($('rate-chart'), $('rate-legend'), fmtRate);

function renderHeader(g) {
  setText($('gateway-id'), g.id);
  setText($('gateway-version'), `v${g.version}`);
  setText($('uptime'), `up ${fmtDuration(g.uptimeMs)}`);
  const title = `edgelog · ${g.id}`;
  if (document.title !== title) document.title = title;
  setText($('memory'), `RSS ${fmtBytes(g.rssBytes)} · heap ${fmtBytes(g.heapUsedBytes)}`);
  const ports = Object.entries(g.ports).filter(([, port]) => port !== null);
  setText($('ports'), ports.map(([name, port]) => `${name} ${port}`).join(' · '));
}

function renderIngest(ingest, history) {
  setNumber($('ingest-rate'), ingest.readingsPerSecond, fmtRate(ingest.readingsPerSecond));
  setNumber($('stored-total'), ingest.stored, fmtCount(ingest.stored));
  setNumber($('deadlettered-total'), ingest.deadLettered, fmtCount(ingest.deadLettered));
  const refused = Object.entries(ingest.refused);
  const refusedTotal = refused.reduce((sum, [, n]) => sum + n, 0);
  setNumber($('refused-total'), refusedTotal, fmtCount(refusedTotal));
  setAttr($('refused-total'), 'title', refused.map(([code, n]) => `${code}: ${n}`).join(', ') || 'none');
  setText($('pending-bytes'), fmtBytes(ingest.pendingBytes));
  for (const [name, n] of Object.entries(ingest.connections)) {
    const el = $(`conn-${name}`);
    if (el !== null) setNumber(el, n, fmtCount(n));
  }
  $('log-full').hidden = !ingest.logFull;
  chart.update(history);
}

function renderDisk(disk) {
  // −1: the disk is the limit, so the log may grow into what is free now.
  const unlimited = disk.maxLogBytes < 0;
  const capacity = unlimited ? disk.storedBytes + disk.freeDiskBytes : disk.maxLogBytes;
  const used = capacity > 0 ? Math.min(1, disk.storedBytes / capacity) : 0;
  const reserve = unlimited && capacity > 0 ? Math.min(1, disk.minFreeDiskBytes / capacity) : 0;
  const bar = $('disk-bar');
  const fill = bar.firstElementChild;
  const width = `${(used * 100).toFixed(2)}%`;
  if (fill.style.width !== width) fill.style.width = width;
  const reserveWidth = `${(reserve * 100).toFixed(2)}%`;
  if (bar.lastElementChild.style.width !== reserveWidth) bar.lastElementChild.style.width = reserveWidth;
  setAttr(bar, 'aria-valuenow', String(Math.round(used * 100)));
  const low = disk.freeDiskBytes < 2 * disk.minFreeDiskBytes || used > 0.9;
  bar.classList.toggle('low', low);
  const percent = used * 100 < 1 && disk.storedBytes > 0 ? '<1' : String(Math.round(used * 100));
  setText($('disk-caption'), unlimited ? `${fmtBytes(disk.storedBytes)} stored, ${percent}% of what the disk can hold: the disk is the limit` : `${fmtBytes(disk.storedBytes)} of ${fmtBytes(disk.maxLogBytes)} (${percent}%)`);
  setText($('disk-stored'), fmtBytes(disk.storedBytes));
  setText($('disk-capacity'), unlimited ? 'the disk' : fmtBytes(disk.maxLogBytes));
  setText($('disk-free'), fmtBytes(disk.freeDiskBytes));
  $('disk-free').classList.toggle('bad', low);
  setText($('disk-reserve'), fmtBytes(disk.minFreeDiskBytes));
}

let deviceCounts = null;

function renderDevices(devices, nowMs) {
  if (deviceCounts === null) {
    const counts = $('devices-counts');
    deviceCounts = { text: h('span'), quiet: h('span', 'quiet-count') };
    counts.append(deviceCounts.text, deviceCounts.quiet);
  }
  setText(deviceCounts.text, `${fmtCount(devices.registered)} registered · ${fmtCount(devices.seen)} seen · `);
  setText(deviceCounts.quiet, `${fmtCount(devices.quiet)} quiet`);
  deviceCounts.quiet.classList.toggle('has-quiet', devices.quiet > 0);
  setAttr($('devices-counts'), 'title', `quiet: silent for ${fmtDuration(devices.quietAfterMs)} or more, or never seen${devices.forgotten > 0 ? `; ${devices.forgotten} forgotten to keep the table bounded` : ''}`);
  sync($('devices-body'), devices.listed, (d) => d.deviceId, createDeviceRow, (tr, d) => updateDeviceRow(tr, d, nowMs));
  $('devices-empty').hidden = devices.listed.length > 0;
  $('devices-body').closest('.table-wrap').hidden = devices.listed.length === 0;
}

function createDeviceRow(d) {
  const tr = row(['id', '', 'num', 'num opt', 'num opt', 'num opt', 'opt err']);
  tr.dataset.testid = 'device-row';
  tr.dataset.device = d.deviceId;
  const cell = tr.cells[0];
  cell.append(h('span', 'name', d.deviceId), h('span', 'badge warn quiet-badge', 'quiet'), h('span', 'sub-err'));
  return tr;
}

function updateDeviceRow(tr, d, nowMs) {
  setAttr(tr, 'data-quiet', String(d.quiet));
  tr.classList.toggle('quiet', d.quiet);
  const [id, seen, rate, readings, dead, refused, error] = tr.cells;
  id.children[1].hidden = !d.quiet;
  setText(seen, fmtAgo(d.lastSeenMs, nowMs));
  setAttr(seen, 'title', d.lastSeenMs === null ? 'not seen since the gateway started' : new Date(d.lastSeenMs).toLocaleString());
  setText(rate, fmtRate(d.ratePerSecond));
  setText(readings, fmtCount(d.readings));
  setText(dead, fmtCount(d.deadLetters));
  dead.classList.toggle('bad', d.deadLetters > 0);
  setText(refused, fmtCount(d.refusals));
  refused.classList.toggle('bad', d.refusals > 0);
  const errorText = d.lastError === null ? '' : `${d.lastError.code}: ${d.lastError.reason}`;
  setText(error, errorText);
  setAttr(error, 'title', errorText);
  // On a phone the error column is hidden; the error goes under the device id instead.
  setText(id.children[2], errorText);
  setAttr(id, 'title', errorText);
}

/** The sub-tables' columns; `opt` ones are left out on a phone, where the lag and sizes matter more. */
const PARTITION_COLUMNS = [['Partition', 'num'], ['Start', 'num opt'], ['High watermark', 'num'], ['Records', 'num'], ['Bytes', 'num']];
const OFFSET_COLUMNS = [['Topic', ''], ['Partition', 'num'], ['Committed', 'num opt'], ['High watermark', 'num'], ['Lag', 'num']];

function renderTopics(topics) {
  sync($('topics-table'), topics, (t) => t.name, createTopic, updateTopic);
  setText($('topics-count'), topics.length > 0 ? String(topics.length) : '');
  $('topics-empty').hidden = topics.length > 0;
  $('topics-table').parentElement.hidden = topics.length === 0;
}

function createTopic(t) {
  const view = expandable(t.name, 'topic-row', 'topic', ['', 'num', 'num', 'num'], PARTITION_COLUMNS);
  view.body.renderDetail = () => {
    const p = view.body.item.partitions;
    sync(view.rows, p, (x) => x.partition, () => row(PARTITION_COLUMNS.map((c) => c[1])), (tr, x) => {
      [x.partition, fmtCount(x.startOffset), fmtCount(x.highWatermark), fmtCount(x.records), fmtBytes(x.bytes)].forEach((v, i) => setText(tr.cells[i], v));
    });
  };
  return view.body;
}

function updateTopic(body, t) {
  body.item = t;
  const [, records, bytes, rate] = body.rows[0].cells;
  setText(records, fmtCount(t.records));
  setText(bytes, fmtBytes(t.bytes));
  setText(rate, fmtRate(t.ratePerSecond));
  if (!body.rows[1].hidden) body.renderDetail();
}

function renderGroups(groups, total) {
  sync($('groups-table'), groups, (g) => g.groupId, createGroup, updateGroup);
  setText($('groups-count'), total > groups.length ? `${groups.length} of ${total}` : total > 0 ? String(total) : '');
  $('groups-empty').hidden = groups.length > 0;
  $('groups-table').parentElement.hidden = groups.length === 0;
}

function createGroup(g) {
  const view = expandable(g.groupId, 'group-row', 'group', ['', '', 'num', 'num'], OFFSET_COLUMNS);
  view.main.cells[1].append(h('span', 'badge'));
  view.body.renderDetail = () => {
    const offsets = view.body.item.offsets;
    sync(view.rows, offsets, (o) => `${o.topic}/${o.partition}`, () => row(OFFSET_COLUMNS.map((c) => c[1])), (tr, o) => {
      [o.topic, o.partition, o.committed === null ? '–' : fmtCount(o.committed), fmtCount(o.highWatermark), o.lag === null ? '–' : fmtCount(o.lag)].forEach((v, i) => setText(tr.cells[i], v));
    });
  };
  return view.body;
}

/** A badge's colour by meaning: ok, warn, bad or idle. */
const GROUP_STATE_TONE = { stable: 'ok', rebalancing: 'warn', empty: 'idle', dead: 'bad' };

function updateGroup(body, g) {
  body.item = g;
  const [, state, members, lag] = body.rows[0].cells;
  const badge = state.firstElementChild;
  setText(badge, g.state);
  setAttr(badge, 'class', `badge ${GROUP_STATE_TONE[g.state.toLowerCase()] ?? 'idle'}`);
  setText(members, fmtCount(g.members));
  setText(lag, fmtCount(g.lag));
  lag.classList.toggle('warn-text', g.lag > 0);
  if (!body.rows[1].hidden) body.renderDetail();
}

const BRIDGE_STATE_TONE = { connected: 'ok', connecting: 'warn', disconnected: 'bad', closed: 'idle' };

function renderBridges(bridges, nowMs) {
  sync($('bridges-list'), bridges, (b) => b.name, createBridge, (li, b) => updateBridge(li, b, nowMs));
  $('bridges-empty').hidden = bridges.length > 0;
}

function createBridge(b) {
  const li = h('li', 'bridge');
  li.dataset.testid = 'bridge-row';
  li.dataset.bridge = b.name;
  const head = h('div', 'bridge-head');
  head.append(h('span', 'name', b.name), h('span', 'muted kind'), h('span', 'badge'));
  const stats = h('dl', 'stats');
  for (const label of ['Backlog', 'Records/s', 'Catch-up']) {
    const pair = h('div');
    pair.append(h('dt', '', label), h('dd'));
    stats.append(pair);
  }
  li.append(head, h('div', 'muted target'), stats, h('p', 'error'));
  return li;
}

function updateBridge(li, b, nowMs) {
  const [head, target, stats, error] = li.children;
  setText(head.children[1], b.kind);
  const badge = head.children[2];
  setText(badge, b.state);
  setAttr(badge, 'class', `badge ${BRIDGE_STATE_TONE[b.state] ?? 'idle'}`);
  setAttr(li, 'data-state', b.state);
  setText(target, b.target);
  const [backlog, rate, catchUp] = [...stats.querySelectorAll('dd')];
  setText(backlog, fmtCount(b.backlogRecords));
  setText(rate, fmtRate(b.recordsPerSecond));
  setText(catchUp, fmtCatchUp(b.catchUpSeconds));
  const e = b.lastError;
  setText(error, e === null ? '' : `${e.code}: ${e.message} (${fmtAgo(e.at, nowMs)})`);
  error.hidden = e === null;
}

function renderDeadLetters(deadLetters, nowMs) {
  setNumber($('deadletter-total'), deadLetters.total, fmtCount(deadLetters.total));
  // The latest ones have no id of their own; position is their key (newest first).
  sync($('deadletter-list'), deadLetters.latest.map((d, i) => ({ ...d, i })), (d) => d.i, createDeadLetter, (li, d) => updateDeadLetter(li, d, nowMs));
  $('deadletters-empty').hidden = deadLetters.total > 0;
}

function createDeadLetter() {
  const li = h('li');
  li.dataset.testid = 'deadletter-row';
  const meta = h('div', 'dead-meta');
  meta.append(h('span', 'name'), h('span', 'muted'), h('span', 'muted when'));
  li.append(meta, h('div', 'reason'));
  return li;
}

function updateDeadLetter(li, d, nowMs) {
  const [device, topic, when] = li.firstElementChild.children;
  setText(device, d.deviceId ?? 'unknown device');
  setText(topic, d.originalTopic === null ? '' : `→ ${d.originalTopic}`);
  setText(when, fmtAgo(d.timestamp, nowMs));
  setAttr(when, 'title', new Date(d.timestamp).toLocaleString());
  setText(li.lastElementChild, d.reason);
  setAttr(li.lastElementChild, 'title', d.reason);
}

/** Renders one overview; while the tab is hidden only the latest is kept, and drawn on return. */
let pending = null;

function render(o) {
  if (document.hidden) {
    pending = o;
    return;
  }
  pending = null;
  renderHeader(o.gateway);
  renderIngest(o.ingest, o.rateHistory);
  renderDisk(o.disk);
  renderDevices(o.devices, o.atMs);
  renderTopics(o.topics);
  renderDeadLetters(o.deadLetters, o.atMs);
  renderGroups(o.groups, o.groupsTotal);
  renderBridges(o.bridges, o.atMs);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && pending !== null) render(pending);
  if (!document.hidden && socket === null && retryTimer !== null) connect();
});

// ---- the token ----

function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  $('token-forget').hidden = true;
}

/** UTF-8, then base64url without padding: what access.ts decodes from the subprotocol. */
function base64url(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function askForToken(reason) {
  $('data').hidden = true;
  $('token-form-card').hidden = false;
  const error = $('token-error');
  error.hidden = reason === '';
  setText(error, reason);
  $('token-submit').disabled = false;
  setText($('token-submit'), 'Connect');
  setLive('token needed', 'token');
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token-input').value.trim();
  if (token === '') return;
  forgetToken();
  sessionStorage.setItem(TOKEN_KEY, token);
  if ($('token-remember').checked) localStorage.setItem(TOKEN_KEY, token);
  $('token-submit').disabled = true;
  setText($('token-submit'), 'Connecting…');
  attempt = 0;
  connect();
});

$('token-forget').addEventListener('click', () => {
  forgetToken();
  const ws = socket;
  socket = null;
  ws?.close(1000, 'token forgotten');
  attempt = 0;
  connect();
});

// ---- the live socket ----

let socket = null;
let attempt = 0;
let retryTimer = null;
let lastFrameMs = 0;

function setLive(text, state) {
  const el = $('live-state');
  setText(el, text);
  setAttr(el, 'data-state', state);
}

function banner(text) {
  const el = $('banner');
  setText(el, text);
  el.hidden = text === '';
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const token = storedToken();
  const protocols = [LIVE_PROTOCOL];
  if (token !== null) protocols.push(TOKEN_SUBPROTOCOL_PREFIX + base64url(token));
  if (attempt === 0) setLive('connecting', 'connecting');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/live`, protocols);
  socket = ws;
  let accepted = false;
  ws.addEventListener('message', (event) => {
    if (socket !== ws) return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message?.type !== 'overview') return;
    lastFrameMs = Date.now();
    if (!accepted) {
      accepted = true;
      attempt = 0;
      banner('');
      setLive('connected', 'connected');
      $('token-form-card').hidden = true;
      $('token-input').value = '';
      $('token-forget').hidden = token === null;
      $('data').hidden = false;
      $('data').classList.remove('stale');
    }
    render(message.overview);
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    socket = null;
    closed(event, token);
  });
}

function closed(event, token) {
  if (event.code === CLOSE_AUTH_REQUIRED) {
    // A token was offered and refused: say why (wrong, or throttled) and forget it. None offered: just ask.
    if (token !== null) forgetToken();
    askForToken(token === null ? '' : event.reason || 'the gateway refused this token');
    return;
  }
  const why = event.code === CLOSE_NOT_AUTHORIZED ? 'The gateway refused this page' : 'Lost the live connection';
  banner(event.reason ? `${why}: ${event.reason}` : `${why}; reconnecting…`);
  reconnectLater();
}

function reconnectLater() {
  setLive('reconnecting', 'reconnecting');
  // What is on the page is from before the drop: dimmed, so nobody reads it as live.
  $('data').classList.add('stale');
  // Doubling from 1 s to 15 s, with a little jitter so the pages of a restarted gateway do not return together.
  const delayMs = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt) * (0.9 + Math.random() * 0.2);
  attempt = Math.min(attempt + 1, 10);
  retryTimer = setTimeout(connect, delayMs);
}

setInterval(() => {
  if (socket !== null && lastFrameMs > 0 && Date.now() - lastFrameMs > STALE_AFTER_MS && socket.readyState === WebSocket.OPEN) {
    const ws = socket;
    socket = null;
    ws.close();
    lastFrameMs = 0;
    banner('No data from the gateway for a while; reconnecting…');
    reconnectLater();
  }
}, STALE_AFTER_MS / 2);

window.addEventListener('online', () => {
  if (socket === null && retryTimer !== null) connect();
});

connect();
