// The modeld dashboard: plain DOM over the JSON API. Every text from the API is set with
// textContent (never innerHTML), so a model's output is shown as text, whatever it holds.
"use strict";
(function () {
  const TOKEN_KEY = "modeld-token";
  const state = { selected: null, oldestTs: null, cursor: null, followTimer: null };
  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  async function api(method, path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { method: method, headers: headers });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = body.error || {};
      throw new Error((error.code || response.status) + ": " + (error.message || response.statusText));
    }
    return body;
  }

  function showError(error) {
    const box = $("error");
    box.hidden = !error;
    box.textContent = error ? String(error.message || error) : "";
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.floor(seconds);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d" + Math.floor((s % 86400) / 3600) + "h";
  }

  function bytes(count) {
    if (count === null || count === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = count, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : value) + " " + units[unit];
  }

  function actionButton(model, action) {
    const button = el("button", action);
    button.dataset.action = action;
    button.dataset.model = model.name;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const path = "/models/" + encodeURIComponent(model.name);
        if (action === "stop") await api("DELETE", path);
        else await api("POST", path + "/" + action);
        showError(null);
      } catch (error) { showError(error); }
      button.disabled = false;
      refresh();
    });
    return button;
  }

  function modelRow(model) {
    const row = el("tr");
    row.dataset.model = model.name;
    if (model.name === state.selected) row.className = "selected";
    const nameCell = el("td", null, "name");
    const open = el("button", model.name);
    open.addEventListener("click", () => select(model.name));
    nameCell.appendChild(open);
    row.appendChild(nameCell);
    const statusCell = el("td");
    statusCell.appendChild(el("span", model.status, "status " + model.status));
    row.appendChild(statusCell);
    const metrics = model.metrics || {};
    const gpu = metrics.gpu_memory_bytes !== undefined ? bytes(metrics.gpu_memory_bytes) : "-";
    const lastExit = model.last_exit ? model.last_exit.reason : "-";
    const cells = [model.health, model.ready ? "yes" : "no", duration(metrics.uptime_s),
      model.restarts, lastExit, metrics.cpu_percent === null || metrics.cpu_percent === undefined
        ? "-" : metrics.cpu_percent + "%", bytes(metrics.rss_bytes), gpu];
    cells.forEach((text) => row.appendChild(el("td", text)));
    const endpoint = el("td");
    if (model.endpoint) {
      const link = el("a", model.endpoint);
      link.href = model.endpoint;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      endpoint.appendChild(link);
    } else endpoint.textContent = "-";
    row.appendChild(endpoint);
    const actions = el("td", null, "actions");
    ["start", "stop", "restart"].forEach((action) => actions.appendChild(actionButton(model, action)));
    row.appendChild(actions);
    return row;
  }

  async function refresh() {
    if (!sessionStorage.getItem(TOKEN_KEY)) return;
    try {
      const body = await api("GET", "/models");
      const tbody = $("models").querySelector("tbody");
      tbody.replaceChildren(...body.models.map(modelRow));
      $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
      const chosen = body.models.find((model) => model.name === state.selected);
      if (chosen) showCrash(chosen);
      showError(null);
    } catch (error) { showError(error); }
  }

  function firstError(lines) {
    const pattern = /error|exception|traceback|fatal|killed|out of memory/i;
    return lines.find((line) => pattern.test(line)) || "-";
  }

  function showCrash(model) {
    const last = model.last_exit;
    $("crash-reason").textContent = last ? last.reason : "no exit yet";
    $("crash-code").textContent = last ? (last.code === null ? "-" : last.code) + " / " + (last.signal || "-") : "-";
    $("crash-at").textContent = last ? last.at : "-";
    const lines = last ? last.last_lines || [] : [];
    $("crash-first").textContent = firstError(lines);
    $("crash-lines").textContent = lines.join("\n");
  }

  async function loadEvents(name) {
    const body = await api("GET", "/models/" + encodeURIComponent(name) + "/events?limit=50");
    $("events").replaceChildren(...body.events.reverse().map((event) => {
      const line = event.at + "  " + (event.from || "new") + " \u2192 " + event.to + ": " + (event.reason || "");
      return el("li", line);
    }));
  }

  function logParams() {
    const params = new URLSearchParams();
    if ($("log-stream").value) params.set("stream", $("log-stream").value);
    if ($("log-level").value) params.set("level", $("log-level").value);
    if ($("log-grep").value) params.set("grep", $("log-grep").value);
    return params;
  }

  function logLine(entry) {
    const line = el("div", null, entry.level + " " + entry.stream);
    line.appendChild(el("span", entry.ts + " ", "ts"));
    line.appendChild(el("span", entry.stream.padEnd(7), "stream"));
    line.appendChild(el("span", entry.level.toUpperCase().padEnd(9), "level"));
    line.appendChild(el("span", entry.msg, "msg"));
    return line;
  }

  function logsPath(params) {
    return "/models/" + encodeURIComponent(state.selected) + "/logs?" + params.toString();
  }

  async function loadLogs() {
    const params = logParams();
    params.set("tail", "200");
    const body = await api("GET", logsPath(params));
    $("log-lines").replaceChildren(...body.entries.map(logLine));
    state.oldestTs = body.entries.length ? body.entries[0].ts : null;
    state.cursor = body.next_cursor;
    const box = $("log-lines");
    box.scrollTop = box.scrollHeight;
  }

  async function olderLogs() {
    if (!state.oldestTs) return;
    const params = logParams();
    params.set("tail", "200");
    const until = Date.parse(state.oldestTs) / 1000 - 0.000001;
    params.set("until", until.toFixed(6));
    const body = await api("GET", logsPath(params));
    const box = $("log-lines");
    box.prepend(...body.entries.map(logLine));
    if (body.entries.length) state.oldestTs = body.entries[0].ts;
  }

  async function followLogs() {
    if (!state.selected || !state.cursor) return;
    const params = logParams();
    params.set("cursor", state.cursor);
    const body = await api("GET", logsPath(params));
    const box = $("log-lines");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.append(...body.entries.map(logLine));
    state.cursor = body.next_cursor;
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  async function select(name) {
    state.selected = name;
    $("detail").hidden = false;
    $("detail-name").textContent = name;
    document.querySelectorAll("#models tbody tr").forEach((row) => {
      row.className = row.dataset.model === name ? "selected" : "";
    });
    try {
      const model = await api("GET", "/models/" + encodeURIComponent(name));
      showCrash(model);
      await loadEvents(name);
      await loadLogs();
    } catch (error) { showError(error); }
  }

  function setFollow(on) {
    clearInterval(state.followTimer);
    state.followTimer = on ? setInterval(() => followLogs().catch(showError), 1500) : null;
  }

  async function showDaemon() {
    try {
      const info = await api("GET", "/");
      $("daemon").textContent = "v" + info.version + ", up " + duration(info.uptime_s);
    } catch (error) { showError(error); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      showDaemon();
      refresh();
    });
    $("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
    $("log-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      loadLogs().catch(showError);
    });
    $("log-older").addEventListener("click", () => olderLogs().catch(showError));
    $("log-follow").addEventListener("change", (event) => setFollow(event.target.checked));
    if (sessionStorage.getItem(TOKEN_KEY)) { showDaemon(); refresh(); }
    setInterval(() => {
      refresh();
      if (state.selected) loadEvents(state.selected).catch(() => {});
    }, 2000);
  });
})();
