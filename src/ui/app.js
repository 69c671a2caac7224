// mirrordns status page: plain JavaScript, no libraries, no build step.
// Polls the API of the server that serves it (same origin only) every two
// seconds: services and mirrors, one page of the cluster table (filtered and
// sorted by the server), quality samples and events since the last poll.
'use strict';

const POLL_MS = 2000;
const EVENTS_SHOWN = 200;
const SAMPLES_KEPT = 720;
// Between the server's samples (every 10 s), the page adds its own from
// the counters it polls, at most one per this many seconds.
const OWN_SAMPLE_S = 5;
const TOKEN_KEY = 'mirrordns-api-token';
const NUMERIC_SORTS = ['queries', 'blocks', 'exploring', 'rtt'];

const state = {
  services: [],
  mirrorState: {},
  service: null,
  query: { prefix: '', state: '', mirror: '', exploring: '', sort: 'prefix', desc: false, offset: 0, limit: 100 },
  page: null,
  eventsSince: null,
  events: [],
  eventsMissed: 0,
  samples: [],
  sampleNow: null,
  running: false,
  again: false,
};

const $ = (id) => document.getElementById(id);

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function num(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
}

function clock(seconds) {
  return new Date(seconds * 1000).toISOString().slice(11, 19);
}

// Replaces an element's content only when it changed, and gives the focus
// back to the element with the same data-key, so that polling never takes
// the keyboard focus away.
const rendered = new WeakMap();
function setHTML(el, html) {
  if (rendered.get(el) === html) return;
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  el.innerHTML = html;
  rendered.set(el, html);
  if (key) {
    const again = el.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (again) again.focus();
  }
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : response.status + ' ' + response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// An error of an operator's action stays until the next action; one of
// polling until the next poll that works.
function showError(message, sticky) {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
  el.dataset.sticky = sticky ? 'yes' : '';
}

function clearError(sticky) {
  const el = $('error');
  if (el.dataset.sticky && !sticky) return;
  el.hidden = true;
  el.textContent = '';
  el.dataset.sticky = '';
}

// ---- services and mirrors ----

function currentService() {
  return state.services.find((s) => s.name === state.service) || null;
}

async function loadServices() {
  const body = await api('/v1/services');
  state.services = body.services;
  state.mirrorState = body.mirror_state;
  if (!currentService() && state.services.length > 0) {
    state.service = state.services[0].name;
    state.query.offset = 0;
  }
  renderServiceChoices();
  renderServices();
}

function loadText(service, mirror) {
  const qps = service.qps[mirror];
  const capacity = service.capacity_qps[mirror];
  const reported = (state.mirrorState[mirror] || {}).reported_load;
  const parts = [];
  let ratio = null;
  if (capacity) {
    ratio = qps === null ? null : qps / capacity;
    parts.push(num(qps, 1) + ' of ' + num(capacity) + ' q/s');
  } else {
    parts.push(num(qps, 1) + ' q/s, no capacity set');
  }
  if (reported !== undefined) {
    parts.push('reported ' + num(reported * 100) + ' %');
    ratio = Math.max(ratio || 0, reported);
  }
  let meter = '';
  if (ratio !== null) {
    meter = '<meter min="0" max="1.2" low="0.8" high="1" optimum="0.4" value="' + Math.min(1.2, ratio).toFixed(3) + '" aria-hidden="true"></meter> ';
    parts.unshift(num(ratio * 100) + ' % of capacity' + (ratio > 1 ? ' (over)' : ''));
  }
  return meter + esc(parts.join(', '));
}

function renderServices() {
  if (state.services.length === 0) {
    setHTML($('services'), '<p>No steered services: the zones define none.</p>');
    return;
  }
  const html = state.services.map((s) => {
    const total = s.mirrors.reduce((sum, m) => sum + (s.answers[m] || 0), 0);
    const rows = s.mirrors.map((m) => {
      const ms = state.mirrorState[m] || {};
      const health = ms.healthy ? '<span class="badge ok">up</span>' : '<span class="badge bad">down</span>';
      const drained = ms.drained ? '<span class="badge warn">drained</span>' : '<span class="badge ok">in service</span>';
      const answers = s.answers[m] || 0;
      const share = total > 0 ? num((answers / total) * 100, 1) + ' %' : '–';
      const action = ms.drained ? 'undrain' : 'drain';
      const label = ms.drained ? 'Undrain' : 'Drain';
      return '<tr data-mirror="' + esc(m) + '">' +
        '<th scope="row">' + esc(m) + '</th>' +
        '<td class="health">' + health + '</td>' +
        '<td class="drained">' + drained + '</td>' +
        '<td class="load">' + loadText(s, m) + '</td>' +
        '<td class="num share">' + share + ' <span class="note">(' + num(answers) + ')</span></td>' +
        '<td><button type="button" class="drain" data-key="' + esc(s.name + ' ' + m) + '" data-mirror="' + esc(m) + '" data-action="' + action + '" aria-label="' + label + ' mirror ' + esc(m) + '">' + label + '</button></td>' +
        '</tr>';
    }).join('');
    const failed = s.failed_open > 0 ? ' · <span class="badge bad">' + num(s.failed_open) + ' answers failed open</span>' : '';
    return '<div class="service" data-service="' + esc(s.name) + '">' +
      '<h3>' + esc(s.name) + '</h3>' +
      '<p>zone ' + esc(s.zone) + ' · ' + num(s.clusters) + (s.clusters === 1 ? ' cluster: ' : ' clusters: ') + num(s.complete) + ' complete, ' + num(s.learning) + ' learning · ' + num(total) + ' steered answers' + failed + '</p>' +
      '<table><caption>Mirrors of ' + esc(s.name) + '</caption><thead><tr>' +
      '<th scope="col">Mirror</th><th scope="col">Health</th><th scope="col">Drain</th><th scope="col">Load</th><th scope="col" class="num">Share of answers</th><th scope="col">Action</th>' +
      '</tr></thead><tbody>' + rows + '</tbody></table></div>';
  }).join('');
  setHTML($('services'), '<div class="services">' + html + '</div>');
}

function renderServiceChoices() {
  const select = $('f-service');
  const html = state.services.map((s) => '<option' + (s.name === state.service ? ' selected' : '') + '>' + esc(s.name) + '</option>').join('');
  if (rendered.get(select) !== html) {
    select.innerHTML = html;
    rendered.set(select, html);
  }
  const service = currentService();
  const mirrors = service ? service.mirrors : [];
  const mirrorSelect = $('f-mirror');
  const options = '<option value="">any</option><option value="none">none (learning)</option>' +
    mirrors.map((m) => '<option' + (m === state.query.mirror ? ' selected' : '') + '>' + esc(m) + '</option>').join('');
  if (rendered.get(mirrorSelect) !== options) {
    mirrorSelect.innerHTML = options;
    rendered.set(mirrorSelect, options);
    mirrorSelect.value = state.query.mirror;
  }
}

async function setDrained(mirror, action) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    token = await askToken();
    if (!token) return;
  }
  try {
    await api('/v1/mirrors/' + encodeURIComponent(mirror) + '/' + action, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + token },
    });
    sessionStorage.setItem(TOKEN_KEY, token);
    clearError(true);
    $('live').textContent = 'Mirror ' + mirror + (action === 'drain' ? ' drained.' : ' undrained.');
  } catch (e) {
    if (e.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    showError('Could not ' + action + ' ' + mirror + ': ' + e.message + (e.status === 401 ? ' (the token will be asked for again)' : ''), true);
  }
  await refresh();
}

function askToken() {
  const dialog = $('token-dialog');
  const input = $('token-input');
  input.value = '';
  return new Promise((resolve) => {
    const done = (value) => {
      $('token-form').onsubmit = null;
      $('token-cancel').onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    $('token-form').onsubmit = (event) => {
      event.preventDefault();
      done(input.value.trim() || null);
    };
    $('token-cancel').onclick = () => done(null);
    dialog.onclose = () => done(null);
    dialog.showModal();
    input.focus();
  });
}

// ---- the cluster table ----

// "10.1" is taken as 10.1.0.0/16, as an operator would mean it.
function prefixFilter(text) {
  const t = text.trim().replace(/\.$/, '');
  if (/^\d{1,3}(\.\d{1,3}){0,2}$/.test(t)) {
    const parts = t.split('.');
    while (parts.length < 4) parts.push('0');
    return parts.join('.') + '/' + (t.split('.').length * 8);
  }
  return t;
}

function clusterURL() {
  const q = state.query;
  const params = new URLSearchParams();
  params.set('offset', q.offset);
  params.set('limit', q.limit);
  params.set('sort', (q.desc ? '-' : '') + q.sort);
  const prefix = prefixFilter(q.prefix);
  if (prefix) params.set('prefix', prefix);
  if (q.state) params.set('state', q.state);
  if (q.mirror) params.set('mirror', q.mirror);
  if (q.exploring) params.set('exploring', q.exploring);
  return '/v1/services/' + encodeURIComponent(state.service) + '/clusters?' + params.toString();
}

async function loadClusters() {
  if (!state.service) {
    state.page = null;
    renderClusters();
    return;
  }
  const url = clusterURL();
  try {
    state.page = await api(url);
    $('filter-error').hidden = true;
  } catch (e) {
    if (e.status !== 400) throw e;
    $('filter-error').textContent = 'Filter not applied: ' + e.message;
    $('filter-error').hidden = false;
    state.page = null;
  }
  state.pageURL = url;
  renderClusters();
}

const COLUMNS = [
  { key: 'prefix', label: 'Prefix' },
  { key: 'state', label: 'State' },
  { key: 'mirror', label: 'Mirror' },
  { key: 'rtt', label: 'RTT of answer', num: true },
];
const TAIL = [
  { key: 'queries', label: 'Queries', num: true },
  { key: 'blocks', label: 'Sub-blocks', num: true },
  { key: 'exploring', label: 'Exploring', num: true },
];

function rttText(v) {
  if (v === undefined || v === null) return '–';
  if (v === 'timeout') return 'timeout';
  return num(v, 1) + ' ms';
}

function renderClusters() {
  const service = currentService();
  const mirrors = service ? service.mirrors : [];
  const q = state.query;
  const header = (c) => {
    const sorted = q.sort === c.key ? (q.desc ? 'descending' : 'ascending') : 'none';
    return '<th scope="col"' + (c.num ? ' class="num"' : '') + ' aria-sort="' + sorted + '">' +
      '<button type="button" class="sort" data-key="sort-' + c.key + '" data-sort="' + c.key + '">' + esc(c.label) + '</button></th>';
  };
  const head = COLUMNS.map(header).join('') +
    mirrors.map((m) => '<th scope="col" class="num">RTT ' + esc(m) + '</th>').join('') +
    TAIL.map(header).join('');
  setHTML($('clusters-head'), head);
  const page = state.page;
  const width = COLUMNS.length + mirrors.length + TAIL.length;
  if (!page) {
    setHTML($('clusters-body'), '<tr><td colspan="' + width + '">' + (service ? 'No page: see the filter error.' : 'No service.') + '</td></tr>');
    $('range').textContent = '';
    return;
  }
  const rows = page.clusters.map((c) => {
    const answered = c.mirror ? c.rtt_ms[c.mirror] : undefined;
    const stateCell = c.state === 'complete'
      ? '<span class="badge ok">complete</span>'
      : '<span class="badge muted">learning</span>';
    const offloaded = c.offloaded ? ' <span class="badge warn">offloaded</span>' : '';
    return '<tr data-prefix="' + esc(c.prefix) + '">' +
      '<th scope="row" class="prefix">' + esc(c.prefix) + '</th>' +
      '<td class="state">' + stateCell + offloaded + '</td>' +
      '<td class="mirror">' + (c.mirror ? esc(c.mirror) : '<span class="note">none (round robin)</span>') + '</td>' +
      '<td class="num">' + rttText(answered) + '</td>' +
      mirrors.map((m) => '<td class="num rtt" data-rtt-mirror="' + esc(m) + '">' + rttText(c.rtt_ms[m]) + '</td>').join('') +
      '<td class="num queries">' + num(c.queries) + '</td>' +
      '<td class="num">' + num(c.blocks) + '</td>' +
      '<td class="num exploring">' + (c.exploring > 0 ? num(c.exploring) + ' exploring' : '0') + '</td>' +
      '</tr>';
  }).join('');
  setHTML($('clusters-body'), rows || '<tr><td colspan="' + width + '">No cluster matches.</td></tr>');
  const first = page.total === 0 ? 0 : Math.min(page.offset + 1, page.total);
  const last = Math.min(page.offset + page.clusters.length, page.total);
  const range = 'Clusters ' + num(first) + '–' + num(last) + ' of ' + num(page.total);
  if ($('range').textContent !== range) $('range').textContent = range;
  const caption = 'Clusters of ' + page.service + ': ' + range + ', sorted by ' + q.sort + (q.desc ? ' descending' : ' ascending');
  if ($('clusters-caption').textContent !== caption) $('clusters-caption').textContent = caption;
  $('prev').disabled = page.offset === 0;
  $('next').disabled = page.offset + page.limit >= page.total;
}

function filtersChanged() {
  const q = state.query;
  q.prefix = $('f-prefix').value;
  q.state = $('f-state').value;
  q.mirror = $('f-mirror').value;
  q.exploring = $('f-exploring').value;
  q.limit = Number($('f-limit').value);
  q.offset = 0;
  refresh();
}

// ---- quality charts ----

async function loadQuality() {
  const since = state.samples.length > 0 ? state.samples[state.samples.length - 1].time : 0;
  const body = await api('/v1/quality?since=' + since);
  state.samples = state.samples.concat(body.history);
  const last = state.samples[state.samples.length - 1];
  if (!last || body.now.time >= last.time + OWN_SAMPLE_S) state.samples.push(body.now);
  state.samples = state.samples.slice(-SAMPLES_KEPT);
  state.sampleNow = body.now;
  renderQuality();
}

// Per interval between consecutive samples, for the chosen service.
function qualitySeries() {
  const points = state.samples.slice();
  if (state.sampleNow && (points.length === 0 || state.sampleNow.time > points[points.length - 1].time)) {
    points.push(state.sampleNow);
  }
  const series = { decided: [], best: [], lost: [], flaps: [] };
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1].services[state.service];
    const b = points[i].services[state.service];
    const t = points[i].time;
    if (!a || !b) continue;
    const complete = b.complete - a.complete;
    const learning = b.learning - a.learning;
    const answered = complete + learning;
    series.decided.push([t, answered > 0 ? (100 * complete) / answered : null]);
    series.best.push([t, complete > 0 ? (100 * (b.best - a.best)) / complete : null]);
    series.lost.push([t, complete > 0 ? (b.regret_ms - a.regret_ms) / complete : null]);
    series.flaps.push([t, b.answer_changes - a.answer_changes]);
  }
  return series;
}

function sinceStart() {
  const s = state.sampleNow && state.sampleNow.services[state.service];
  if (!s) return {};
  const answered = s.complete + s.learning;
  return {
    decided: answered > 0 ? (100 * s.complete) / answered : null,
    best: s.complete > 0 ? (100 * s.best) / s.complete : null,
    lost: s.complete > 0 ? s.regret_ms / s.complete : null,
    flaps: s.answer_changes,
  };
}

function chart(id, title, unit, points, total, fixedMax) {
  const values = points.map((p) => p[1]).filter((v) => v !== null);
  const latest = values.length > 0 ? values[values.length - 1] : null;
  const max = fixedMax || Math.max(1, ...values) * 1.1;
  const W = 300;
  const H = 100;
  let path = '';
  if (points.length > 0) {
    const t0 = points[0][0];
    const span = Math.max(1, points[points.length - 1][0] - t0);
    let pen = 'M';
    for (const [t, v] of points) {
      if (v === null) {
        pen = 'M';
        continue;
      }
      const x = points.length === 1 ? W : ((t - t0) / span) * W;
      const y = H - (Math.min(v, max) / max) * H;
      // A point alone is drawn as a dot (a round cap on a null segment).
      path += pen + x.toFixed(1) + ' ' + y.toFixed(1) + ' ' + (pen === 'M' ? 'l 0 0 ' : '');
      pen = 'L';
    }
  }
  const digits = unit === ' ms' ? 2 : 1;
  const latestText = latest === null ? 'no answers yet' : num(latest, digits) + unit;
  const totalText = total === null || total === undefined ? '–' : num(total, digits) + unit;
  const description = title + ': latest interval ' + latestText + '; since start ' + totalText + '; ' + points.length + ' intervals shown';
  return '<figure class="chart" id="' + id + '">' +
    '<figcaption><span>' + esc(title) + '</span><span class="value">' + esc(latestText) + '</span></figcaption>' +
    '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none" role="img" aria-label="' + esc(description) + '">' +
    '<line class="axis" x1="0" y1="' + H + '" x2="' + W + '" y2="' + H + '"/>' +
    '<line class="axis" x1="0" y1="0" x2="' + W + '" y2="0"/>' +
    (path ? '<path class="line" d="' + path.trim() + '"/>' : '') +
    '</svg>' +
    '<p class="note">0 to ' + num(max, digits) + unit + ' · since start: ' + esc(totalText) + '</p>' +
    '</figure>';
}

function renderQuality() {
  const s = qualitySeries();
  const total = sinceStart();
  const html =
    chart('chart-decided', 'Answers decided by measurement', ' %', s.decided, total.decided, 100) +
    chart('chart-best', 'Answers on the best mirror', ' %', s.best, total.best, 100) +
    chart('chart-lost', 'Latency lost per answer', ' ms', s.lost, total.lost) +
    chart('chart-flaps', 'Flaps (answer changes)', '', s.flaps, total.flaps);
  setHTML($('charts'), html);
}

// ---- events ----

async function loadEvents() {
  if (state.eventsSince === null) {
    const head = await api('/v1/events?limit=0');
    state.eventsSince = Math.max(0, head.last - EVENTS_SHOWN);
  }
  const body = await api('/v1/events?since=' + state.eventsSince);
  if (body.last < state.eventsSince) {
    // The server restarted: its numbers began again.
    state.events = [];
    state.eventsSince = 0;
    return loadEvents();
  }
  state.eventsMissed += body.missed;
  for (const e of body.events) state.events.push(e);
  state.events = state.events.slice(-EVENTS_SHOWN);
  if (body.events.length > 0) state.eventsSince = body.events[body.events.length - 1].seq;
  renderEvents();
}

function plural(n, word) {
  return num(n) + ' ' + word + (n === 1 ? '' : 's');
}

function prefixes(list, total) {
  const shown = list.join(', ');
  return total > list.length ? shown + ' and ' + (total - list.length) + ' more' : shown;
}

function choice(c) {
  if (!c) return 'none';
  return c.mirror + ' (' + (c.rtt_ms === null ? 'unreachable' : num(c.rtt_ms, 1) + ' ms') + ')';
}

function describe(e) {
  switch (e.kind) {
    case 'split':
    case 'merge': {
      const parts = [];
      if (e.added_total > 0) parts.push('new: ' + prefixes(e.added, e.added_total));
      if (e.removed_total > 0) parts.push('gone: ' + prefixes(e.removed, e.removed_total));
      return ['kind ' + e.kind, e.kind, e.service + ' region ' + e.region + ': ' + parts.join('; ')];
    }
    case 'switch':
      return ['kind switch', 'switch', e.service + ' ' + e.cluster + ': ' + choice(e.from) + ' → ' + choice(e.to)];
    case 'load_move':
      return ['kind load', e.back ? 'load: back' : 'load: moved off',
        e.service + ' ' + e.cluster + ': ' + e.from + ' → ' + e.to + ', ' + num(e.qps, 1) + ' q/s' +
        (e.back ? ' (its best mirror has room again)' : ' (' + e.from + ' over capacity)')];
    case 'health':
      return ['kind health ' + (e.healthy ? 'up' : 'down'), e.healthy ? 'health: up' : 'health: down',
        'mirror ' + e.mirror + (e.healthy ? ' passes its health checks again' : ' failed its health check: no new answers')];
    case 'drain':
      return ['kind drain ' + (e.drained ? 'on' : 'off'), e.drained ? 'drained' : 'undrained',
        'mirror ' + e.mirror + (e.drained ? ' drained by an operator' : ' back in service')];
    case 'reload':
      return e.ok
        ? ['kind reload', 'reload', plural(e.zones, 'zone') + ', ' + plural(e.services, 'service') + ' (' + e.trigger + ')']
        : ['kind reload failed', 'reload refused', '(' + e.trigger + ') ' + e.error];
    default:
      return ['kind', e.kind, ''];
  }
}

function renderEvents() {
  const rows = state.events.slice().reverse().map((e) => {
    const [cls, kind, text] = describe(e);
    return '<tr data-seq="' + e.seq + '" data-kind="' + esc(e.kind) + '"><td class="num">' + e.seq + '</td><td>' + clock(e.time) + ' UTC</td>' +
      '<td class="' + esc(cls) + '">' + esc(kind) + '</td><td>' + esc(text) + '</td></tr>';
  }).join('');
  setHTML($('events-body'), rows || '<tr><td colspan="4">No events yet.</td></tr>');
  const note = state.eventsMissed > 0 ? state.eventsMissed + ' events were missed (the server keeps the latest few thousand).' : '';
  if ($('events-note').textContent !== note) $('events-note').textContent = note;
}

// ---- polling ----

async function refresh() {
  if (state.running) {
    state.again = true;
    return;
  }
  state.running = true;
  try {
    do {
      state.again = false;
      await loadServices();
      await loadClusters();
      await loadEvents();
      await loadQuality();
    } while (state.again);
    clearError(false);
    $('live').textContent = 'Live: updated ' + clock(Date.now() / 1000) + ' UTC, every ' + POLL_MS / 1000 + ' s';
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    showError('The API did not answer: ' + e.message + '. Retrying.');
    $('live').textContent = 'Not updated since the last error.';
  } finally {
    state.running = false;
  }
}

function start() {
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    filtersChanged();
  });
  let typing = null;
  $('f-prefix').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(filtersChanged, 250);
  });
  for (const id of ['f-state', 'f-mirror', 'f-exploring', 'f-limit']) {
    $(id).addEventListener('change', filtersChanged);
  }
  $('f-service').addEventListener('change', () => {
    state.service = $('f-service').value;
    state.query.mirror = '';
    state.query.offset = 0;
    renderServiceChoices();
    filtersChanged();
  });
  $('clusters-head').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-sort]');
    if (!button) return;
    const key = button.dataset.sort;
    const q = state.query;
    q.desc = q.sort === key ? !q.desc : NUMERIC_SORTS.includes(key);
    q.sort = key;
    q.offset = 0;
    refresh();
  });
  $('prev').addEventListener('click', () => {
    state.query.offset = Math.max(0, state.query.offset - state.query.limit);
    refresh();
  });
  $('next').addEventListener('click', () => {
    state.query.offset += state.query.limit;
    refresh();
  });
  $('services').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-mirror]');
    if (button) setDrained(button.dataset.mirror, button.dataset.action);
  });
  refresh();
  setInterval(() => {
    if (!document.hidden) refresh();
  }, POLL_MS);
}

start();
