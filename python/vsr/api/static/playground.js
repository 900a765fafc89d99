// vsr routing playground: sends a chat request to POST /api/v1/route and shows the result.
// Plain JavaScript, no dependencies; every value from the server is inserted as text.
"use strict";

const $ = (id) => document.getElementById(id);
let mode = "prompt";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.setAttribute("style", value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function headers() {
  const result = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) result.Authorization = "Bearer " + token;
  return result;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (payload.error && payload.error.message) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return payload;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setMode(next) {
  mode = next;
  for (const tab of document.querySelectorAll(".tab")) {
    tab.classList.toggle("active", tab.dataset.mode === next);
  }
  $("prompt").hidden = next !== "prompt";
  $("chat").hidden = next !== "chat";
  if (next === "chat" && !$("chat").value.trim()) {
    $("chat").value = JSON.stringify(requestBody("prompt"), null, 2);
  }
}

function requestBody(from) {
  if (from === "chat") {
    const body = JSON.parse($("chat").value);
    if (body.model === undefined) body.model = $("model").value;
    return body;
  }
  const text = $("prompt").value;
  return { model: $("model").value, messages: [{ role: "user", content: text }] };
}

function bar(signal) {
  const score = Math.max(0, Math.min(1, Number(signal.score)));
  const children = [
    el("div", { class: "fill" + (signal.matched ? " matched" : ""), style: `width:${score * 100}%` }),
  ];
  if (signal.threshold !== null && signal.threshold !== undefined) {
    const at = Math.max(0, Math.min(1, Number(signal.threshold)));
    children.push(el("div", { class: "threshold", style: `left:${at * 100}%`,
      title: `threshold ${signal.threshold}` }));
  }
  const threshold = signal.threshold === null || signal.threshold === undefined
    ? "" : ` / ${Number(signal.threshold).toFixed(3)}`;
  return el("div", { class: "bar-cell" }, el("div", { class: "bar" }, ...children),
    el("span", { class: "num" }, score.toFixed(3) + threshold));
}

function renderSignals(signals) {
  const body = $("signals").querySelector("tbody");
  body.replaceChildren();
  for (const signal of signals) {
    const label = signal.entity_types && signal.entity_types.length
      ? signal.entity_types.join(", ") : (signal.label || "");
    body.append(el("tr", { "data-signal": `${signal.type}:${signal.name}` },
      el("td", { class: "name" }, `${signal.type}:${signal.name}`),
      el("td", {}, label),
      el("td", {}, bar(signal)),
      el("td", {}, el("span", { class: "badge" + (signal.matched ? " yes" : "") },
        signal.matched ? "matched" : "no"))));
  }
}

function ruleItem(node) {
  const mark = el("span", { class: node.matched ? "yes" : "no" }, node.matched ? "✓ " : "✗ ");
  if (node.operator) {
    const list = el("ul", {}, ...node.conditions.map(ruleItem));
    return el("li", {}, mark, node.operator, list);
  }
  return el("li", {}, mark, `${node.type}:${node.name}`);
}

function renderRules(result) {
  const target = $("rules");
  target.replaceChildren();
  if (!result.decision) {
    target.append(el("p", { class: "muted" }, "No decision matched: the default model is used."));
  } else if (!result.rules) {
    target.append(el("p", {}, `${result.decision}: no rules (catch-all).`));
  } else {
    target.append(el("p", {}, `Decision ${result.decision}:`), el("ul", {}, ruleItem(result.rules)));
  }
}

function renderEdits(sent, result) {
  const target = $("edits");
  target.replaceChildren();
  const edited = result.body || {};
  const keys = new Set([...Object.keys(sent), ...Object.keys(edited)]);
  const changes = [];
  for (const key of keys) {
    const before = JSON.stringify(sent[key]);
    const after = JSON.stringify(edited[key]);
    if (before !== after) changes.push([key, before, after]);
  }
  if (result.blocked) {
    target.append(el("p", { class: "muted" }, "Blocked: vsr answers the client; nothing is forwarded."));
  } else if (!result.body_changed || !changes.length) {
    target.append(el("p", { class: "muted" }, "The body is forwarded unchanged."));
  }
  for (const [key, before, after] of changes) {
    target.append(el("div", { class: "edit" }, el("span", { class: "key" }, key), ": ",
      before === undefined ? "(absent)" : before, " → ", after === undefined ? "(removed)" : after));
  }
  target.append(el("h2", {}, "Headers"), el("pre", {}, JSON.stringify(result.headers, null, 2)));
}

function render(sent, result, roundTripMs) {
  $("result").hidden = false;
  $("result-decision").textContent = result.decision || "(none)";
  $("result-model").textContent = result.blocked ? "(blocked)" : result.served_model;
  $("result-category").textContent = result.category || "(none)";
  const reasoning = result.reasoning || {};
  $("result-reasoning").textContent = reasoning.enabled
    ? "on" + (reasoning.effort ? ` (${reasoning.effort})` : "") : "off";
  $("result-latency").textContent =
    `${Number(result.elapsed_ms).toFixed(1)} ms (${roundTripMs.toFixed(0)} ms round trip)`;
  const block = $("result-block");
  block.hidden = !result.blocked;
  block.textContent = result.blocked
    ? `Blocked (${result.blocked.kind}, signal ${result.blocked.signal}, score `
      + `${Number(result.blocked.score).toFixed(3)}): ${result.blocked.detail}` : "";
  renderSignals(result.signals || []);
  renderRules(result);
  renderEdits(sent, result);
}

async function submit(event) {
  event.preventDefault();
  showError("");
  let body;
  try {
    body = requestBody(mode);
  } catch (error) {
    showError("The chat request is not valid JSON: " + error.message);
    return;
  }
  const sent = JSON.parse(JSON.stringify(body));
  const started = performance.now();
  $("route-button").disabled = true;
  try {
    const result = await call("POST", "/api/v1/route", body);
    render(sent, result, performance.now() - started);
  } catch (error) {
    showError(error.message);
  } finally {
    $("route-button").disabled = false;
  }
}

async function loadServerInfo() {
  try {
    const ready = await fetch("/ready").then((r) => r.json());
    $("status").textContent = ready.status === "ready"
      ? `ready · config generation ${ready.generation}` : "loading models…";
    const models = await call("GET", "/v1/models");
    const select = $("model");
    select.replaceChildren(...models.data.map((m) => el("option", { value: m.id }, m.id)));
    const config = await call("GET", "/info/config");
    $("config-json").textContent = JSON.stringify(config, null, 2);
    const info = await call("GET", "/info/models");
    $("models-info").replaceChildren(el("ul", {}, ...info.models.map((m) =>
      el("li", {}, `${m.name} (${m.type}): ${m.metadata.model}/${m.metadata.head}`,
        m.loaded ? "" : " — not loaded"))));
  } catch (error) {
    $("status").textContent = "server info unavailable: " + error.message;
  }
}

$("token").value = sessionStorage.getItem("vsr-token") || "";
$("token").addEventListener("change", () => {
  sessionStorage.setItem("vsr-token", $("token").value.trim());
  loadServerInfo();
});
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => setMode(tab.dataset.mode));
}
$("route-form").addEventListener("submit", submit);
loadServerInfo();
