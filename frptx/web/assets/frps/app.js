// frps dashboard: plain JS over frp's REST API (/api/serverinfo, /api/proxy/{type},
// /api/traffic/{name}, /api/clients). No build step, no framework.
// Every string from the server goes into the page through textContent, never innerHTML.
"use strict";

const TYPES = ["tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp"];
const REFRESH_MS = 5000;
// the proxy type tab is in the URL's fragment (#udp), so a tab can be bookmarked or linked to
function typeFromHash() {
  const t = decodeURIComponent(location.hash.slice(1)).toLowerCase();
  return TYPES.includes(t) ? t : null;
}
const state = { type: typeFromHash() || "tcp", info: null, timer: null, clientsSupported: true };

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  n = Number(n) || 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function ago(unix) {
  if (!unix) return "";
  const d = new Date(unix * 1000);
  return d.toLocaleString();
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options));
  if (!resp.ok) {
    const err = new Error(path + ": HTTP " + resp.status + " " + (await resp.text()).trim());
    err.status = resp.status;
    throw err;
  }
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

function showError(err) {
  const el = document.getElementById("error");
  if (err) { el.textContent = String(err.message || err); el.hidden = false; }
  else el.hidden = true;
}

function renderInfo(info) {
  document.getElementById("version").textContent = "v" + info.version;
  const cards = [
    ["Clients", info.clientCounts],
    ["Connections", info.curConns],
    ["Traffic in (today)", bytes(info.totalTrafficIn)],
    ["Traffic out (today)", bytes(info.totalTrafficOut)],
    ["Proxies", Object.values(info.proxyTypeCount || {}).reduce((a, b) => a + b, 0)],
  ];
  document.getElementById("totals").replaceChildren(
    ...cards.map(([label, value]) => h("div", { class: "card" },
      h("div", { class: "label" }, label), h("div", { class: "value" }, value))));
  const rows = [
    ["Bind port", info.bindPort],
    ["KCP bind port", info.kcpBindPort || "disabled"],
    ["QUIC bind port", info.quicBindPort || "disabled"],
    ["HTTP port", info.vhostHTTPPort || "disabled"],
    ["HTTPS port", info.vhostHTTPSPort || "disabled"],
    ["TCP mux HTTP CONNECT port", info.tcpmuxHTTPConnectPort || "disabled"],
    ["Subdomain host", info.subdomainHost || "-"],
    ["Max pool count", info.maxPoolCount],
    ["Max ports per client", info.maxPortsPerClient || "unlimited"],
    ["Allowed ports", info.allowPortsStr || "all"],
    ["TLS only", info.tlsForce ? "yes" : "no"],
    ["Heartbeat timeout", info.heartbeatTimeout > 0 ? info.heartbeatTimeout + " s" : "disabled"],
  ];
  document.getElementById("serverinfo").replaceChildren(
    ...rows.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v))));
}

function renderTabs(info) {
  const counts = info.proxyTypeCount || {};
  document.getElementById("tabs").replaceChildren(...TYPES.map((t) =>
    h("button", {
      type: "button", class: t === state.type ? "active" : "", "data-type": t,
      onclick: () => { state.type = t; history.replaceState(null, "", "#" + t); refresh(); },
    }, t.toUpperCase(), h("span", { class: "count" }, counts[t] || 0))));
}

function remoteOf(p) {
  const c = p.conf;
  if (!c) return "";
  if ("remotePort" in c) return ":" + c.remotePort;
  const names = (c.customDomains || []).slice();
  if (c.subdomain && state.info && state.info.subdomainHost) names.push(c.subdomain + "." + state.info.subdomainHost);
  return names.join(", ");
}

// 7 days of traffic as an inline SVG bar chart, oldest on the left, today on the right.
function sparkline(traffic) {
  const w = 140, hgt = 34, days = traffic.trafficIn.length;
  const max = Math.max(1, ...traffic.trafficIn, ...traffic.trafficOut);
  const slot = w / days, bw = Math.max(2, slot / 2 - 2);
  const svg = s("svg", { class: "spark", width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: "img" });
  svg.append(s("line", { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5 }));
  for (let i = 0; i < days; i++) {
    const day = days - 1 - i; // API: today first
    const x = i * slot + 1;
    const hin = Math.round((traffic.trafficIn[day] / max) * (hgt - 2));
    const hout = Math.round((traffic.trafficOut[day] / max) * (hgt - 2));
    const label = (day === 0 ? "today" : day + " day(s) ago") +
      ": in " + bytes(traffic.trafficIn[day]) + ", out " + bytes(traffic.trafficOut[day]);
    svg.append(s("rect", { class: "in", x, y: hgt - 1 - hin, width: bw, height: hin }, s("title", null, label)));
    svg.append(s("rect", { class: "out", x: x + bw + 1, y: hgt - 1 - hout, width: bw, height: hout }, s("title", null, label)));
  }
  return svg;
}

async function renderProxies() {
  const data = await api("/api/proxy/" + encodeURIComponent(state.type));
  const proxies = data.proxies || [];
  const tbody = document.querySelector("#proxies tbody");
  document.getElementById("no-proxies").hidden = proxies.length > 0;
  const rows = proxies.map((p) => {
    const chart = h("td", { class: "chart" });
    const client = [p.user, p.clientID].filter(Boolean).join(".");
    const row = h("tr", { "data-name": p.name },
      h("td", null, p.name),
      h("td", null, remoteOf(p)),
      h("td", null, [client, p.clientVersion ? (client ? "(v" + p.clientVersion + ")" : "v" + p.clientVersion) : ""]
        .filter(Boolean).join(" ")),
      h("td", { class: "num" }, p.curConns),
      h("td", { class: "num" }, bytes(p.todayTrafficIn)),
      h("td", { class: "num" }, bytes(p.todayTrafficOut)),
      chart,
      h("td", null, h("span", { class: "badge " + p.status }, p.status)),
      h("td", null, p.lastStartTime),
      h("td", null, p.lastCloseTime));
    const loaded = api("/api/traffic/" + encodeURIComponent(p.name))
      .then((t) => chart.replaceChildren(sparkline(t)))
      .catch(() => chart.replaceChildren(""));
    return [row, loaded];
  });
  // swap the table only when every chart is drawn: no flicker of empty charts on refresh
  await Promise.all(rows.map(([, loaded]) => loaded));
  tbody.replaceChildren(...rows.map(([row]) => row));
}

async function renderClients() {
  const panel = document.getElementById("clients-panel");
  if (!state.clientsSupported) { panel.hidden = true; return; }
  let clients;
  try {
    clients = await api("/api/clients");
  } catch (err) {
    if (err.status === 404) { state.clientsSupported = false; panel.hidden = true; return; } // older frps
    throw err;
  }
  document.getElementById("client-count").textContent =
    clients.filter((c) => c.online).length + " online / " + clients.length;
  document.querySelector("#clients tbody").replaceChildren(...clients.map((c) => h("tr", { "data-key": c.key },
    h("td", null, c.key),
    h("td", null, c.user),
    h("td", null, [c.hostname, c.os && c.arch ? "(" + c.os + "/" + c.arch + ")" : ""].filter(Boolean).join(" ")),
    h("td", null, c.version || ""),
    h("td", null, c.clientIP || ""),
    h("td", null, h("span", { class: "badge " + (c.online ? "online" : "offline") }, c.online ? "online" : "offline")),
    h("td", null, c.online ? ago(c.lastConnectedAt) : "left " + ago(c.disconnectedAt)),
    h("td", { class: "num" }, c.proxyCount === undefined ? "" : c.proxyCount),
    h("td", null, c.online ? h("button", {
      type: "button", class: "danger", title: "close this client's connection; it will log in again",
      onclick: async (ev) => {
        if (!confirm("Disconnect client " + c.key + "?")) return;
        ev.target.disabled = true;
        try { await api("/api/clients/" + encodeURIComponent(c.key), { method: "DELETE" }); }
        catch (err) { showError(err); }
        refresh();
      },
    }, "Kick") : ""))));
}

async function refresh() {
  try {
    const info = await api("/api/serverinfo");
    state.info = info;
    renderInfo(info);
    renderTabs(info);
    await Promise.all([renderProxies(), renderClients()]);
    showError(null);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    showError(err);
  }
}

function schedule() {
  clearInterval(state.timer);
  if (document.getElementById("auto").checked) state.timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", () => {
  const t = typeFromHash();
  if (t && t !== state.type) { state.type = t; refresh(); }
});
document.getElementById("refresh").addEventListener("click", refresh);
document.getElementById("auto").addEventListener("change", schedule);
document.getElementById("prune").addEventListener("click", async () => {
  try { await api("/api/proxies?status=offline", { method: "DELETE" }); } catch (err) { showError(err); }
  refresh();
});
refresh();
schedule();
