// jobmesh dashboard: plain JavaScript, no build step, no dependencies.
// Live data arrives by Server-Sent Events (/dashboard/events); jobs are
// searched page by page on the server (/v1/job-records); actions use the
// ordinary HTTP API.
"use strict";

const HISTORY = 300;
const PAGE = 50;
const COLORS = ["#2563eb", "#059669", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#4b5563", "#ea580c"];

const state = {
  page: "cluster",
  history: [],          // series ticks, oldest first
  last: null,           // latest state (cluster, stats, since_ms)
  offset: 0,
  query: {},
  jobsTotal: 0,
  detailId: null,
  recent: [],           // ids submitted from this page, newest first
  recentViews: new Map(),
  source: null,
};

const $ = (id) => document.getElementById(id);

// ---- DOM helpers (text only: no HTML from data) ----
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const badge = (word) => h("span", { class: "badge b-" + word, dataset: { state: word } }, word);
function fill(tbody, rows, cols, empty) {
  tbody.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { class: "empty", colspan: cols }, empty))]));
}
function fmtNum(n) { return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"); }
function fmtMs(ms) {
  if (ms === undefined || ms === null) return "–";
  if (ms === 0) return "0";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
}
function fmtAgo(msSince) {
  const s = Math.max(0, Math.round((Date.now() - msSince) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}
function fmtTime(ms) { return ms ? new Date(ms).toLocaleTimeString() : "–"; }
function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.className = "toast" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 4000);
}

// ---- the API ----
async function api(method, path, body) {
  const init = { method, headers: { "x-jobmesh-dashboard": "1" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (res.status === 401) { showLogin(); }
  if (!res.ok) throw new Error((data && data.error) || res.statusText);
  return data;
}

// ---- pages ----
function showPage(name) {
  if (!$("page-" + name) || name === "login") name = "cluster";
  state.page = name;
  for (const p of document.querySelectorAll(".page")) p.classList.toggle("hidden", p.id !== "page-" + name);
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.page === name);
  if (name === "jobs") loadJobs();
  if (name === "dead") loadDead();
  if (name === "charts" || name === "cluster") drawCharts();
}

function showLogin() {
  if (state.source) { state.source.close(); state.source = null; }
  setLive(false);
  for (const p of document.querySelectorAll(".page")) p.classList.toggle("hidden", p.id !== "page-login");
  $("tabs").classList.add("invisible");
  $("login-token").focus();
}

function setLive(on) {
  const el = $("live");
  el.textContent = on ? "live" : "offline";
  el.className = "live " + (on ? "on" : "off");
}

// ---- live feed ----
function connect() {
  if (state.source) state.source.close();
  const source = new EventSource("/dashboard/events");
  state.source = source;
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => setLive(false));
  source.addEventListener("history", (e) => {
    state.history = JSON.parse(e.data);
    if (state.page === "charts" || state.page === "cluster") drawCharts();
  });
  source.addEventListener("tick", (e) => {
    const tick = JSON.parse(e.data);
    setLive(true);
    const newest = state.history[state.history.length - 1];
    if (!newest || newest.t < tick.series.t) state.history.push(tick.series);
    if (state.history.length > HISTORY) state.history.splice(0, state.history.length - HISTORY);
    state.last = tick.state;
    renderCluster();
    if (state.page === "charts" || state.page === "cluster") drawCharts();
    // The visible page of jobs follows every other tick.
    state.ticks = (state.ticks || 0) + 1;
    if (state.page === "jobs" && state.ticks % 2 === 0 && !state.jobsBusy && !document.hidden) loadJobs(true);
    if (state.page === "dead") loadDead();
    refreshRecent();
  });
}

// ---- cluster ----
function renderCluster() {
  const s = state.last;
  if (!s) return;
  const cluster = s.cluster || { members: [], links: 0 };
  const stats = s.stats || {};
  $("node-name").textContent = cluster.node ? "· " + cluster.node : "";
  const up = cluster.members.filter((m) => m.status === "up").length;
  $("s-up").textContent = up + " / " + cluster.members.length;
  $("s-links").textContent = fmtNum(cluster.links);
  const lastTick = state.history[state.history.length - 1];
  $("s-rate").textContent = lastTick ? rate(lastTick.all).toFixed(lastTick.all.n ? 1 : 0) : "–";
  $("s-submitted").textContent = fmtNum(stats.submitted);
  $("s-succeeded").textContent = fmtNum(stats.succeeded);
  // The coordinator counts cancelled jobs as failed; shown apart here.
  const cancelled = stats.cancelled || 0;
  $("s-failed").textContent = fmtNum(stats.failed - cancelled);
  $("s-cancelled").textContent = fmtNum(cancelled);
  $("s-progress").textContent = fmtNum(stats.in_progress);
  $("s-queued").textContent = fmtNum(stats.queued);
  $("dead-count").textContent = stats.dead_letters ? String(stats.dead_letters) : "";
  const kinds = new Set();
  const rows = cluster.members.map((m) => {
    const kindTags = m.tags.filter((t) => t.startsWith("kind:")).map((t) => t.slice(5));
    kindTags.forEach((k) => kinds.add(k));
    // User tags have no ":"; kind:, capacity:, workers:, accept: are the queue's own.
    const other = m.tags.filter((t) => !t.includes(":"));
    const since = s.since_ms && s.since_ms[m.node];
    return h("tr", { dataset: { node: m.node, status: m.status } },
      h("td", { class: "mono" }, m.node, m.node === cluster.node ? h("span", { class: "muted" }, " (this)") : null),
      h("td", { class: "status" }, badge(m.status)),
      h("td", {}, since ? fmtAgo(since) : "–"),
      h("td", {}, kindTags.map((k) => h("span", { class: "tag" }, k))),
      h("td", {}, other.map((k) => h("span", { class: "tag" }, k))),
      h("td", { class: "num" }, m.load.cpu_percent.toFixed(0) + "%"),
      h("td", { class: "num" }, fmtNum(m.load.in_flight)),
      h("td", { class: "num" }, fmtNum(m.load.queue_depth)),
      h("td", { class: "mono muted" }, m.url));
  });
  fill($("members").tBodies[0], rows, 9, "no members");
  const list = $("kinds");
  const known = [...kinds].sort();
  if (list.dataset.kinds !== known.join(",")) {
    list.dataset.kinds = known.join(",");
    list.replaceChildren(...known.map((k) => h("option", { value: k })));
  }
}

// ---- charts (hand-drawn on canvas) ----
function rate(fig) {
  const last = state.history[state.history.length - 1];
  return rateOf(fig, last ? last.window_ms : 1000);
}
function rateOf(fig, windowMs) { return fig ? fig.n / Math.max(windowMs, 1) * 1000 : 0; }

function drawCharts() {
  const hist = state.history;
  if (state.page === "cluster") {
    const all = hist.map((t) => ({ t: t.t, window_ms: t.window_ms, total: { "all jobs": t.all } }));
    drawChart("rate-all", all, "total", (t, f) => rateOf(f, t.window_ms), false);
    drawChart("lat-all", all, "total", null, true);
    return;
  }
  drawChart("rate-node", hist, "nodes", (t, f) => rateOf(f, t.window_ms), false);
  drawChart("rate-kind", hist, "kinds", (t, f) => rateOf(f, t.window_ms), false);
  drawChart("lat-node", hist, "nodes", null, true);
  drawChart("lat-kind", hist, "kinds", null, true);
}

function drawChart(name, hist, group, value, latency) {
  const canvas = $("c-" + name);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 560, hgt = canvas.clientHeight || 200;
  if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  const names = [...new Set(hist.flatMap((t) => Object.keys(t[group] || {})))].sort();
  const pad = { l: 48, r: 10, t: 8, b: 22 };
  const now = hist.length ? hist[hist.length - 1].t : Date.now();
  // The last minute at least, up to the whole history.
  const span = Math.min(HISTORY * 1000, Math.max(60000, hist.length ? now - hist[0].t : 0));
  const from = now - span;
  const lines = [];
  names.forEach((n, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = (key) => hist.map((t) => {
      const f = (t[group] || {})[n];
      if (latency) return f && f.n ? [t.t, f[key]] : null;
      return [t.t, value(t, f)];
    });
    if (latency) {
      lines.push({ color, dash: [], pts: pts("p99") });
      lines.push({ color, dash: [4, 3], pts: pts("p50") });
    } else {
      lines.push({ color, dash: [], pts: pts("n") });
    }
  });
  let max = 0;
  for (const l of lines) for (const p of l.pts) if (p && p[1] > max) max = p[1];
  max = niceMax(max);
  const x = (t) => pad.l + (t - from) / (now - from) * (w - pad.l - pad.r);
  const y = (v) => hgt - pad.b - v / max * (hgt - pad.t - pad.b);
  // grid and axes
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7280";
  ctx.strokeStyle = "#e5e7eb";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4, yy = Math.round(y(v)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(w - pad.r, yy); ctx.stroke();
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ctx.fillText(latency ? fmtMs(v).replace(" ", "") : fmtRate(v), pad.l - 6, yy);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let m = 0; m <= 5; m++) {
    const ago = (5 - m) * span / 5;
    const s = Math.round(ago / 1000);
    const label = m === 5 ? "now" : "-" + (s < 120 ? s + "s" : Math.floor(s / 60) + "m" + (s % 60 ? " " + (s % 60) + "s" : ""));
    ctx.fillText(label, x(now - ago), hgt - pad.b + 6);
  }
  // series
  for (const l of lines) {
    ctx.strokeStyle = l.color; ctx.setLineDash(l.dash); ctx.lineWidth = 1.6;
    ctx.beginPath();
    let pen = false;
    for (const p of l.pts) {
      if (!p || p[0] < from) { pen = false; continue; }
      if (pen) ctx.lineTo(x(p[0]), y(p[1])); else ctx.moveTo(x(p[0]), y(p[1]));
      pen = true;
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  if (!names.length) {
    ctx.fillStyle = "#9ca3af"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    ctx.fillText("no finished jobs yet", w / 2, hgt / 2);
  }
  const legend = $("l-" + name);
  const key = names.join(",");
  if (legend.dataset.key !== key) {
    legend.dataset.key = key;
    legend.replaceChildren(...names.map((n, i) => {
      const s = h("span", {}, n);
      s.style.setProperty("--c", COLORS[i % COLORS.length]);
      return s;
    }));
  }
}
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  // Quarter steps stay round: 0.5, 1, 1.5, 2, 2.5 times a power of ten.
  for (const m of [2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
function fmtRate(v) { return v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + "k" : (v < 10 && v % 1 ? v.toFixed(1) : String(Math.round(v))); }

// ---- jobs ----
async function loadJobs(quiet) {
  const params = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE) });
  for (const [k, v] of Object.entries(state.query)) if (v) params.set(k, v);
  state.jobsBusy = true;
  try {
    const page = await api("GET", "/v1/job-records?" + params);
    // Unchanged pages leave the DOM alone (no flicker, no lost clicks).
    const key = params + JSON.stringify(page);
    if (key === state.jobsKey) return;
    state.jobsKey = key;
    state.jobsTotal = page.total;
    const first = page.total ? page.offset + 1 : 0;
    $("page-info").textContent = fmtNum(first) + "–" + fmtNum(page.offset + page.jobs.length) + " of " + fmtNum(page.total);
    $("prev").disabled = page.offset === 0;
    $("next").disabled = page.offset + page.jobs.length >= page.total;
    fill($("jobs").tBodies[0], page.jobs.map(jobRow), 8, "no jobs match");
    if (state.detailId) {
      const fresh = page.jobs.find((j) => j.id === state.detailId);
      if (fresh) renderDetail(fresh);
    }
  } catch (e) {
    if (!quiet) toast("search failed: " + e.message, true);
  } finally {
    state.jobsBusy = false;
  }
}

function lastNode(j) { return j.attempts && j.attempts.length ? j.attempts[j.attempts.length - 1].node : (j.result && j.result.worker_node) || ""; }
function took(j) { return j.finished_ms && j.started_ms ? fmtMs(j.finished_ms - j.started_ms) : "–"; }
function cancellable(st) { return st === "queued" || st === "running"; }

function jobRow(j) {
  return h("tr", { class: "clickable", dataset: { id: j.id, state: j.state }, onclick: () => { state.detailId = j.id; renderDetail(j); } },
    h("td", { class: "mono trunc" }, j.id),
    h("td", {}, badge(j.state)),
    h("td", {}, j.kind),
    h("td", { class: "num" }, j.attempt + " / " + j.max_attempts),
    h("td", { class: "mono" }, lastNode(j) || "–"),
    h("td", {}, fmtTime(j.submitted_ms)),
    h("td", { class: "num" }, took(j)),
    h("td", {}, cancellable(j.state) ? cancelButton(j.id) : null));
}

function cancelButton(id) {
  return h("button", { type: "button", class: "small danger cancel", dataset: { id }, onclick: (e) => { e.stopPropagation(); cancelJob(id); } }, "Cancel");
}

async function cancelJob(id) {
  try {
    const r = await api("DELETE", "/v1/jobs/" + encodeURIComponent(id));
    toast(id + ": " + r.state);
    if (state.page === "jobs") loadJobs(true);
    refreshRecent();
  } catch (e) { toast("cancel failed: " + e.message, true); }
}

function renderDetail(j) {
  const d = $("detail");
  d.classList.remove("hidden");
  const r = j.result || {};
  const rows = (j.attempts || []).map((a) => h("tr", {},
    h("td", { class: "num" }, a.attempt), h("td", { class: "mono" }, a.node || "–"),
    h("td", {}, fmtTime(a.started_ms)), h("td", {}, fmtTime(a.ended_ms)),
    h("td", { class: "num" }, a.ended_ms ? fmtMs(a.ended_ms - a.started_ms) : "running"),
    h("td", {}, a.cause ? badge(a.cause) : "–")));
  const dl = (pairs) => h("dl", { class: "detail-grid" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  d.replaceChildren(
    h("h2", {}, "Job ", h("span", { class: "mono" }, j.id), " ", badge(j.state)),
    dl([["Kind", j.kind], ["Owner", j.owner], ["Attempt", j.attempt + " of " + j.max_attempts],
      ["Submitted", fmtTime(j.submitted_ms)], ["Started", fmtTime(j.started_ms)], ["Finished", fmtTime(j.finished_ms)],
      ["Worker", r.worker_node || "–"], ["Processing", r.elapsed_ms !== undefined ? fmtMs(r.elapsed_ms) : "–"],
      ["Progress", j.progress ? Math.round(j.progress.fraction * 100) + "% " + j.progress.note : "–"]]),
    h("h3", {}, "Attempts"),
    h("table", { class: "grid", id: "attempts" },
      h("thead", {}, h("tr", {}, ["#", "Node", "Started", "Ended", "Took", "Cause"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { class: "empty", colspan: 6 }, "not dispatched yet")))),
    r.result !== undefined && r.result !== null ? [h("h3", {}, "Result"), h("pre", { class: "result" }, r.result)] : null,
    r.error ? [h("h3", {}, "Error"), h("pre", { class: "result" }, r.error.cause + ": " + r.error.message)] : null,
    cancellable(j.state) ? cancelButton(j.id) : null);
}

// ---- dead letters ----
async function loadDead() {
  try {
    const data = await api("GET", "/v1/dead-letters");
    const rows = data.jobs.map((j) => h("tr", { dataset: { id: j.id } },
      h("td", { class: "mono trunc" }, j.id), h("td", {}, j.kind || "–"), h("td", { class: "num" }, j.attempt),
      h("td", {}, j.error ? badge(j.error.cause) : "–"),
      h("td", { class: "trunc" }, j.error ? j.error.message : ""),
      h("td", {},
        h("button", { type: "button", class: "small resubmit", onclick: () => deadAction("POST", j.id, "/resubmit", "resubmitted") }, "Resubmit"), " ",
        h("button", { type: "button", class: "small danger discard", onclick: () => deadAction("DELETE", j.id, "", "discarded") }, "Discard"))));
    fill($("dead").tBodies[0], rows, 6, "no dead letters");
  } catch (e) { /* shown by the live indicator / login */ }
}

async function deadAction(method, id, suffix, done) {
  try {
    await api(method, "/v1/dead-letters/" + encodeURIComponent(id) + suffix);
    toast(id + " " + done);
    loadDead();
  } catch (e) { toast(e.message, true); }
}

// ---- submit ----
async function submitJob(ev) {
  ev.preventDefault();
  $("submit-error").textContent = "";
  const job = { kind: $("submit-kind").value.trim() };
  const data = $("submit-data").value;
  if (data) { try { job.data = JSON.parse(data); } catch (_) { job.data = data; } }
  if ($("submit-id").value.trim()) job.id = $("submit-id").value.trim();
  const tags = $("submit-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) job.tags = tags;
  if ($("submit-timeout").value) job.timeout_ms = Number($("submit-timeout").value);
  if ($("submit-attempts").value) job.max_attempts = Number($("submit-attempts").value);
  $("submit-button").disabled = true;
  try {
    const r = await api("POST", "/v1/jobs", job);
    state.recent.unshift(r.id);
    state.recent = state.recent.slice(0, 20);
    state.recentViews.set(r.id, { id: r.id, kind: job.kind, state: "queued" });
    renderRecent();
    refreshRecent();
  } catch (e) {
    $("submit-error").textContent = e.message;
  } finally {
    $("submit-button").disabled = false;
  }
}

async function refreshRecent() {
  const open = state.recent.filter((id) => { const v = state.recentViews.get(id); return !v || cancellable(v.state); });
  for (const id of open) {
    try {
      const rec = await api("GET", "/v1/jobs/" + encodeURIComponent(id));
      state.recentViews.set(id, rec);
    } catch (_) { /* not known yet */ }
  }
  if (open.length) renderRecent();
}

function renderRecent() {
  const rows = state.recent.map((id) => {
    const v = state.recentViews.get(id) || { id, state: "queued" };
    const r = v.result || {};
    const out = r.error ? r.error.cause + ": " + r.error.message : (r.result !== undefined && r.result !== null ? r.result : "");
    return h("tr", { dataset: { id, state: v.state } },
      h("td", { class: "mono" }, id), h("td", { class: "state" }, badge(v.state)), h("td", {}, v.kind || ""),
      h("td", { class: "mono" }, r.worker_node || lastNode(v) || "–"),
      h("td", { class: "mono trunc" }, out),
      h("td", {}, cancellable(v.state) ? cancelButton(id) : null));
  });
  fill($("recent").tBodies[0], rows, 6, "nothing submitted yet");
}

// ---- start ----
async function start() {
  for (const a of document.querySelectorAll("#tabs a")) a.addEventListener("click", () => showPage(a.dataset.page));
  window.addEventListener("hashchange", () => showPage(location.hash.slice(1)));
  window.addEventListener("resize", () => { if (state.page === "charts" || state.page === "cluster") drawCharts(); });
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    state.query = { id: $("q-id").value.trim(), state: $("q-state").value, kind: $("q-kind").value.trim(), node: $("q-node").value.trim() };
    state.offset = 0;
    loadJobs();
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadJobs(); });
  $("next").addEventListener("click", () => { state.offset += PAGE; loadJobs(); });
  $("submit-form").addEventListener("submit", submitJob);
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("POST", "/dashboard/login", { token: $("login-token").value });
      $("login-token").value = "";
      enter(true);
    } catch (err) { $("login-error").textContent = err.message; }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/dashboard/logout"); } catch (_) { /* ends anyway */ }
    showLogin();
  });
  renderRecent();
  const session = await api("GET", "/dashboard/session");
  if (session.auth_required && !session.logged_in) { showLogin(); return; }
  enter(session.auth_required);
}

function enter(withLogout) {
  $("tabs").classList.remove("invisible");
  $("logout").classList.toggle("hidden", !withLogout);
  showPage(location.hash.slice(1) || "cluster");
  connect();
}

document.addEventListener("DOMContentLoaded", start);
