// The operations console: fleet, vehicle and operations views over the API's own routes and its
// WebSocket. No build step; uPlot (vendored) draws the charts, map.js the map.
import { SvgMap } from "./map.js";

const CREDENTIAL = "vehicle-backend.credential"; // sessionStorage: kept for the tab, never in a URL
const TERMINAL = new Set(["succeeded", "failed", "rejected", "expired"]);
const WINDOWS = { "1 h": 3600, "6 h": 6 * 3600, "24 h": 86400, "7 d": 7 * 86400 };
const COMMANDS = [
  ["lock", "Lock", {}],
  ["unlock", "Unlock", {}],
  ["climate", "Climate on", { action: "on", temperature: 21 }],
  ["climate", "Climate off", { action: "off" }],
  ["charging", "Start charging", { action: "start" }],
  ["charging", "Stop charging", { action: "stop" }],
  ["find_my_car", "Find my car", { mode: "activate" }],
];
// Live telemetry keys that move the summary fields of a vehicle's state.
const LIVE_FIELDS = {
  "drivetrain/soc": "soc",
  "drivetrain/range": "range_km",
  "location/latitude": "latitude",
  "location/longitude": "longitude",
  "location/speed": "speed_kmh",
  "doors/locked": "locked",
  "drivetrain/charging": "charging",
  "refresh/lastVehicleState": "ts",
};

const state = { config: null, vehicles: new Map(), socket: null, scope: null, liveListeners: new Set() };
const $ = (selector, root = document) => root.querySelector(selector);

// -- talking to the API ---------------------------------------------------------------------------

class ApiProblem extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    Object.assign(this, { status, code, retryAfter });
  }
}

function credential() {
  return sessionStorage.getItem(CREDENTIAL);
}

function authHeaders() {
  const token = credential() || "";
  return token.split(".").length === 3 ? { Authorization: `Bearer ${token}` } : { "X-API-Key": token };
}

async function api(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { ...authHeaders(), ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (error) {
    throw new ApiProblem(0, "unreachable", `Cannot reach the API (${error.message}).`);
  }
  if (response.ok) return (response.headers.get("Content-Type") || "").includes("json") ? response.json() : response.text();
  let code = "error";
  let message = response.statusText;
  try {
    ({ code, message } = (await response.json()).error);
  } catch {
    /* not a JSON error body */
  }
  throw new ApiProblem(response.status, code, message, response.headers.get("Retry-After"));
}

function explain(problem) {
  switch (problem.status) {
    case 0:
      return problem.message;
    case 401:
      return `Signed out: the API refused your key or session (${problem.message}). Sign in again.`;
    case 403:
      return `Not allowed: ${problem.message}.`;
    case 429:
      return `Too many requests: slow down and try again in ${problem.retryAfter || "a few"} s.`;
    case 503:
      return `The backend is not ready yet: ${problem.message}.`;
    default:
      return `The request failed (${problem.status}): ${problem.message}.`;
  }
}

function notify(text, kind = "error") {
  const box = $("#notice");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
}

function report(problem) {
  if (!(problem instanceof ApiProblem)) throw problem;
  notify(explain(problem));
  if (problem.status === 401) signOut(false);
}

// -- formatting -----------------------------------------------------------------------------------

const fmt = {
  num: (v, digits = 1, unit = "") => (v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)}${unit}`),
  time: (v) => (v ? new Date(v).toLocaleString() : "—"),
  short: (v) => (v ? new Date(v).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "—"),
  duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  },
  age(seconds) {
    if (!Number.isFinite(seconds)) return "never";
    if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    return `${(seconds / 3600).toFixed(1)} h ago`;
  },
};

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function lastReadingAge(vehicle) {
  const times = [vehicle.state?.ts, vehicle.state?.received_at].filter(Boolean).map((t) => Date.parse(t));
  return times.length ? (Date.now() - Math.max(...times)) / 1000 : Infinity;
}

// A figure in a box: label (none: null) above the value, an optional note below.
function card(label, value, cls = "", { attrs = "", note = null } = {}) {
  const line = (text) => (text === null ? "" : `<div class="label">${text}</div>`);
  return `<div class="card ${cls}" ${attrs}>${line(label)}<div class="value">${value}</div>${line(note)}</div>`;
}

function lockPill(locked) {
  if (locked === null || locked === undefined) return "—";
  return locked ? '<span class="pill ok">locked</span>' : '<span class="pill bad">unlocked</span>';
}

function socBar(soc) {
  if (soc === null || soc === undefined) return "—";
  return `<span class="bar${soc < 20 ? " low" : ""}"><i style="width:${Math.min(100, soc)}%"></i></span>${fmt.num(soc, 1, " %")}`;
}

// -- live stream ------------------------------------------------------------------------------------

function connectLive() {
  if (state.socket) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // The token travels as a subprotocol, never in the URL (the API answers with the first one only).
  const socket = new WebSocket(`${scheme}://${location.host}/api/live`, ["vehicle-backend.v1", `access_token.${credential()}`]);
  state.socket = socket;
  socket.onopen = () => setLive(true);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") {
      mergeVehicles(message.vehicles);
    } else if (message.type === "telemetry") {
      applyTelemetry(message);
    }
    for (const listener of state.liveListeners) listener(message);
  };
  socket.onclose = () => {
    setLive(false);
    state.socket = null;
    if (credential()) setTimeout(connectLive, 3000);
  };
}

function setLive(on) {
  const badge = $("#live-indicator");
  badge.hidden = false;
  badge.className = `live ${on ? "on" : "off"}`;
  badge.textContent = on ? "live" : "reconnecting…";
}

function mergeVehicles(vehicles) {
  for (const v of vehicles) state.vehicles.set(v.vin, { ...state.vehicles.get(v.vin), ...v });
}

let vehicleListRefresh = null;

function refreshVehicles() {
  // A car the page has not seen yet (new to the fleet since it loaded): fetch the list once things settle.
  clearTimeout(vehicleListRefresh);
  vehicleListRefresh = setTimeout(async () => {
    try {
      const { vehicles } = await api("/api/vehicles");
      mergeVehicles(vehicles);
      for (const listener of state.liveListeners) listener({ type: "vehicles" });
    } catch (problem) {
      report(problem);
    }
  }, 1000);
}

function applyTelemetry({ vin, key, value, received_at }) {
  const vehicle = state.vehicles.get(vin);
  if (!vehicle) return refreshVehicles();
  vehicle.state = vehicle.state || {};
  vehicle.state.received_at = received_at;
  const field = LIVE_FIELDS[key];
  if (field) vehicle.state[field] = value;
  if (key === "available") vehicle.state.available = value === "online";
  if (vehicle.values) vehicle.values[key] = value;
}

// -- views ------------------------------------------------------------------------------------------

// What one view holds while it is shown. Navigating ends it: its timers stop, its live listeners go,
// and a view still awaiting the API when it ends sees `alive` false and leaves the page alone.
class ViewScope {
  constructor() {
    this.alive = true;
    this.timers = [];
    this.listeners = new Set();
  }

  every(ms, fn) {
    if (this.alive) this.timers.push(setInterval(fn, ms));
  }

  onLive(listener) {
    if (!this.alive) return;
    this.listeners.add(listener);
    state.liveListeners.add(listener);
  }

  end() {
    this.alive = false;
    this.timers.forEach(clearInterval);
    for (const listener of this.listeners) state.liveListeners.delete(listener);
  }
}

function newScope() {
  state.scope?.end();
  state.scope = new ViewScope();
  return state.scope;
}

function signInView() {
  $("#nav").hidden = true;
  $("#sign-out").hidden = true;
  $("#live-indicator").hidden = true;
  $("#view").innerHTML = `
    <form class="panel sign-in" id="sign-in">
      <h1>Sign in</h1>
      <p class="muted">Paste an API key (operators and services) or a Supabase access token (a user's session).
      It is kept for this tab only and sent as a header, never in a URL.</p>
      <textarea id="credential" name="credential" autocomplete="off" spellcheck="false" required
        placeholder="API key or access token"></textarea>
      <button type="submit">Sign in</button>
    </form>`;
  $("#sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(CREDENTIAL, $("#credential").value.trim());
    try {
      await api("/api/vehicles");
      notify("");
      location.hash = "#/fleet";
      route();
    } catch (problem) {
      sessionStorage.removeItem(CREDENTIAL);
      notify(problem instanceof ApiProblem && problem.status === 401 ? `That key or token was refused: ${problem.message}.` : explain(problem));
    }
  });
}

async function fleetView(root, scope) {
  root.innerHTML = `
    <h1>Fleet</h1>
    <div class="cards" id="fleet-cards"></div>
    <div class="grid two">
      <section class="panel scroll"><h2>Vehicles</h2>
        <table id="fleet"><thead><tr><th>Vehicle</th><th>SoC</th><th>Range</th><th>Lock</th><th>Charging</th>
          <th>Speed</th><th>Last reading</th></tr></thead><tbody></tbody></table>
      </section>
      <section class="panel"><h2>Where they are</h2><div id="fleet-map"></div></section>
    </div>`;
  const map = new SvgMap($("#fleet-map"), {
    tileUrl: state.config.tile_url,
    attribution: state.config.tile_attribution,
    onSelect: (vin) => (location.hash = `#/vehicle/${vin}`),
  });
  const { vehicles } = await api("/api/vehicles");
  if (!scope.alive) return;
  mergeVehicles(vehicles);
  // One row per car, kept across renders and rewritten only when its content changed: a live
  // fleet re-renders several times a second, and a row that is replaced each time loses the
  // pointer over it (and the click a test driver aims at it).
  const rows = new Map(); // vin -> { row, cells }: the element and the cells last written into it
  const render = () => {
    const list = [...state.vehicles.values()].sort((a, b) => a.vin.localeCompare(b.vin));
    const gap = state.config.gap_alert_s;
    const ages = new Map(list.map((v) => [v.vin, lastReadingAge(v)]));
    const body = $("#fleet tbody");
    let previous = null;
    for (const v of list) {
      const s = v.state || {};
      const age = ages.get(v.vin);
      const cells = `
          <td><strong>${escapeHtml(v.model || "Vehicle")}</strong><br><span class="muted">${escapeHtml(v.vin)}</span></td>
          <td data-field="soc">${socBar(s.soc)}</td>
          <td class="num">${fmt.num(s.range_km, 0, " km")}</td>
          <td>${lockPill(s.locked)}</td>
          <td>${s.charging ? '<span class="pill charging">charging</span>' : "—"}</td>
          <td class="num">${fmt.num(s.speed_kmh, 0, " km/h")}</td>
          <td data-field="age" class="${age > gap ? "stale" : ""}">${fmt.age(age)}</td>`;
      let entry = rows.get(v.vin);
      if (!entry) {
        entry = { row: document.createElement("tr"), cells: null };
        entry.row.className = "clickable";
        entry.row.dataset.vin = v.vin;
        rows.set(v.vin, entry);
      }
      const row = entry.row;
      if (entry.cells !== cells) {
        row.innerHTML = cells;
        entry.cells = cells;
      }
      const expected = previous ? previous.nextSibling : body.firstChild;
      if (row !== expected) body.insertBefore(row, expected); // sorted; a moved row stays the same element
      previous = row;
    }
    for (const [vin, { row }] of rows) {
      if (!ages.has(vin)) { // no longer listed
        row.remove();
        rows.delete(vin);
      }
    }
    const online = list.filter((v) => ages.get(v.vin) <= gap).length;
    const charging = list.filter((v) => v.state?.charging).length;
    const moving = list.filter((v) => (v.state?.speed_kmh || 0) > 3).length;
    $("#fleet-cards").innerHTML = [
      ["Vehicles", list.length, ""],
      ["Reporting", `${online} / ${list.length}`, online < list.length ? "bad" : "ok"],
      ["Charging", charging, ""],
      ["Moving", moving, ""],
    ]
      .map(([label, value, cls]) => card(label, value, cls))
      .join("");
    map.setPoints(
      list.map((v) => ({
        id: v.vin,
        lat: v.state?.latitude,
        lon: v.state?.longitude,
        label: `${v.model || v.vin} ${v.state?.soc != null ? Math.round(v.state.soc) + " %" : ""}`,
        color: ages.get(v.vin) > gap ? "#cf222e" : v.state?.charging ? "#8250df" : "#1f6feb",
      })),
    );
  };
  $("#fleet tbody").addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-vin]");
    if (row) location.hash = `#/vehicle/${row.dataset.vin}`;
  });
  render();
  performance.mark("fleet-rendered"); // what bench.console measures: navigation to a usable fleet view
  let pending = false;
  scope.onLive(() => {
    if (pending) return; // a burst of changes renders once
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (scope.alive) render();
    });
  });
  scope.every(5000, render); // ages move on even when nothing changes
}

async function vehicleView(root, vin, scope) {
  root.innerHTML = `
    <p><a href="#/fleet">← Fleet</a></p>
    <h1 id="vehicle-title">${escapeHtml(vin)}</h1>
    <div class="grid two">
      <section class="panel"><h2>Live state</h2><dl class="kv" id="live-state"></dl></section>
      <section class="panel"><h2>Commands</h2>
        <div class="commands">${COMMANDS.map(
          ([name, label], i) => `<button data-command="${name}" data-index="${i}">${label}</button>`,
        ).join("")}</div>
        <ul class="lifecycle" id="lifecycle"></ul>
      </section>
    </div>
    <section class="panel">
      <div class="toolbar"><h2 style="margin:0 1rem 0 0">History</h2>${Object.keys(WINDOWS)
        .map((w) => `<button data-window="${w}">${w}</button>`)
        .join("")}<span class="muted" id="chart-note"></span></div>
      <div class="charts" id="charts"></div>
    </section>
    <div class="grid two">
      <section class="panel scroll"><h2>Drives</h2>
        <table id="drives"><thead><tr><th>Start</th><th>Duration</th><th>Distance</th><th>SoC</th><th>Energy</th>
          <th>Efficiency</th><th>Avg / max speed</th></tr></thead><tbody></tbody></table>
      </section>
      <section class="panel"><h2>Map</h2><div id="vehicle-map"></div><p class="muted" id="map-note">Click a drive to draw its path.</p></section>
    </div>
    <section class="panel scroll"><h2>Charging sessions</h2>
      <table id="charges"><thead><tr><th>Start</th><th>Duration</th><th>SoC</th><th>Energy added</th><th>Avg / peak power</th>
        <th>Type</th><th>Cost</th></tr></thead><tbody></tbody></table>
    </section>`;
  const map = new SvgMap($("#vehicle-map"), { tileUrl: state.config.tile_url, attribution: state.config.tile_attribution });
  const vehicle = await api(`/api/vehicles/${encodeURIComponent(vin)}`);
  if (!scope.alive) return;
  mergeVehicles([vehicle]);
  $("#vehicle-title").textContent = `${vehicle.model || "Vehicle"} · ${vin}`;
  const flat = {};
  const flatten = (node, prefix) => {
    for (const [k, v] of Object.entries(node || {})) {
      const key = prefix ? `${prefix}/${k}` : k;
      if (v && typeof v === "object" && !Array.isArray(v) && !("latitude" in v)) flatten(v, key);
      else flat[key] = v;
    }
  };
  flatten(vehicle.state?.values, "");
  const renderLive = () => {
    const v = state.vehicles.get(vin);
    const s = v.state || {};
    const rows = [
      ["SoC", socBar(s.soc)],
      ["Range", fmt.num(s.range_km, 0, " km")],
      ["Doors", lockPill(s.locked)],
      ["Charging", s.charging ? '<span class="pill charging">charging</span>' : "no"],
      ["Speed", fmt.num(s.speed_kmh, 0, " km/h")],
      ["Power", fmt.num(flat["drivetrain/power"], 1, " kW")],
      ["Inside / outside", `${fmt.num(flat["climate/interiorTemperature"], 0, " °C")} / ${fmt.num(flat["climate/exteriorTemperature"], 0, " °C")}`],
      ["Climate", escapeHtml(flat["climate/remoteClimateState"] ?? "—")],
      ["Odometer", fmt.num(flat["drivetrain/mileage"], 1, " km")],
      ["Position", s.latitude != null ? `${fmt.num(s.latitude, 5)}, ${fmt.num(s.longitude, 5)}` : "—"],
      ["Last reading", `<span class="${lastReadingAge(v) > state.config.gap_alert_s ? "stale" : ""}">${fmt.age(lastReadingAge(v))}</span>`],
    ];
    $("#live-state").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd data-field="${k}">${v}</dd>`).join("");
    if (!map.path.length) map.setPoints([{ id: vin, lat: s.latitude, lon: s.longitude, label: v.model || vin }]);
  };
  renderLive();
  scope.onLive((message) => {
    if (message.type === "telemetry" && message.vin === vin) {
      flat[message.key] = message.value;
      renderLive();
    }
  });
  scope.every(5000, renderLive);

  $(".commands").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-command]");
    if (button) sendCommand(vin, ...COMMANDS[Number(button.dataset.index)]);
  });

  const charts = new Charts($("#charts"), $("#chart-note"));
  const pickWindow = async (name) => {
    for (const b of document.querySelectorAll("[data-window]")) b.classList.toggle("active", b.dataset.window === name);
    await charts.load(vin, WINDOWS[name]).catch(report);
  };
  $(".toolbar").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-window]");
    if (button) pickWindow(button.dataset.window);
  });
  await pickWindow("6 h");

  const drives = await api(`/api/vehicles/${encodeURIComponent(vin)}/drives?limit=50`);
  if (!scope.alive) return;
  $("#drives tbody").innerHTML =
    drives.items
      .map(
        (d) => `<tr class="clickable" data-drive="${d.id}">
          <td>${fmt.time(d.start_ts)}${d.in_progress ? ' <span class="pill sent">driving</span>' : ""}</td>
          <td>${fmt.duration(d.duration_s)}</td><td class="num">${fmt.num(d.distance_km, 1, " km")}</td>
          <td>${fmt.num(d.start_soc, 1)} → ${fmt.num(d.end_soc, 1)} %</td><td class="num">${fmt.num(d.energy_used_kwh, 2, " kWh")}</td>
          <td class="num">${fmt.num(d.efficiency_wh_per_km, 0, " Wh/km")}</td>
          <td class="num">${fmt.num(d.avg_speed_kmh, 0)} / ${fmt.num(d.max_speed_kmh, 0, " km/h")}</td></tr>`,
      )
      .join("") || '<tr><td colspan="7" class="muted">No drives yet.</td></tr>';
  $("#drives tbody").addEventListener("click", async (event) => {
    const row = event.target.closest("tr[data-drive]");
    if (!row) return;
    document.querySelectorAll("#drives tr.selected").forEach((r) => r.classList.remove("selected"));
    row.classList.add("selected");
    try {
      const drive = await api(`/api/drives/${row.dataset.drive}`);
      map.setPoints([]);
      map.setPath(drive.path.map((p) => [p.latitude, p.longitude]));
      $("#map-note").textContent = `Drive of ${fmt.time(drive.start_ts)}: ${fmt.num(drive.distance_km, 1, " km")} in ${fmt.duration(drive.duration_s)}, ${drive.path.length} points.`;
    } catch (problem) {
      report(problem);
    }
  });

  const charges = await api(`/api/vehicles/${encodeURIComponent(vin)}/charges?limit=50`);
  if (!scope.alive) return;
  $("#charges tbody").innerHTML =
    charges.items
      .map(
        (c) => `<tr data-charge="${c.id}">
          <td>${fmt.time(c.start_ts)}${c.in_progress ? ' <span class="pill charging">charging</span>' : ""}</td>
          <td>${fmt.duration(c.duration_s)}</td><td>${fmt.num(c.start_soc, 1)} → ${fmt.num(c.end_soc, 1)} %</td>
          <td class="num">${fmt.num(c.energy_added_kwh, 2, " kWh")}</td>
          <td class="num">${fmt.num(c.avg_power_kw, 1)} / ${fmt.num(c.peak_power_kw, 1, " kW")}</td>
          <td>${c.charger_type || "—"}</td><td class="num">${c.cost != null ? `${c.cost.toFixed(2)} ${escapeHtml(c.currency)}` : "—"}</td></tr>`,
      )
      .join("") || '<tr><td colspan="7" class="muted">No charging sessions yet.</td></tr>';
}

async function sendCommand(vin, command, label, args) {
  const item = document.createElement("li");
  item.dataset.command = command;
  const started = performance.now();
  const show = (status, detail = "") => {
    const seen = item.dataset.seen ? item.dataset.seen.split(",") : [];
    if (!seen.includes(status)) seen.push(status);
    item.dataset.seen = seen.join(",");
    item.innerHTML = `<strong>${escapeHtml(label)}</strong> ${seen
      .map((s) => `<span class="pill ${s}">${s}</span>`)
      .join(" → ")} <span class="muted">${((performance.now() - started) / 1000).toFixed(1)} s</span> ${escapeHtml(detail)}`;
    const pills = item.querySelectorAll(".pill");
    pills[pills.length - 1].dataset.testid = "command-status";
  };
  $("#lifecycle").prepend(item);
  show("queued");
  try {
    let record = await api(`/api/vehicles/${encodeURIComponent(vin)}/commands/${command}?wait=0`, { method: "POST", body: args });
    show(record.status, record.error || "");
    while (!TERMINAL.has(record.status)) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      record = await api(`/api/commands/${record.id}`);
      show(record.status, record.error || "");
    }
  } catch (problem) {
    show("failed", problem instanceof ApiProblem ? explain(problem) : String(problem));
    if (problem instanceof ApiProblem && problem.status === 401) report(problem);
  }
}

class Charts {
  constructor(root, note) {
    this.root = root;
    this.note = note;
    this.plots = [];
  }

  async load(vin, seconds) {
    const since = new Date(Date.now() - seconds * 1000).toISOString();
    const rows = [];
    let path = `/api/vehicles/${encodeURIComponent(vin)}/telemetry?from=${encodeURIComponent(since)}&limit=1000`;
    for (let page = 0; page < 10 && path; page++) {
      const body = await api(path);
      rows.push(...body.items);
      path = body.next_cursor ? `${path.split("&cursor=")[0]}&cursor=${body.next_cursor}` : null;
    }
    rows.reverse(); // oldest first
    this.note.textContent = `${rows.length} readings`;
    const x = rows.map((r) => Date.parse(r.ts) / 1000);
    const col = (name) => rows.map((r) => r[name] ?? null);
    this.plots.forEach((p) => p.destroy());
    this.root.replaceChildren();
    const specs = [
      ["SoC and range", [["SoC %", col("soc"), "#1a7f37", "%"], ["range km", col("range_km"), "#1f6feb", "km"]]],
      ["Speed", [["km/h", col("speed_kmh"), "#1f6feb", "km/h"]]],
      ["Power (kW; negative while charging)", [["kW", col("power_kw"), "#8250df", "kW"]]],
      ["Temperatures", [["inside °C", col("interior_temp_c"), "#cf222e", "°C"], ["outside °C", col("exterior_temp_c"), "#0969da", "°C"]]],
    ];
    this.plots = specs.map(([title, series]) => this.plot(title, x, series));
  }

  plot(title, x, series) {
    const box = document.createElement("div");
    box.className = "chart";
    box.innerHTML = `<h3>${title}</h3>`;
    this.root.appendChild(box);
    const units = [...new Set(series.map((s) => s[3]))];
    const options = {
      width: Math.max(320, box.clientWidth || 440),
      height: 200,
      series: [{}, ...series.map(([label, , stroke, unit]) => ({ label, stroke, width: 1.5, scale: unit, spanGaps: true }))],
      axes: [{}, ...units.map((unit, i) => ({ scale: unit, side: i ? 1 : 3, label: unit, grid: { show: i === 0 } }))],
      scales: Object.fromEntries(units.map((u) => [u, { auto: true }])),
      legend: { live: true },
    };
    return new uPlot(options, [x, ...series.map((s) => s[1])], box);
  }
}

async function opsView(root, scope) {
  root.innerHTML = `
    <h1>Operations</h1>
    <div class="cards" id="health"></div>
    <div class="cards" id="ops-metrics"></div>
    <div class="grid two">
      <section class="panel scroll"><h2>Command audit</h2>
        <table id="audit"><thead><tr><th>When</th><th>Vehicle</th><th>Command</th><th>Status</th><th>Who</th><th>Error</th></tr></thead><tbody></tbody></table>
      </section>
      <section class="panel scroll"><h2>Alerts</h2><div id="alerts"></div></section>
    </div>
    <section class="panel scroll"><h2>Dead letters <span class="muted" id="dead-total"></span></h2>
      <table id="dead-letters"><thead><tr><th>Received</th><th>Topic</th><th>Reason</th><th>Payload</th></tr></thead><tbody></tbody></table>
    </section>
    <section class="panel scroll"><h2>SAIC accounts</h2>
      <table id="accounts"><thead><tr><th>Account</th><th>State</th><th>Since</th><th>Reason</th></tr></thead><tbody></tbody></table>
    </section>
    <div class="grid two">
      <section class="panel scroll"><h2>Devices <span class="muted" id="devices-total"></span></h2>
        <table id="devices"><thead><tr><th>Device</th><th>State</th><th>Last seen</th><th>Firmware</th><th>Config</th></tr></thead><tbody></tbody></table>
      </section>
      <section class="panel scroll"><h2>OTA rollouts</h2>
        <table id="rollouts"><thead><tr><th>Rollout</th><th>State</th><th>Stage</th><th>Progress</th></tr></thead><tbody></tbody></table>
      </section>
    </div>`;
  const refresh = async () => {
    const health = await fetch("/api/health", { cache: "no-store" }).then((r) => r.json()).catch(() => null);
    if (!scope.alive) return;
    $("#health").innerHTML = health
      ? Object.entries(health.components)
          .map(
            ([name, c]) =>
              card(escapeHtml(name), escapeHtml(c.status), c.status === "ok" ? "ok" : "bad", {
                attrs: `data-component="${escapeHtml(name)}"`,
                note: c.since ? `since ${fmt.short(c.since)}` : escapeHtml(c.error || ""),
              }),
          )
          .join("")
      : card(null, "API unreachable", "bad");
    try {
      const [metricsText, audit, alerts, dead, accounts, devices, rollouts] = await Promise.all([
        api("/metrics"),
        api("/api/ops/commands?limit=30"),
        api("/api/ops/alerts"),
        api("/api/ops/dead-letters?limit=30"),
        api("/api/accounts"),
        api("/api/devices?limit=50"),
        api("/admin/rollouts"),
      ]);
      if (!scope.alive) return;
      renderMetrics(parseMetrics(metricsText));
      $("#audit tbody").innerHTML =
        audit.commands
          .map(
            (c) => `<tr><td>${fmt.time(c.created_at)}</td><td>${escapeHtml(c.vin)}</td><td>${escapeHtml(c.command)}</td>
              <td><span class="pill ${c.status}">${c.status}</span></td><td>${escapeHtml(c.requested_by)}</td>
              <td class="muted">${escapeHtml(c.error || "")}</td></tr>`,
          )
          .join("") || '<tr><td colspan="6" class="muted">No commands yet.</td></tr>';
      $("#alerts").innerHTML =
        (alerts.active.length
          ? `<p><strong>Open:</strong> ${alerts.active.map((a) => `<span class="pill firing">${escapeHtml(a.alert)}</span>`).join(" ")}</p>`
          : '<p class="muted">No open alerts.</p>') +
        `<table><tbody>${alerts.recent
          .slice(0, 20)
          .map(
            (e) => `<tr><td>${fmt.time(e.at)}</td><td><span class="pill ${e.state}">${e.state}</span></td>
              <td>${escapeHtml(e.component)}</td><td>${escapeHtml(e.message)}</td></tr>`,
          )
          .join("")}</tbody></table>`;
      $("#accounts tbody").innerHTML =
        accounts.accounts
          .map(
            (a) => `<tr><td>${escapeHtml(a.username)}</td><td><span class="pill ${a.status}">${a.status}</span></td>
              <td>${fmt.time(a.updated_at)}</td><td class="muted">${escapeHtml(a.status_reason || "")}</td></tr>`,
          )
          .join("") || '<tr><td colspan="4" class="muted">Only the account from the environment.</td></tr>';
      renderDevices(devices, rollouts);
      $("#dead-total").textContent = `(${dead.total} in all)`;
      $("#dead-letters tbody").innerHTML =
        dead.dead_letters
          .map(
            (d) => `<tr><td>${fmt.time(d.received_at)}</td><td>${escapeHtml(d.topic)}</td><td>${escapeHtml(d.reason)}</td>
              <td class="muted">${escapeHtml(d.payload_start)}${d.payload_bytes > 200 ? "…" : ""}</td></tr>`,
          )
          .join("") || '<tr><td colspan="4" class="muted">Nothing set aside.</td></tr>';
      notify("");
    } catch (problem) {
      if (problem instanceof ApiProblem && problem.status === 403) {
        notify("The operations data needs an API key: a user's session sees only the health above.", "info");
      } else report(problem);
    }
  };
  await refresh();
  scope.every(5000, refresh);
}

function renderDevices(devices, rollouts) {
  $("#devices-total").textContent = `(${devices.online} of ${devices.total} online)`;
  $("#devices tbody").innerHTML =
    devices.devices
      .map((d) => {
        const state = d.revoked_at ? "revoked" : d.online ? "online" : "offline";
        return `<tr data-device="${escapeHtml(d.device_id)}"><td>${escapeHtml(d.name || d.device_id.slice(0, 12))}
          <div class="muted">${escapeHtml(d.mac)}</div></td>
          <td><span class="pill ${state === "online" ? "ok" : "bad"}">${state}</span></td>
          <td>${d.last_seen ? fmt.time(d.last_seen) : "—"}</td><td>${escapeHtml(d.firmware_version || "—")}</td>
          <td>v${d.config_version}</td></tr>`;
      })
      .join("") || '<tr><td colspan="5" class="muted">No devices enrolled.</td></tr>';
  $("#rollouts tbody").innerHTML =
    rollouts.rollouts
      .slice(0, 20)
      .map(
        (r) => `<tr data-rollout="${r.id}"><td>#${r.id} <span class="muted">firmware ${escapeHtml(r.firmware_version)}</span></td>
          <td><span class="pill ${r.status === "paused" || r.status === "aborted" ? "bad" : "ok"}">${r.status}</span>
          <div class="muted">${escapeHtml(r.status_reason || "")}</div></td>
          <td>${r.stage + 1} of ${r.stages.length} (${r.stages[r.stage]} %)</td>
          <td>${Object.entries(r.progress).map(([k, n]) => `${n} ${escapeHtml(k)}`).join(", ") || "—"}</td></tr>`,
      )
      .join("") || '<tr><td colspan="4" class="muted">No rollouts.</td></tr>';
}

function parseMetrics(text) {
  const values = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (match) values[match[1] + (match[2] || "")] = Number(match[3]);
  }
  return values;
}

function renderMetrics(m) {
  const sum = (prefix) => Object.entries(m).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);
  const saicUsed = Object.keys(m).some((k) => k.startsWith("saic_api_calls_total")); // not with the simulated fleet
  const cards = [
    ["Spool depth (batches)", m.ingest_spool_batches ?? "—", m.ingest_spool_batches > 0 ? "bad" : ""],
    ["Last flush", m.ingest_last_flush_seconds === undefined ? "—" : `${(m.ingest_last_flush_seconds * 1000).toFixed(0)} ms`, ""],
    ["Flushes failed", sum('ingest_flushes_total{outcome="failed"}'), sum('ingest_flushes_total{outcome="failed"}') ? "bad" : ""],
    ["Held in memory", m.ingest_held_snapshots ?? "—", ""],
    ["SAIC login", !saicUsed ? "not used" : m.saic_logged_in ? "logged in" : "logged out", saicUsed && !m.saic_logged_in ? "bad" : ""],
    ["SAIC breaker", m.saic_circuit_open === undefined ? "—" : m.saic_circuit_open ? "open" : "closed", m.saic_circuit_open ? "bad" : ""],
    ["Polls failed", sum('gateway_polls_total{outcome="failed"}'), ""],
    ["Broker clients", m.mqtt_broker_clients_connected ?? "—", ""],
  ];
  $("#ops-metrics").innerHTML = cards
    .map(([label, value, cls]) => card(label, value, cls, { attrs: `data-metric="${label}"` }))
    .join("");
}

// -- routing ----------------------------------------------------------------------------------------

function signOut(clearNotice = true) {
  sessionStorage.removeItem(CREDENTIAL);
  if (state.socket) state.socket.close();
  newScope();
  if (clearNotice) notify("");
  signInView();
}

async function route() {
  const scope = newScope();
  if (!credential()) return signInView();
  $("#nav").hidden = false;
  $("#sign-out").hidden = false;
  connectLive();
  const [, view = "fleet", arg] = location.hash.split("/");
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === view);
  const root = $("#view");
  try {
    if (view === "vehicle" && arg) await vehicleView(root, decodeURIComponent(arg), scope);
    else if (view === "ops") await opsView(root, scope);
    else await fleetView(root, scope);
  } catch (problem) {
    report(problem);
  }
}

async function start() {
  state.config = await fetch("/console/config.json").then((r) => r.json());
  $("#sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  await route();
}

start();
