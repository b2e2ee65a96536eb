// payctl console: polls the JSON API and draws tables and inline-SVG charts (no library, no build).
"use strict";
const $ = (sel) => document.querySelector(sel);
const COLORS = ["#1a73e8", "#d93025", "#188038", "#f29900", "#9334e6", "#12b5cb", "#e8710a", "#5f6368"];
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

// Beyond loopback every /api/ request carries the token the user pasted (kept for this tab only).
function withToken(opts) {
  const token = sessionStorage.getItem("payctl-console-token");
  if (!CONFIG.token_required || !token) return opts;
  const o = opts || {};
  return {...o, headers: {...(o.headers || {}), authorization: "Bearer " + token}};
}

async function getJSON(url, opts) {
  const resp = await fetch(url, withToken(opts));
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
  return body;
}

function fmtTime(ts) { return new Date(ts * 1000).toLocaleTimeString(); }

async function refreshStatus() {
  try {
    const data = await getJSON("/api/status");
    $("#services tbody").innerHTML = data.services.map((s) => `<tr data-service="${esc(s.name)}">
      <td>${esc(s.vm || "-")}</td><td>${esc(s.name)}</td><td>${esc(s.state)}</td>
      <td class="${s.healthy ? "ok" : "bad"}">${s.healthy ? "✔" : "✘"} ${esc(s.detail)}</td>
      <td>${s.uptime_s == null ? "" : Math.round(s.uptime_s) + " s"}</td>
      <td class="state-${esc(s.breaker || "")}">${esc(s.breaker || "")}</td></tr>`).join("");
    $("#breakers").innerHTML = data.breakers.map((b) => `<div class="breaker" data-relay="${esc(b.relay)}">
      <b>${esc(b.relay)}</b> <span class="state-${esc(b.state)}">${esc(b.state)}</span>
      · failure ${esc(b.failureRate)}% · slow ${esc(b.slowCallRate)}% · not permitted ${esc(b.numberOfNotPermittedCalls ?? "")}
      <div class="timeline">${(b.transitions || []).slice(-12).map((t) =>
        `<span>${esc(t.from)}→<b class="state-${esc(t.to)}">${esc(t.to)}</b> ${fmtTime(t.at)}</span>`).join("") || "<span>no transitions</span>"}</div>
      </div>`).join("");
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) { $("#updated").textContent = "status unavailable: " + err.message; }
}

async function loadCatalog() {
  const cat = await getJSON("/api/catalog");
  $("#load-scenario").innerHTML = cat.scenarios.map((s) => `<option${s === "smoke" ? " selected" : ""}>${esc(s)}</option>`).join("");
  $("#chaos-experiment").innerHTML = cat.experiments.map((e) => `<option value="${esc(e.name)}">${esc(e.name)}${e.needs_netns ? " [netns only]" : ""} — ${esc(e.title)}</option>`).join("");
}

let CONFIG = {token_required: false, queue: 0};

// Actions are JSON POSTs (the console refuses anything else); getJSON adds the token.
function actionHeaders() {
  return {"content-type": "application/json"};
}

async function postAction(url, body) {
  $("#form-error").textContent = "";
  try { await getJSON(url, {method: "POST", headers: actionHeaders(), body: JSON.stringify(body)}); }
  catch (err) { $("#form-error").textContent = err.message; }
  refreshJobs();
}

const submitJob = (body) => postAction("/api/jobs", body);
const cancelJob = (id) => postAction(`/api/jobs/${encodeURIComponent(id)}/cancel`, {});

function jobHtml(j) {
  const p = j.progress || {};
  const total = p.total_s || p.activities_total || 0;
  const done = p.total_s ? p.elapsed_s : p.activities_done;
  const bar = total && j.status === "running" ? `<progress max="${total}" value="${Math.min(done || 0, total)}"></progress>` : "";
  const live = p.rps != null ? ` · ${p.rps.toFixed(1)} req/s · ${p.requests ?? 0} requests` : "";
  const cancel = ["queued", "running"].includes(j.status)
    ? ` <button type="button" class="cancel" data-cancel="${esc(j.id)}">Cancel</button>` : "";
  const cls = j.status === "passed" ? "ok" : ["running", "queued", "cancelling"].includes(j.status) ? "warn" : "bad";
  return `<div class="job" data-job="${esc(j.id)}" data-status="${esc(j.status)}"><b>${esc(j.id)}</b> ${esc(j.kind)} ${esc(j.name)}
    — <span class="${cls}">${esc(j.status)}</span>${cancel} ${bar}${live}
    ${j.error ? `<div class="error">${esc(j.error)}</div>` : ""}
    ${j.log && j.log.length ? `<pre>${esc(j.log.slice(-8).join("\n"))}</pre>` : ""}</div>`;
}

async function refreshJobs() {
  try {
    const jobs = await getJSON("/api/jobs");
    const queued = jobs.filter((j) => j.status === "queued").reverse();  // oldest first: the order they run in
    $("#queue-count").textContent = `${queued.length} / ${CONFIG.queue}`;
    $("#queue").innerHTML = queued.map((j, i) => `<li data-queued="${esc(j.id)}">${i + 1}. ${esc(j.id)} ${esc(j.kind)} ${esc(j.name)}
      <button type="button" class="cancel" data-cancel="${esc(j.id)}">Cancel</button></li>`).join("");
    $("#jobs").innerHTML = jobs.filter((j) => j.status !== "queued").map(jobHtml).join("") || "<p>no jobs yet</p>";
  } catch (err) { /* next poll */ }
}

async function refreshRuns() {
  try {
    const runs = await getJSON("/api/runs");
    $("#runs tbody").innerHTML = runs.map((r) => `<tr data-run="${esc(r.run)}"><td>${esc(r.started)}</td><td>${esc(r.kind)}</td>
      <td>${esc(r.name)}</td><td class="${r.status === "passed" ? "ok" : "bad"}">${esc(r.status)}</td><td>${esc(r.summary)}</td>
      <td>${Object.entries(r.links).map(([k, v]) => `<a href="${esc(v)}" target="_blank">${esc(k)}</a>`).join(" ")}
      ${r.charts ? `<button type="button" data-run-charts="${esc(r.charts)}" data-run-name="${esc(r.run)}">charts</button>` : ""}</td></tr>`).join("");
    // by default the newest load run's charts; a click on another run's "charts" shows that run's
    const newest = runs.find((r) => r.kind === "load" && r.charts);
    if (newest && !RUN_CHARTS.chosen && RUN_CHARTS.url !== newest.charts) showRunCharts(newest.charts, newest.run, false);
  } catch (err) { /* next poll */ }
}

const RUN_CHARTS = {url: null, chosen: false};
async function showRunCharts(url, name, chosen) {
  RUN_CHARTS.url = url;
  RUN_CHARTS.chosen = RUN_CHARTS.chosen || chosen;
  $("#run-charts-name").textContent = name;
  try {
    const charts = await getJSON(url);
    $("#run-charts").innerHTML = charts.length
      ? charts.map((c) => `<div class="chart" id="run-chart-${esc(c.id)}"></div>`).join("")
      : "<p>this run kept no per-request data (--no-raw): no charts over time</p>";
    for (const c of charts) drawChart(document.getElementById("run-chart-" + c.id), c);
  } catch (err) { $("#run-charts").innerHTML = `<p class="error">${esc(err.message)}</p>`; }
}

function drawChart(el, data) {
  const W = 600, H = 170, L = 48, B = 18;
  const series = data.series.map((s, i) => ({name: s.labels[data.legend] || data.title, color: COLORS[i % COLORS.length],
    pts: s.points.filter((p) => p[1] != null)}));
  const all = series.flatMap((s) => s.pts);
  let svg;
  if (!all.length) {
    svg = `<svg viewBox="0 0 ${W} ${H}"><text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data yet</text></svg>`;
  } else {
    const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
    const vmax = Math.max(...all.map((p) => p[1]), 1e-9) * 1.1;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - 6), y = (v) => H - B - v / vmax * (H - B - 8);
    const xLabel = data.x === "second" ? (t) => `${Math.round(t)} s` : fmtTime;
    const grid = [0, 0.5, 1].map((f) => `<line x1="${L}" x2="${W}" y1="${y(vmax * f)}" y2="${y(vmax * f)}" stroke="#e3e6ea"/>
      <text x="${L - 4}" y="${y(vmax * f) + 4}" text-anchor="end" font-size="10" fill="#666">${+(vmax * f).toPrecision(3)}</text>`).join("");
    const lines = series.map((s) => `<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${s.pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ")}"/>`).join("");
    svg = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${grid}${lines}
      <text x="${L}" y="${H - 4}" font-size="10" fill="#666">${xLabel(t0)}</text><text x="${W - 6}" y="${H - 4}" font-size="10" fill="#666" text-anchor="end">${xLabel(t1)}</text></svg>`;
  }
  el.innerHTML = `<h4>${esc(data.title)} <small>(${esc(data.unit)})</small></h4>${svg}
    <div class="legend">${series.map((s) => `<span><i style="background:${s.color}"></i>${esc(s.name)}</span>`).join("")}</div>`;
  el.dataset.points = String(all.length);
}

let CHARTS = [];
async function refreshCharts() {
  const minutes = $("#minutes").value;
  for (const c of CHARTS) {
    const el = document.getElementById("chart-" + c.id);
    try { drawChart(el, await getJSON(`/api/charts/${c.id}?minutes=${minutes}`)); }
    catch (err) { el.innerHTML = `<h4>${esc(c.title)}</h4><p class="error">${esc(err.message)}</p>`; }
  }
}

async function main() {
  CONFIG = await getJSON("/api/config");
  $('input[name="rate"]').max = CONFIG.max_rate;
  $("#limits").textContent = `at most ${CONFIG.max_rate}/s for ${CONFIG.max_duration_s} s`;
  if (CONFIG.token_required) {
    $("#token-box").hidden = false;
    $("#token").value = sessionStorage.getItem("payctl-console-token") || "";
    const entered = new Promise((resolve) => $("#token").addEventListener("change", (ev) => {
      sessionStorage.setItem("payctl-console-token", ev.target.value.trim());
      resolve();
    }));
    // every read needs the token: nothing to show until the user has given one
    if (!sessionStorage.getItem("payctl-console-token")) await entered;
  }
  document.addEventListener("click", (ev) => {
    const id = ev.target.dataset && ev.target.dataset.cancel;
    if (id) cancelJob(id);
    const charts = ev.target.dataset && ev.target.dataset.runCharts;
    if (charts) showRunCharts(charts, ev.target.dataset.runName, true);
  });
  $("#load-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    submitJob({kind: "load", scenario: f.get("scenario"), rate: Number(f.get("rate")), duration: f.get("duration")});
  });
  $("#chaos-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    submitJob({kind: "chaos", experiment: $("#chaos-experiment").value, confirm: $("#chaos-confirm").checked});
  });
  $("#minutes").addEventListener("change", refreshCharts);
  CHARTS = await getJSON("/api/charts");
  $("#charts").innerHTML = CHARTS.map((c) => `<div class="chart" id="chart-${esc(c.id)}"><h4>${esc(c.title)}</h4></div>`).join("");
  await Promise.all([loadCatalog(), refreshStatus(), refreshJobs(), refreshRuns(), refreshCharts()]);
  setInterval(refreshStatus, 3000);
  setInterval(refreshJobs, 1000);
  setInterval(refreshRuns, 4000);
  setInterval(refreshCharts, 10000);
}
main();
