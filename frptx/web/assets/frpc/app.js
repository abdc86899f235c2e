// frpc admin page: plain JS over frp's admin API (/api/status, /api/config, /api/reload).
// Every string from frpc goes into the page through textContent, never innerHTML.
"use strict";

const REFRESH_MS = 5000;
let timer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") el.className = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function call(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options));
  const text = await resp.text();
  if (!resp.ok) throw new Error(text.trim() || path + ": HTTP " + resp.status);
  return text;
}

function showError(err) {
  const el = document.getElementById("error");
  if (err) { el.textContent = String(err.message || err); el.hidden = false; }
  else el.hidden = true;
}

function badgeClass(status) {
  if (status === "running") return "running";
  if (status === "start error" || status === "check failed" || status === "closed") return "error";
  return "pending";
}

async function refreshStatus() {
  try {
    const grouped = JSON.parse(await call("/api/status"));
    const all = Object.keys(grouped).sort().flatMap((t) => grouped[t]);
    const running = all.filter((p) => p.status === "running").length;
    const cards = [["Proxies", all.length], ["Running", running], ["Not running", all.length - running]];
    document.getElementById("totals").replaceChildren(...cards.map(([l, v]) =>
      h("div", { class: "card" }, h("div", { class: "label" }, l), h("div", { class: "value" }, v))));
    document.getElementById("no-proxies").hidden = all.length > 0;
    document.querySelector("#status tbody").replaceChildren(...all.map((p) => h("tr", { "data-name": p.name },
      h("td", null, p.name), h("td", null, p.type), h("td", null, p.local_addr), h("td", null, p.plugin),
      // frp repeats each http URL; show each once
      h("td", { class: "remote" }, [...new Set(p.remote_addr.split(",").filter(Boolean))].join(", ")),
      h("td", null, h("span", { class: "badge " + badgeClass(p.status) }, p.status)),
      h("td", { class: "err" }, p.err))));
    showError(null);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    showError(err);
  }
}

function message(text, ok) {
  const el = document.getElementById("msg");
  el.textContent = text;
  el.className = "msg " + (ok ? "ok" : "bad");
}

async function loadConfig() {
  try {
    document.getElementById("config").value = await call("/api/config");
    message("", true);
  } catch (err) {
    message("could not read the configuration: " + err.message, false);
  }
}

async function saveConfig() {
  const button = document.getElementById("save");
  button.disabled = true;
  try {
    await call("/api/config", { method: "PUT", body: document.getElementById("config").value });
    const strict = document.getElementById("strict").checked;
    await call("/api/reload?strictConfig=" + strict);
    message("saved and reloaded", true);
  } catch (err) {
    message(err.message, false);
  } finally {
    button.disabled = false;
    refreshStatus();
  }
}

function schedule() {
  clearInterval(timer);
  if (document.getElementById("auto").checked) timer = setInterval(refreshStatus, REFRESH_MS);
}

document.getElementById("refresh").addEventListener("click", refreshStatus);
document.getElementById("auto").addEventListener("change", schedule);
document.getElementById("load").addEventListener("click", loadConfig);
document.getElementById("save").addEventListener("click", saveConfig);
refreshStatus();
loadConfig();
schedule();
