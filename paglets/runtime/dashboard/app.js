// The paglets dashboard: polls the host's JSON API (no build step, no libraries).
// The API key, if the host needs one, is kept in sessionStorage and sent as a bearer token.
"use strict";
(function () {
  const KEY = "paglets-api-key";
  const base = location.pathname.replace(/\/dashboard\/?$/, "");
  const $ = (id) => document.getElementById(id);
  let since = 0;
  const events = [];
  let timer = null;

  function headers() {
    const key = sessionStorage.getItem(KEY);
    const h = { Accept: "application/json" };
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  async function get(path) {
    const response = await fetch(base + path, { headers: headers(), cache: "no-store" });
    if (response.status === 401) {
      const error = new Error("unauthorized");
      error.unauthorized = true;
      throw error;
    }
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function status(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + kind;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function fill(id, rows, build) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows.map((item) => {
      const tr = document.createElement("tr");
      build(tr, item);
      return tr;
    }));
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("main").hidden = true;
    $("login-error").textContent = message || "";
    status("API key needed", "error");
  }

  async function refresh() {
    try {
      const [health, hosts, agents, services, news] = await Promise.all([
        get("/health"), get("/hosts"), get("/agents?state=all&include_state=true"),
        get("/services"), get("/events?since=" + since + "&limit=200"),
      ]);
      $("login").hidden = true;
      $("main").hidden = false;
      $("logout").hidden = !sessionStorage.getItem(KEY);
      $("host-name").textContent = health.name || "";
      const hostList = Array.isArray(hosts) ? hosts : (hosts.hosts || []);
      fill("hosts", hostList, (tr, h) => {
        cell(tr, h.name); cell(tr, h.url || h.address || ""); cell(tr, h.online ? "yes" : "no");
        cell(tr, String(h.agent_count ?? h.agents ?? ""));
      });
      fill("agents", agents.agents || [], (tr, a) => {
        tr.dataset.agentId = a.agent_id;
        cell(tr, a.agent_id); cell(tr, a.class_name || a.agent_class || "");
        cell(tr, a.active ? "active" : "inactive");
        const box = a.mailbox || {};
        cell(tr, String(box.queued ?? box.pending ?? ""));
        cell(tr, JSON.stringify(a.state ?? "").slice(0, 300), "data");
      });
      const serviceList = Array.isArray(services) ? services : (services.services || []);
      fill("services", serviceList, (tr, s) => {
        cell(tr, s.name); cell(tr, s.agent_id || ""); cell(tr, s.scope || "");
      });
      for (const e of news.events || []) {
        since = Math.max(since, e.event_id);
        events.push(e);
      }
      events.splice(0, Math.max(0, events.length - 200));
      $("events").replaceChildren(...events.slice().reverse().slice(0, 100).map((e) => {
        const li = document.createElement("li");
        li.textContent = new Date(e.timestamp * 1000).toLocaleTimeString() + " " + e.kind +
          (e.agent_id ? " " + e.agent_id : "") + (e.error ? " — " + e.error : "");
        return li;
      }));
      const moving = events.filter((e) => ["dispatch", "arrival", "retract", "clone"].includes(e.kind)).slice(-10);
      $("moving").replaceChildren(...moving.reverse().map((e) => {
        const li = document.createElement("li");
        const target = e.data && (e.data.target_url || (e.data.target && (e.data.target.url || e.data.target.name)));
        li.textContent = e.kind + " " + (e.agent_id || "") + (target ? " → " + target : "");
        return li;
      }));
      status("connected", "ok");
    } catch (error) {
      if (error.unauthorized) {
        showLogin(sessionStorage.getItem(KEY) ? "the host refused this key" : "");
        return;
      }
      status("host unreachable: " + error.message, "error");
    }
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    refresh();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    refresh();
  });
  refresh();
  timer = setInterval(refresh, 1000);
})();
