// The Atelier console: one admin event stream (snapshots and job events) read
// with fetch (so the key travels in a header, never in a URL), tables and an
// SVG chart drawn here, and the job page. No framework, no other origin.
"use strict";

const STAGES = ["analysis", "generation", "upscaling", "post_processing"];
const STAGE_COLOURS = { analysis: "#1f77b4", generation: "#9467bd", upscaling: "#2ca02c", post_processing: "#d62728" };
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const KEY_STORE = "atelier.console.key";
const MAX_JOBS = 50;          // rows in the recent jobs table
const MAX_FAILED = 20;        // entries in the failed jobs list
const HISTORY_POINTS = 300;   // snapshots kept for the chart
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MAX_MS = 10000;
const SETTLE_TRIES = 10;      // re-reads of a job the store has not caught up with yet
const SETTLE_PAUSE_MS = 300;
const UTIL_TARGET_LOW = 0.7;  // the 70–80 % guidance
const UTIL_TARGET_HIGH = 0.8;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  config: null,
  key: localStorage.getItem(KEY_STORE) || "",
  jobs: new Map(),            // id -> {id, status, stages: {stage: "running"|"done"|"failed"}, tenant, thumb, error, updated}
  history: [],                // [{at, stages: {stage: {p50, p95}}}]
  deadLetters: null,          // last count seen in a snapshot
  blobs: new Map(),           // path -> object URL
  stream: null,               // AbortController of the event stream
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function api(path, options) {
  const opts = Object.assign({}, options || {});
  const headers = Object.assign({}, opts.headers || {});
  if (state.key) headers["Authorization"] = "Bearer " + state.key;
  opts.headers = headers;
  return fetch(path, opts);
}

async function apiJson(path, options) {
  const res = await api(path, options);
  if (res.status === 401 || res.status === 403) {
    needKey(res.status === 401 ? "The key was refused." : "This key is not an admin key.");
    throw new Error("unauthorised");
  }
  if (!res.ok) throw new Error(path + " answered " + res.status);
  return res.json();
}

function say(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

function setConn(mode, text) {
  const c = $("conn");
  c.dataset.state = mode;
  c.textContent = text;
}

function needKey(reason) {
  if (state.stream) state.stream.abort();
  $("dashboard").hidden = true;
  $("job-page").hidden = true;
  $("key-form").hidden = false;
  if (reason) $("key-reason").textContent = reason + " The console needs an admin key; it is kept in this browser only.";
  setConn("error", "needs a key");
  $("key").focus();
}

// ---- numbers and names -------------------------------------------------

function secs(s) {
  if (!s) return "–";
  return s < 1 ? Math.round(s * 1000) + " ms" : s.toFixed(s < 10 ? 2 : 1) + " s";
}

function ago(ms) {
  if (!ms) return "";
  const d = Math.max(0, Date.now() - ms) / 1000;
  if (d < 60) return Math.round(d) + " s ago";
  if (d < 3600) return Math.round(d / 60) + " min ago";
  return new Date(ms).toLocaleString();
}

function stageName(s) { return s === "post_processing" ? "post-processing" : s; }

// ---- files fetched with the key ---------------------------------------

// The console's file URLs need the key: fetch them and show object URLs.
async function blobUrl(path) {
  if (state.blobs.has(path)) return state.blobs.get(path);
  const res = await api(path);
  if (!res.ok) throw new Error(path + " answered " + res.status);
  const url = URL.createObjectURL(await res.blob());
  state.blobs.set(path, url);
  return url;
}

function consolePath(url) {
  return url ? url.replace("/api/v1/files/", "/api/v1/admin/console/files/") : url;
}

function image(path, cls, alt) {
  const img = el("img", { class: cls, alt: alt || "" });
  if (path) blobUrl(consolePath(path)).then((u) => { img.src = u; }).catch(() => { img.alt = "missing"; });
  return img;
}

// ---- the event stream --------------------------------------------------

async function connect() {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  let pause = RECONNECT_FIRST_MS;
  while (!ctrl.signal.aborted) {
    try {
      const res = await api("/api/v1/admin/console/events", { signal: ctrl.signal, headers: { Accept: "text/event-stream" } });
      if (res.status === 401 || res.status === 403) {
        needKey(res.status === 401 ? "The key was refused." : "This key is not an admin key.");
        return;
      }
      if (!res.ok || !res.body) throw new Error("the event stream answered " + res.status);
      pause = RECONNECT_FIRST_MS;
      setConn("live", "live");
      await readEvents(res.body.getReader());
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setConn("connecting", "reconnecting…");
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, RECONNECT_MAX_MS);
  }
}

async function readEvents(reader) {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      let name = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) dispatch(name, data.join("\n"));
    }
  }
}

function dispatch(name, data) {
  let body;
  try { body = JSON.parse(data); } catch (e) { return; }
  if (name === "snapshot") onSnapshot(body);
  else if (name === "job") onJobEvent(body);
  else if (name === "missed") loadLists();
  else if (name === "reconnect") setConn("connecting", "gateway draining, reconnecting…");
}

// ---- snapshots: summary, stage table, chart ----------------------------

function onSnapshot(s) {
  if (s.error || !s.queue) {
    say("Status service: " + (s.error || "no answer"));
    return;
  }
  say("");
  const q = s.queue;
  const through = Object.fromEntries((s.throughput || []).map((t) => [t.stage, t.per_minute]));
  const capacity = Object.fromEntries((s.capacity || []).map((c) => [c.stage, c.capacity]));
  renderSummary(q, s.dead_letters);
  renderStages(q.stages, through, capacity);
  const point = { at: s.at_ms, stages: {} };
  for (const st of q.stages) point.stages[st.stage] = { p50: st.p50 || 0, p95: st.p95 || 0 };
  state.history.push(point);
  if (state.history.length > HISTORY_POINTS) state.history.shift();
  drawChart();
  if (state.deadLetters !== s.dead_letters) {
    state.deadLetters = s.dead_letters;
    loadDeadLetters();
  }
}

function renderSummary(q, deadLetters) {
  const info = q.queue_info;
  const card = (value, label) => el("div", { class: "card" }, el("b", { text: String(value) }), el("span", { text: label }));
  $("summary").replaceChildren(
    card(info.queue_size, "waiting for analysis"),
    card(info.running_tasks, "running"),
    card(info.completed_tasks, "completed"),
    card(info.failed_tasks, "failed"),
    card(deadLetters, "dead letters"),
    card(info.is_running ? "yes" : "no", "pipeline consuming"),
  );
}

function renderStages(stages, through, capacity) {
  const rows = stages.map((st) => {
    const cap = capacity[st.stage] || 0;
    const util = cap ? st.running / cap : 0;
    const cls = util > UTIL_TARGET_HIGH ? "util-high" : util >= UTIL_TARGET_LOW ? "util-target" : "util-low";
    return el("tr", { "data-stage": st.stage },
      el("td", { text: stageName(st.stage) }),
      el("td", { class: "num", text: String(st.queue_size) }),
      el("td", { class: "num", text: String(st.running) }),
      el("td", { class: "num", text: String(st.consumers) }),
      el("td", { class: "num", text: String(cap) }),
      el("td", { class: "num " + cls, text: cap ? Math.round(util * 100) + " %" : "–" }),
      el("td", { class: "num", text: (through[st.stage] || 0).toFixed(1) }),
      el("td", { class: "num", text: secs(st.p50) }),
      el("td", { class: "num", text: secs(st.p95) }),
      el("td", { class: "num", text: String(st.completed) }),
      el("td", { class: "num", text: String(st.failed) }));
  });
  $("stages").tBodies[0].replaceChildren(...rows);
}

function drawChart() {
  const chart = $("latency-chart");
  const W = 760, H = 240, left = 50, right = 10, top = 10, bottom = 24;
  const h = state.history;
  chart.replaceChildren();
  let max = 0;
  for (const p of h) for (const s of STAGES) if (p.stages[s]) max = Math.max(max, p.stages[s].p95, p.stages[s].p50);
  max = max > 0 ? max * 1.1 : 1;
  const t0 = h.length ? h[0].at : 0, t1 = h.length ? h[h.length - 1].at : 1;
  const x = (t) => left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - left - right);
  const y = (v) => top + (1 - v / max) * (H - top - bottom);
  for (const f of [0, 0.5, 1]) {
    chart.append(svg("line", { x1: left, x2: W - right, y1: y(max * f), y2: y(max * f), stroke: "#e5e5ea" }));
    const label = svg("text", { x: 4, y: y(max * f) + 3 });
    label.textContent = secs(max * f) === "–" ? "0" : secs(max * f);
    chart.append(label);
  }
  const span = svg("text", { x: left, y: H - 6 });
  span.textContent = h.length > 1 ? "last " + Math.round((t1 - t0) / 1000) + " s" : "waiting for snapshots…";
  chart.append(span);
  for (const s of STAGES) {
    for (const [pct, dash] of [["p50", ""], ["p95", "4 3"]]) {
      const pts = h.filter((p) => p.stages[s]).map((p) => x(p.at).toFixed(1) + "," + y(p.stages[s][pct]).toFixed(1));
      if (!pts.length) continue;
      const line = svg("polyline", { points: pts.join(" "), fill: "none", stroke: STAGE_COLOURS[s], "stroke-width": 1.5, "data-stage": s, "data-percentile": pct });
      if (dash) line.setAttribute("stroke-dasharray", dash);
      chart.append(line);
    }
  }
  $("chart-legend").replaceChildren(...STAGES.map((s) =>
    el("span", {}, el("i", { style: null, "data-colour": s }), stageName(s))), el("span", { text: "solid p50, dashed p95" }));
  for (const i of $("chart-legend").querySelectorAll("i[data-colour]")) i.style.background = STAGE_COLOURS[i.dataset.colour];
}

// ---- jobs -------------------------------------------------------------

function jobEntry(id) {
  let job = state.jobs.get(id);
  if (!job) {
    job = { id, status: "queued", stages: {}, tenant: "", thumb: null, error: null, updated: 0 };
    state.jobs.set(id, job);
  }
  return job;
}

function onJobEvent(e) {
  const job = jobEntry(e.job_id);
  job.updated = Math.max(job.updated, e.at_ms);
  if (e.kind === "stage_started" && e.stage) { job.stages[e.stage] = "running"; if (!TERMINAL.has(job.status)) job.status = "running"; }
  else if (e.kind === "stage_finished" && e.stage) job.stages[e.stage] = "done";
  else if (e.kind === "stage_retrying" && e.stage) job.stages[e.stage] = "running";
  else if (TERMINAL.has(e.kind)) {
    job.status = e.kind;
    if (e.kind === "failed" && e.error) job.error = e.error.message;
    for (const s of STAGES) if (job.stages[s] === "running") job.stages[s] = e.kind === "completed" ? "done" : "failed";
  }
  if (TERMINAL.has(e.kind) || !job.fetched) refreshJob(job.id);
  renderJobs();
  if (location.hash === "#/jobs/" + e.job_id) showJob(e.job_id);
}

// Fills tenant, thumbnail and failure from the store (which may lag the
// event stream by a moment).
async function refreshJob(id, tries) {
  const job = jobEntry(id);
  job.fetched = true;
  let body;
  try { body = await apiJson("/api/v1/admin/console/jobs/" + id); } catch (e) { return; }
  mergeJob(job, body.job, body.tenant, body.events);
  if (TERMINAL.has(job.status) && !TERMINAL.has(body.job.status) && (tries || 0) < SETTLE_TRIES) {
    setTimeout(() => refreshJob(id, (tries || 0) + 1), SETTLE_PAUSE_MS);
  }
  renderJobs();
}

function mergeJob(job, resource, tenant, events) {
  if (tenant) job.tenant = tenant;
  // The stream may already know the end the store has not recorded yet.
  if (!TERMINAL.has(job.status) || TERMINAL.has(resource.status)) job.status = resource.status;
  job.updated = Math.max(job.updated, resource.updated_at_ms || 0);
  if (job.created === undefined) job.created = resource.created_at_ms;
  if (resource.error) job.error = resource.error.message;
  const first = resource.result && resource.result.image_variations && resource.result.image_variations[0];
  if (first) job.thumb = first.url;
  for (const ev of events || []) {
    if (!ev.stage) continue;
    if (ev.kind === "stage_started" && !job.stages[ev.stage]) job.stages[ev.stage] = "running";
    if (ev.kind === "stage_finished") job.stages[ev.stage] = "done";
  }
  if (resource.status === "failed" && resource.current_stage && job.stages[resource.current_stage] !== "done") {
    job.stages[resource.current_stage] = "failed";
  }
}

function timeline(job) {
  return el("span", { class: "timeline" }, ...STAGES.map((s) =>
    el("i", { class: job.stages[s] || "", title: stageName(s) + ": " + (job.stages[s] || "not started") })));
}

function renderJobs() {
  const jobs = [...state.jobs.values()].sort((a, b) => (b.created || b.updated) - (a.created || a.updated)).slice(0, MAX_JOBS);
  $("jobs").tBodies[0].replaceChildren(...jobs.map((job) =>
    el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", {}, job.thumb ? image(job.thumb, "thumb", "variation 0") : el("span", { class: "thumb" })),
      el("td", {}, el("a", { href: "#/jobs/" + job.id, text: job.id.slice(0, 8) + "…" })),
      el("td", { text: job.tenant }),
      el("td", {}, el("span", { class: "status status-" + job.status, text: job.status })),
      el("td", {}, timeline(job)),
      el("td", { text: ago(job.updated) }))));
  const failed = [...state.jobs.values()].filter((j) => j.status === "failed")
    .sort((a, b) => b.updated - a.updated).slice(0, MAX_FAILED);
  $("failed").replaceChildren(...(failed.length ? failed.map((job) =>
    el("li", { "data-job-id": job.id },
      el("a", { href: "#/jobs/" + job.id, text: job.id.slice(0, 8) + "…" }),
      " " + (job.error || "failed") + " (" + ago(job.updated) + ")"))
    : [el("li", { class: "hint", text: "none seen" })]));
}

// The jobs list API when this gateway has it; else the jobs seen live.
async function loadLists() {
  if (!state.config.jobs_list) {
    $("jobs-source").textContent = "Jobs seen since this page opened (this gateway has no jobs list API).";
    renderJobs();
    return;
  }
  $("jobs-source").textContent = "";
  for (const query of ["limit=" + MAX_JOBS, "status=failed&limit=" + MAX_FAILED]) {
    try {
      const body = await apiJson("/api/v1/jobs?" + query);
      for (const resource of body.jobs || []) mergeJob(jobEntry(resource.request_id), resource, null, null);
    } catch (e) {
      $("jobs-source").textContent = "The jobs list did not load (" + e.message + "); showing jobs seen live.";
    }
  }
  renderJobs();
}

// ---- dead letters -----------------------------------------------------

async function loadDeadLetters() {
  const note = $("dead-letters-note");
  if (!state.config.dead_letters) {
    note.textContent = (state.deadLetters || 0) + " message(s) in the dead-letter queue. This gateway has no dead-letter API to list or replay them.";
    return;
  }
  let body;
  try { body = await apiJson("/api/v1/admin/dead-letters"); } catch (e) {
    note.textContent = "Dead letters did not load: " + e.message;
    return;
  }
  const letters = body.dead_letters || [];
  note.textContent = letters.length ? "" : "No dead letters.";
  $("dead-letters").hidden = !letters.length;
  $("replay-all").hidden = !letters.length;
  $("dead-letters").tBodies[0].replaceChildren(...letters.map((d) =>
    el("tr", { "data-dead-letter": d.id },
      el("td", { text: String(d.id) }),
      el("td", {}, d.job_id ? el("a", { href: "#/jobs/" + d.job_id, text: String(d.job_id).slice(0, 8) + "…" }) : ""),
      el("td", { text: stageName(d.stage || "") }),
      el("td", { text: d.reason || "" }),
      el("td", { class: "num", text: String(d.attempts) }),
      el("td", { text: ago(d.dead_at_ms) }),
      el("td", {}, el("button", { type: "button", text: "Replay", onclick: () => replay({ ids: [d.id] }) })))));
}

async function replay(body) {
  try {
    const r = await apiJson("/api/v1/admin/dead-letters/replay", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    say("");
    $("dead-letters-note").textContent = "Replayed " + r.replayed + ".";
  } catch (e) {
    say("Replay failed: " + e.message);
  }
  loadDeadLetters();
}

// ---- the job page -----------------------------------------------------

async function showJob(id) {
  $("dashboard").hidden = true;
  $("job-page").hidden = false;
  $("job-id").textContent = id;
  let body;
  try { body = await apiJson("/api/v1/admin/console/jobs/" + id); } catch (e) {
    say(e.message === "unauthorised" ? "" : "Job " + id + ": " + e.message);
    return;
  }
  const job = body.job;
  const t = job.processing_times || {};
  const facts = [["status", job.status], ["tenant", body.tenant], ["kind", body.kind],
    ["stage", job.current_stage ? stageName(job.current_stage) : "–"],
    ["created", new Date(job.created_at_ms).toLocaleString()], ["updated", ago(job.updated_at_ms)],
    ["times", Object.entries(t).map(([k, v]) => k + " " + secs(v)).join(", ")]];
  $("job-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v), "data-fact": k })]));
  $("job-error").hidden = !job.error;
  $("job-error").textContent = job.error ? job.error.code + ": " + job.error.message + (job.error.field ? " (" + job.error.field + ")" : "") : "";
  $("job-events").replaceChildren(...body.events.map((e) => el("li", {
    text: new Date(e.at_ms).toLocaleTimeString() + "  " + e.kind + (e.stage ? " " + stageName(e.stage) : "") +
      (e.seconds ? " in " + secs(e.seconds) : "") + (e.attempt > 1 ? " (attempt " + e.attempt + ")" : "") +
      (e.error ? ": " + e.error.message : ""),
  })));
  const figure = (url, caption) => el("figure", {}, image(url, "", caption), el("figcaption", { text: caption }));
  $("job-inputs").replaceChildren(...body.inputs.map((i, n) => figure(i.url, "input " + n + ": " + i.source)));
  const r = job.result || { image_variations: [], upscale_image: [] };
  $("job-variations").replaceChildren(...r.image_variations.map((v, n) => figure(v.url, "#" + n + " " + v.background + " " + v.width + "×" + v.height)));
  $("job-upscaled").replaceChildren(...r.upscale_image.map((u) => figure(u.url, "of #" + u.variation + " ×" + u.factor + " " + u.width + "×" + u.height + (u.fallback ? " (kept: " + u.fallback + ")" : ""))));
  const media = [];
  if (r.video_url) {
    const video = el("video", { controls: "", muted: "", loop: "", playsinline: "", id: "job-video" });
    blobUrl(r.video_url).then((u) => { video.src = u; video.muted = true; video.play().catch(() => {}); }).catch(() => {});
    media.push(video);
  }
  if (r.excel_url) {
    const link = el("a", { href: "#", id: "job-report", text: "Download the Excel report" });
    link.addEventListener("click", async (ev) => {
      ev.preventDefault();
      const a = el("a", { href: await blobUrl(r.excel_url), download: "report-" + id + ".xlsx" });
      document.body.append(a);
      a.click();
      a.remove();
    });
    media.push(el("p", {}, link));
  }
  $("job-media").replaceChildren(...(media.length ? media : [el("p", { class: "hint", text: job.status === "completed" ? "Images only: no video or report." : "Not yet." })]));
}

function route() {
  const m = location.hash.match(/^#\/jobs\/([0-9a-fA-F-]{36})$/);
  if (m) { showJob(m[1]); return; }
  $("job-page").hidden = true;
  $("dashboard").hidden = false;
}

// ---- start ------------------------------------------------------------

function start() {
  $("key-form").hidden = true;
  $("forget-key").hidden = !state.key;
  route();
  loadLists();
  loadDeadLetters();
  connect();
}

async function main() {
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.key = $("key").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    start();
  });
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    state.key = "";
    needKey("Key forgotten.");
  });
  $("replay-all").addEventListener("click", () => replay({ all: true }));
  window.addEventListener("hashchange", route);
  setInterval(renderJobs, 10000); // keeps the "ago" column honest
  const res = await fetch("/console/config.json");
  state.config = await res.json();
  if (state.config.auth_required && !state.key) { needKey(""); return; }
  start();
}

main().catch((e) => say("The console failed to start: " + e.message));
