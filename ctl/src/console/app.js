// The logcollect console: search (histogram, results, live tail) and the fleet.
// Everything shown from the store or etcd goes through textContent, never innerHTML: a log
// line is text, whatever markup it holds. The URL's hash holds the view, so it can be shared.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["q", "since", "from", "to", "host", "topic", "file"];
const TAIL_EVERY_MS = 1000;
// Documents may be indexed a while after their time: the tail looks back this far again.
const TAIL_OVERLAP_MS = 30000;
const FLEET_EVERY_MS = 2000;

const PAGE_SIZE = 200;

let tailTimer = null;
let fleetTimer = null;
// The fleet rows opened to show their files or partitions, kept across refreshes.
const openDaemons = new Set();
let seen = new Set();
let newest = 0;
// The sort values of the last hit shown, where the next page starts (search_after).
let lastSort = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function hashState() {
  const [page, query] = location.hash.replace(/^#/, "").split("?");
  return { page: page || "search", params: new URLSearchParams(query || "") };
}

function showError(text) {
  const box = $("error");
  box.hidden = !text;
  box.textContent = text || "";
}

// The JSON answer of a request; an error status or an answer with `error` throws it.
async function getJSON(url) {
  return must(await request(url));
}

// A request and its JSON answer, whatever the status: `{ ok, status, answer }`. A body is
// posted as JSON; a token (a write) goes in the header the console asks writes for.
async function request(url, body, token) {
  const init = { headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token !== undefined) init.headers["X-Logcollect-Token"] = token;
  const r = await fetch(url, init);
  const answer = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  return { ok: r.ok, status: r.status, answer };
}

function must({ ok, status, answer }) {
  if (!ok || answer.error) throw new Error(answer.error || `HTTP ${status}`);
  return answer;
}

// --- search -----------------------------------------------------------------------------

function formParams() {
  const p = new URLSearchParams();
  for (const f of FIELDS) {
    const v = $(f).value.trim();
    if (v && !$(f).hidden) p.set(f, v);
  }
  if ($("tail").checked) p.set("tail", "1");
  return p;
}

function fillForm(params) {
  for (const f of FIELDS) $(f).value = params.get(f) || (f === "since" ? "15m" : "");
  const custom = $("since").value === "custom";
  $("from").hidden = !custom;
  $("to").hidden = !custom;
  $("tail").checked = params.get("tail") === "1";
}

// The API's range: a relative duration, or the absolute from/to (UTC).
function apiRange(params) {
  const range = new URLSearchParams();
  if (params.get("since") === "custom") {
    if (params.get("from")) range.set("since", params.get("from") + "Z");
    if (params.get("to")) range.set("until", params.get("to") + "Z");
  } else {
    range.set("since", params.get("since") || "15m");
  }
  return range;
}

function apiFilters(params) {
  const p = new URLSearchParams();
  p.set("q", params.get("q") || "*");
  for (const f of ["host", "topic", "file"]) if (params.get(f)) p.set(f, params.get(f));
  return p;
}

function searchApi(params) {
  const api = apiFilters(params);
  for (const [k, v] of apiRange(params)) api.set(k, v);
  api.set("size", String(PAGE_SIZE));
  return api;
}

async function runSearch(params) {
  $("summary").textContent = "searching…";
  try {
    const answer = await getJSON("/api/search?" + searchApi(params).toString());
    showError("");
    $("summary").textContent = `${answer.total} matches, newest first (${answer.took_ms} ms)`;
    drawHistogram(answer.histogram, answer.since, answer.until);
    drawSidebar(answer.fields || {}, params);
    $("results").tBodies[0].replaceChildren();
    seen = new Set();
    newest = 0;
    showHits(answer, answer.total);
  } catch (e) {
    showError(e.message);
    $("summary").textContent = "";
  }
  setTail(params.get("tail") === "1", params);
}

// Appends a page of hits; "Load more" stays while the store has more.
function showHits(answer, total) {
  const body = $("results").tBodies[0];
  for (const hit of answer.hits) {
    seen.add(hit._id);
    newest = Math.max(newest, Date.parse(hit._source["@timestamp"]) || 0);
    body.append(...hitRows(hit, false));
  }
  if (answer.hits.length) lastSort = answer.hits[answer.hits.length - 1].sort;
  $("more").hidden = answer.hits.length < PAGE_SIZE || body.querySelectorAll("tr.hit").length >= total;
  $("more").dataset.total = total;
}

async function loadMore() {
  const { params } = hashState();
  const api = searchApi(params);
  api.set("after", JSON.stringify(lastSort));
  api.set("histogram", "0");
  try {
    showHits(await getJSON("/api/search?" + api.toString()), Number($("more").dataset.total));
  } catch (e) {
    showError(e.message);
  }
}

// A term for the query box: the value quoted, so that any character in it is literal.
function term(field, value) {
  return `${field}:"${String(value).replace(/[\\"]/g, (c) => "\\" + c)}"`;
}

function drawSidebar(fields, params) {
  const side = $("sidebar");
  side.replaceChildren();
  for (const [field, values] of Object.entries(fields)) {
    if (!values.length) continue;
    side.append(el("h4", field));
    for (const [value, n] of values) {
      const row = el("div", null, "value");
      const filter = (not) => {
        const q = params.get("q") || "*";
        const next = new URLSearchParams(params);
        next.set("q", (q === "*" ? "" : `(${q}) AND `) + (not ? "NOT " : "") + term(field, value));
        location.hash = "search?" + next.toString();
      };
      const plus = el("button", "+");
      plus.title = "only these";
      plus.addEventListener("click", () => filter(false));
      const minus = el("button", "−");
      minus.title = "without these";
      minus.addEventListener("click", () => filter(true));
      row.append(el("span", value, "v"), el("span", n, "n"), plus, minus);
      row.firstChild.title = String(value);
      side.append(row);
    }
  }
}

function hitRows(hit, fresh) {
  const s = hit._source || {};
  const row = el("tr", null, fresh ? "hit new" : "hit");
  row.dataset.id = hit._id;
  row.append(
    el("td", s["@timestamp"], "time"),
    el("td", s.host && s.host.name),
    el("td", s.log && s.log.file && s.log.file.path),
    el("td", s.message, "msg"),
  );
  const detail = el("tr", null, "detail");
  detail.hidden = true;
  const cell = el("td");
  cell.colSpan = 4;
  if (s.log && s.log.offset !== undefined) {
    const around = el("button", "in context");
    around.addEventListener("click", () => {
      const p = new URLSearchParams({ index: hit._index, id: hit._id, back: location.hash });
      location.hash = "context?" + p.toString();
    });
    cell.append(around);
  }
  cell.append(el("pre", JSON.stringify({ _index: hit._index, _id: hit._id, ...s }, null, 2)));
  detail.append(cell);
  row.addEventListener("click", () => { detail.hidden = !detail.hidden; });
  return [row, detail];
}

function drawHistogram(h, since, until) {
  const svg = $("histogram");
  svg.replaceChildren();
  svg.dataset.since = since;
  svg.dataset.until = until;
  const buckets = (h && h.buckets) || [];
  const width = 1000, height = 100;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const span = Math.max(1, until - since);
  const max = Math.max(1, ...buckets.map((b) => b[1]));
  for (const [t, n] of buckets) {
    if (!n) continue;
    const x = ((t - since) / span) * width;
    const w = Math.max(1, (h.interval_ms / span) * width - 1);
    const bh = (n / max) * (height - 4);
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", x.toFixed(1));
    rect.setAttribute("y", (height - bh).toFixed(1));
    rect.setAttribute("width", w.toFixed(1));
    rect.setAttribute("height", bh.toFixed(1));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${new Date(t).toISOString()}: ${n}`;
    rect.append(title);
    // Click: zoom to this bar.
    rect.addEventListener("click", () => zoom(t, t + h.interval_ms));
    svg.append(rect);
  }
}

// Drag across the histogram: zoom into the span dragged over.
function dragToZoom() {
  const svg = $("histogram");
  let start = null;
  let band = null;
  const at = (e) => {
    const box = svg.getBoundingClientRect();
    return Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
  };
  svg.addEventListener("mousedown", (e) => {
    start = at(e);
    band = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    band.setAttribute("class", "band");
    band.setAttribute("y", "0");
    band.setAttribute("height", "100");
    svg.append(band);
    e.preventDefault();
  });
  svg.addEventListener("mousemove", (e) => {
    if (start === null) return;
    const [a, b] = [start, at(e)].sort((x, y) => x - y);
    band.setAttribute("x", (a * 1000).toFixed(1));
    band.setAttribute("width", ((b - a) * 1000).toFixed(1));
  });
  window.addEventListener("mouseup", (e) => {
    if (start === null) return;
    const [a, b] = [start, at(e)].sort((x, y) => x - y);
    start = null;
    band.remove();
    if (b - a < 0.005) return; // a click: the bar's own handler zooms
    const since = Number(svg.dataset.since), span = Number(svg.dataset.until) - since;
    zoom(since + a * span, since + b * span);
  });
}

function zoom(from, to) {
  const params = formParams();
  params.set("since", "custom");
  params.set("from", new Date(from).toISOString().slice(0, 19));
  params.set("to", new Date(to).toISOString().slice(0, 19));
  location.hash = "search?" + params.toString();
}

function setTail(on, params) {
  clearInterval(tailTimer);
  tailTimer = null;
  if (on) tailTimer = setInterval(() => tail(params), TAIL_EVERY_MS);
}

// New matches since the newest shown, put on top as they are indexed.
async function tail(params) {
  const api = apiFilters(params);
  const from = newest ? newest - TAIL_OVERLAP_MS : Date.now() - TAIL_OVERLAP_MS;
  api.set("since", new Date(from).toISOString());
  api.set("order", "asc");
  api.set("size", "500");
  api.set("histogram", "0");
  try {
    const answer = await getJSON("/api/search?" + api.toString());
    showError("");
    const body = $("results").tBodies[0];
    for (const hit of answer.hits) {
      if (seen.has(hit._id)) continue;
      seen.add(hit._id);
      newest = Math.max(newest, Date.parse(hit._source["@timestamp"]) || 0);
      body.prepend(...hitRows(hit, true));
    }
  } catch (e) {
    showError("live tail: " + e.message);
  }
}

// --- in context -------------------------------------------------------------------------

async function showContext(params) {
  $("context-back").href = params.get("back") || "#search";
  const body = $("context").tBodies[0];
  body.replaceChildren();
  const box = $("context-error");
  try {
    const api = new URLSearchParams({ index: params.get("index") || "", id: params.get("id") || "" });
    const c = await getJSON("/api/context?" + api.toString());
    box.hidden = true;
    const s = c.line._source;
    $("context-summary").textContent =
      `${s.host && s.host.name}: ${s.log.file.path}, ${c.before.length} lines before and ${c.after.length} after`;
    for (const [hit, cls] of [...c.before.map((h) => [h, ""]), [c.line, "anchor"], ...c.after.map((h) => [h, ""])]) {
      const row = el("tr", null, cls);
      row.dataset.id = hit._id;
      row.append(el("td", hit._source["@timestamp"], "time"), el("td", hit._source.log.offset),
        el("td", hit._source.message, "msg"));
      body.append(row);
    }
  } catch (e) {
    box.hidden = false;
    box.textContent = e.message;
  }
}

// --- configuration ----------------------------------------------------------------------

// The revision the value in the editor is based on (compare-and-swap on save).
let configBase = 0;
let checkTimer = null;

function configQuery(params) {
  const q = new URLSearchParams();
  if (params.get("es") === "1") q.set("es", "1");
  else if (params.get("host")) q.set("host", params.get("host"));
  return q;
}

async function loadConfig(params) {
  $("config-which").value = params.get("es") === "1" ? "es" : params.get("host") ? "host" : "global";
  $("config-host").hidden = $("config-which").value !== "host";
  $("config-host").value = params.get("host") || "";
  $("token").value = sessionStorage.getItem("logcollect-token") || "";
  $("config-saved").textContent = "";
  try {
    const c = await getJSON("/api/config?" + configQuery(params).toString());
    configBase = c.mod_revision;
    $("config-key").textContent = `${c.key} at revision ${c.mod_revision}`;
    $("config-note").textContent = c.note || "";
    $("editor").value = c.value;
    $("config-save").disabled = !c.writable;
    $("config-save").title = c.writable ? "" : "read-only: the console's ini has no [console] admin_token_file";
    drawGutter(null);
    checkConfig();
  } catch (e) {
    showCheck(false, e.message);
  }
}

// Line numbers beside the editor; the line of the entry an error is about is marked. An
// array is shown one entry per line after its "[": entry N is on line N + 2.
function drawGutter(badEntry) {
  const lines = $("editor").value.split("\n").length;
  const gutter = $("gutter");
  gutter.replaceChildren();
  for (let i = 1; i <= lines; i++) {
    const bad = badEntry !== null && badEntry !== undefined && i === badEntry + 2;
    gutter.append(el("span", i + "\n", bad ? "bad" : ""));
  }
  gutter.scrollTop = $("editor").scrollTop;
}

function showCheck(valid, text) {
  const box = $("config-check");
  box.className = valid ? "valid" : "invalid";
  box.textContent = text;
}

// The daemons' own validation, as you type.
async function checkConfig() {
  const { params } = hashState();
  try {
    const r = await request("/api/config/check?" + configQuery(params).toString(), { value: $("editor").value });
    // An invalid value is an answer too: { valid: false, error, entry }.
    const c = r.answer.valid === undefined ? must(r) : r.answer;
    showCheck(c.valid, c.valid ? "valid" : c.error);
    $("config-diff").textContent = c.valid ? c.diff : "";
    drawGutter(c.valid ? null : c.entry);
    if (c.valid) listEntries();
  } catch (e) {
    showCheck(false, e.message);
  }
}

// The entries of the value in the editor, for the dry run.
function listEntries() {
  const select = $("dry-entry");
  let entries = [];
  try {
    const v = JSON.parse($("editor").value);
    if (Array.isArray(v)) entries = v.map((e) => e.path).filter(Boolean);
  } catch (e) {
    // Not JSON (elasticsearch_config is, but has no entries): nothing to try.
  }
  const chosen = select.value;
  select.replaceChildren(...entries.map((p) => el("option", p)));
  if (entries.includes(chosen)) select.value = chosen;
}

// The entry's processors on the sample lines, as the transfer would run them: the editor's
// value, not the one in etcd.
async function dryRun() {
  const { params } = hashState();
  const out = $("dry-out");
  out.replaceChildren();
  try {
    const c = must(await request("/api/pipeline?" + configQuery(params).toString(),
      { value: $("editor").value, entry: $("dry-entry").value, lines: $("dry-lines").value }));
    for (const line of c.lines) {
      if (line.excluded !== undefined) {
        out.append(el("div", "excluded at the agent: " + line.excluded, "excluded"));
      } else {
        out.append(el("pre", JSON.stringify(line.document, null, 2), line.failed ? "failed" : ""));
      }
    }
  } catch (e) {
    out.append(el("div", e.message, "error"));
  }
}

async function saveConfig() {
  const { params } = hashState();
  const token = $("token").value;
  sessionStorage.setItem("logcollect-token", token);
  const saved = $("config-saved");
  try {
    const r = await request("/api/config?" + configQuery(params).toString(),
      { value: $("editor").value, base: configBase }, token);
    const c = r.answer;
    if (!r.ok || !c.saved) {
      saved.className = "refused";
      saved.textContent = c.error || `HTTP ${r.status}`;
      if (c.diff) $("config-diff").textContent = c.diff;
      return;
    }
    configBase = c.mod_revision;
    saved.className = "ok";
    saved.textContent = `saved: ${c.key} at revision ${c.mod_revision}`;
    $("config-key").textContent = `${c.key} at revision ${c.mod_revision}`;
    checkConfig();
  } catch (e) {
    saved.className = "refused";
    saved.textContent = e.message;
  }
}

// --- dead letters -----------------------------------------------------------------------

async function showDeadLetters(params) {
  const box = $("dlq-error");
  $("dlq-token").value = sessionStorage.getItem("logcollect-token") || "";
  $("dlq-replayed").textContent = "";
  try {
    const { topics } = await getJSON("/api/dlq");
    const select = $("dlq-topic");
    select.replaceChildren(...topics.map((t) => el("option", t)));
    const topic = params.get("topic") || topics[0];
    $("dlq").tBodies[0].replaceChildren();
    if (!topic) {
      $("dlq-summary").textContent = "no dead-letter topic: nothing was refused for good";
      box.hidden = true;
      return;
    }
    select.value = topic;
    const { letters } = await getJSON("/api/dlq?" + new URLSearchParams({ topic }).toString());
    box.hidden = true;
    $("dlq-summary").textContent = `${letters.length} dead letters in ${topic}`;
    for (const l of letters) {
      const at = `${l.partition}:${l.offset}`;
      const tick = el("input");
      tick.type = "checkbox";
      tick.value = at;
      const row = el("tr");
      row.dataset.at = at;
      const first = el("td");
      first.append(tick);
      row.append(first, el("td", at), el("td", l.source), el("td", l.reason, "reason"), el("td", l.value, "msg"));
      $("dlq").tBodies[0].append(row);
    }
  } catch (e) {
    box.hidden = false;
    box.textContent = e.message;
  }
}

async function replayChosen() {
  const token = $("dlq-token").value;
  sessionStorage.setItem("logcollect-token", token);
  const at = [...document.querySelectorAll("#dlq input[type=checkbox]:checked")].map((c) => c.value);
  const out = $("dlq-replayed");
  try {
    const c = must(await request("/api/dlq/replay", { topic: $("dlq-topic").value, at }, token));
    out.className = "ok";
    out.textContent = "replayed " + c.replayed.map((x) => `${x.at} to ${x.to}`).join(", ");
  } catch (e) {
    out.className = "refused";
    out.textContent = e.message;
  }
}

// --- fleet ------------------------------------------------------------------------------

// An agent's files furthest behind, or a transfer's partitions.
function daemonDetail(r) {
  const detail = el("tr", null, "detail");
  const cell = el("td");
  cell.colSpan = 8;
  const table = el("table", null, "inner");
  const agent = r.kind === "agent";
  const head = agent
    ? ["file", "topic", "acknowledged offset", "size", "bytes behind", "last acknowledged"]
    : ["topic", "partition", "committed offset", "lag"];
  const row = (cells) => {
    const tr = el("tr");
    tr.append(...cells.map((c) => el("td", c ?? "-")));
    return tr;
  };
  const th = el("tr");
  th.append(...head.map((h) => el("th", h)));
  table.append(th);
  for (const f of agent ? r.file_reports || [] : r.partitions || []) {
    table.append(row(agent
      ? [f.path, f.topic, f.acked_offset, f.size, f.bytes_behind, f.last_ack_at]
      : [f.topic, f.partition, f.committed, f.lag]));
  }
  cell.append(table);
  detail.append(cell);
  return detail;
}

async function refreshFleet() {
  try {
    const rows = await getJSON("/api/fleet");
    const body = $("fleet").tBodies[0];
    body.replaceChildren();
    for (const r of rows) {
      const tr = el("tr");
      tr.dataset.kind = r.kind;
      tr.dataset.name = r.name;
      tr.dataset.state = r.state;
      const backlog = r.kind === "agent"
        ? `${r.files} files, ${r.bytes_behind} B behind`
        : `lag ${r.lag}` + (r.partitions || []).map((p) => ` ${p.topic}/${p.partition}:${p.lag}`).join("");
      tr.append(
        el("td", r.kind), el("td", r.name), el("td", r.version),
        el("td", r.state, "state state-" + r.state),
        el("td", `${r.config_revision} / ${r.current_revision}`),
        el("td", backlog), el("td", r.reason || ""), el("td", r.updated_at, "time"),
      );
      tr.className = "hit";
      const id = `${r.kind}/${r.name}`;
      const detail = daemonDetail(r);
      detail.hidden = !openDaemons.has(id);
      tr.addEventListener("click", () => {
        detail.hidden = !detail.hidden;
        if (detail.hidden) openDaemons.delete(id); else openDaemons.add(id);
      });
      body.append(tr, detail);
    }
    const counts = {};
    for (const r of rows) counts[r.state] = (counts[r.state] || 0) + 1;
    $("fleet-summary").textContent = `${rows.length} daemons: ` +
      Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(", ") +
      ` — refreshed ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (e) {
    $("fleet-summary").textContent = "fleet: " + e.message;
  }
}

// --- the page ---------------------------------------------------------------------------

function route() {
  const { page, params } = hashState();
  const fleet = page === "fleet";
  const context = page === "context";
  const config = page === "config";
  const dlq = page === "dlq";
  $("page-search").hidden = fleet || context || config || dlq;
  $("page-dlq").hidden = !dlq;
  $("nav-dlq").classList.toggle("active", dlq);
  $("page-fleet").hidden = !fleet;
  $("page-context").hidden = !context;
  $("page-config").hidden = !config;
  $("nav-search").classList.toggle("active", !fleet && !config && !dlq);
  $("nav-fleet").classList.toggle("active", fleet);
  $("nav-config").classList.toggle("active", config);
  clearInterval(fleetTimer);
  setTail(false);
  if (fleet) {
    refreshFleet();
    fleetTimer = setInterval(refreshFleet, FLEET_EVERY_MS);
  } else if (context) {
    showContext(params);
  } else if (config) {
    loadConfig(params);
  } else if (dlq) {
    showDeadLetters(params);
  } else {
    fillForm(params);
    runSearch(params);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const next = "search?" + formParams().toString();
    if (location.hash === "#" + next) route(); else location.hash = next;
  });
  $("since").addEventListener("change", () => {
    const custom = $("since").value === "custom";
    $("from").hidden = !custom;
    $("to").hidden = !custom;
  });
  $("tail").addEventListener("change", () => $("search-form").requestSubmit());
  $("more").addEventListener("click", loadMore);
  dragToZoom();
  $("config-which").addEventListener("change", () => {
    $("config-host").hidden = $("config-which").value !== "host";
  });
  $("config-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if ($("config-which").value === "es") q.set("es", "1");
    if ($("config-which").value === "host") q.set("host", $("config-host").value.trim());
    const next = "config?" + q.toString();
    if (location.hash === "#" + next) route(); else location.hash = next;
  });
  $("editor").addEventListener("input", () => {
    drawGutter(null);
    clearTimeout(checkTimer);
    checkTimer = setTimeout(checkConfig, 250);
  });
  $("editor").addEventListener("scroll", () => { $("gutter").scrollTop = $("editor").scrollTop; });
  $("config-save").addEventListener("click", saveConfig);
  $("dry-run").addEventListener("click", dryRun);
  $("dlq-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const next = "dlq?" + new URLSearchParams({ topic: $("dlq-topic").value }).toString();
    if (location.hash === "#" + next) route(); else location.hash = next;
  });
  $("dlq-replay").addEventListener("click", replayChosen);
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (e.key === "/" && !typing) {
      e.preventDefault();
      $("q").focus();
    }
  });
  window.addEventListener("hashchange", route);
  route();
});
