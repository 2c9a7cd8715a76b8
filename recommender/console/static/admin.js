// Pipeline page: reads /v1/admin/status, /v1/admin/crawls and /v1/admin/schedules with the X-API-Key the
// person entered (kept in this browser's localStorage) and refreshes them every few seconds.
(function () {
  "use strict";
  const REFRESH_S = 5;
  const KEY = "musicrec.apiKey";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function status(id, text, isError) {
    $(id).textContent = text;
    $(id).classList.toggle("error", !!isError);
  }

  async function api(path, options) {
    const key = localStorage.getItem(KEY);
    const opts = Object.assign({}, options || {});
    opts.headers = Object.assign({ "X-API-Key": key || "" }, opts.headers || {});
    const resp = await fetch(path, opts);
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error(body && body.error ? body.error.message : "HTTP " + resp.status);
      err.status = resp.status;
      throw err;
    }
    return body;
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function fill(tableId, rows, render) {
    const tbody = $(tableId).querySelector("tbody");
    tbody.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(tr, "none", "hint");
      td.colSpan = $(tableId).querySelectorAll("thead th").length;
      tbody.appendChild(tr);
      return;
    }
    rows.forEach((r) => { const tr = document.createElement("tr"); render(tr, r); tbody.appendChild(tr); });
  }

  function renderStatus(report) {
    $("broker").textContent = "broker " + report.broker + " · results " + report.result_backend;
    const q = report.queues || {};
    if (q.error) fill("queues", [["unreadable", q.error]], (tr, r) => { cell(tr, r[0]); cell(tr, r[1], "error"); });
    else fill("queues", Object.entries(q), (tr, r) => { cell(tr, r[0]); cell(tr, r[1], "num"); });
    const t = report.tasks || {};
    $("tasks").textContent = t.error ? "tasks unreadable: " + t.error : "running tasks: " + t.running.length + ", failed tasks: " + t.failed.length;
    const jobs = (report.catalog || {}).crawl_jobs || {};
    $("job-counts").textContent = Object.keys(jobs).length ? "Jobs by status: " + Object.entries(jobs).map(([k, v]) => k + " " + v).join(", ") : "No crawl jobs yet.";
    const ft = $("failed-tasks");
    ft.replaceChildren();
    const failedTasks = (t.failed || []).slice(0, 20).map((x) => x.name + " " + x.id + ": " + (x.error || ""));
    (failedTasks.length ? failedTasks : ["none"]).forEach((text) => { const li = document.createElement("li"); li.textContent = text; ft.appendChild(li); });
    const c = report.catalog || {};
    if (c.error) { fill("song-states", [["unreadable", c.error]], (tr, r) => { cell(tr, r[0]); cell(tr, r[1], "error"); }); return; }
    fill("song-states", Object.entries(c.songs), (tr, r) => { tr.dataset.state = r[0]; cell(tr, r[0]); cell(tr, r[1], "num"); });
    fill("failed-songs", c.failed_songs, (tr, s) => { cell(tr, s.id); cell(tr, s.title); cell(tr, s.stage); cell(tr, s.reason); });
  }

  function renderCrawls(body) {
    fill("crawl-jobs", body.jobs, (tr, j) => {
      tr.dataset.jobId = j.id;
      cell(tr, j.id); cell(tr, j.spider); cell(tr, j.status, "state-" + j.status);
      ["pages", "items", "new_songs", "duplicates", "dropped", "errors"].forEach((k) => cell(tr, j.counters[k], "num"));
      const td = cell(tr, "");
      const msgs = (j.recent_errors || []).map((e) => e.stage + ": " + e.message + (e.url ? " (" + e.url + ")" : ""));
      if (j.message) msgs.unshift(j.message);
      td.textContent = msgs.join(" · ");
      td.className = msgs.length ? "error small" : "";
    });
  }

  function renderSchedules(body) {
    fill("schedules", body.schedules, (tr, s) => {
      tr.dataset.name = s.name;
      cell(tr, s.name); cell(tr, s.spider);
      cell(tr, Object.entries(s.args || {}).map(([k, v]) => k + "=" + v).join(" "));
      cell(tr, s.every); cell(tr, s.total_run_count, "num");
      const td = cell(tr, "");
      const b = document.createElement("button");
      b.type = "button"; b.className = "danger"; b.textContent = "Remove";
      b.setAttribute("aria-label", "Remove schedule " + s.name);
      b.addEventListener("click", async () => {
        try {
          await api("/v1/admin/schedules/" + encodeURIComponent(s.name), { method: "DELETE" });
          status("schedule-status", "Removed " + s.name + ".");
          refresh();
        } catch (e) { status("schedule-status", "Could not remove: " + e.message, true); }
      });
      td.appendChild(b);
    });
  }

  async function refresh() {
    if (!localStorage.getItem(KEY)) {
      $("admin-data").hidden = true;
      status("admin-status", "This page needs an admin API key.", true);
      return;
    }
    try {
      const [report, crawls, schedules] = await Promise.all([api("/v1/admin/status"), api("/v1/admin/crawls"), api("/v1/admin/schedules")]);
      renderStatus(report); renderCrawls(crawls); renderSchedules(schedules);
      $("admin-data").hidden = false;
      $("updated").textContent = new Date().toLocaleTimeString();
      status("admin-status", "Signed in with an admin key.");
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        $("admin-data").hidden = true;
        status("admin-status", "Refused: " + e.message + " (" + e.status + ").", true);
      } else {
        status("admin-status", "Could not refresh: " + e.message, true);
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("refresh-s").textContent = REFRESH_S;
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      localStorage.setItem(KEY, $("api-key").value.trim());
      $("api-key").value = "";
      refresh();
    });
    $("forget-key").addEventListener("click", () => { localStorage.removeItem(KEY); refresh(); });
    $("schedule-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const args = {};
      $("s-args").value.split("\n").map((l) => l.trim()).filter(Boolean).forEach((l) => {
        const i = l.indexOf("=");
        if (i > 0) args[l.slice(0, i).trim()] = l.slice(i + 1).trim();
      });
      const body = { spider: $("s-spider").value, args };
      if ($("s-every").value.trim()) body.every = $("s-every").value.trim();
      if ($("s-cron").value.trim()) body.cron = $("s-cron").value.trim();
      if ($("s-name").value.trim()) body.name = $("s-name").value.trim();
      try {
        const out = await api("/v1/admin/schedules", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
        status("schedule-status", "Added " + out.name + " (" + out.every + ").");
        ev.target.reset();
        refresh();
      } catch (e) { status("schedule-status", "Could not add: " + e.message, true); }
    });
    refresh();
    timer = setInterval(refresh, REFRESH_S * 1000);
  });
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();
