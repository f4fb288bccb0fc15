// The live inventory page: logs in as a demo player, shows the inventories
// grouped by account and character with names and stats from the descriptor
// service, follows every change through the wasm SDK, and drives the node's
// demo actions (one click at a time, or auto-play). Plain DOM, no framework.
// Served by the zone node in its demo mode, with the SDK's web package under
// /pkg/.
//
// Query parameters (optional): `ws` (the node's WebSocket URL, default
// ws(s)://<this host>/v1/ws), `descriptors` (the descriptor service's base
// URL, default "same-origin").

import init, { InventoryClient, version } from "./pkg/sdk_wasm.js";

await init();

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
const descriptorUrl = params.get("descriptors") ?? "same-origin";

const main = document.getElementById("inventory");
const connection = document.getElementById("connection");
const versions = document.getElementById("version");
const latency = document.getElementById("latency");
const log = document.getElementById("log");
const autoplay = document.getElementById("autoplay");
const autoplayLeft = document.getElementById("autoplay-left");
const actionButtons = [...document.querySelectorAll("#demo button[data-action]")];
document.getElementById("sdk").textContent = `sdk v${version()}`;

let client = null;
let player = null;
let autoplayUntil = 0;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ownerTitle(owner) {
  return owner.kind === "account" ? "Bank" : owner.character[0].toUpperCase() + owner.character.slice(1);
}

function ownerLabel(id) {
  const owner = client?.items().find((o) => o.owner === id);
  return owner ? ownerTitle(owner) : id;
}

// The stats line: every attribute but rarity (shown as a tag) and quality
// (part of a crafted item's name), then who crafted it.
function stats(descriptor) {
  if (!descriptor) return "";
  const parts = Object.entries(descriptor.attributes ?? {})
    .filter(([key]) => key !== "rarity" && key !== "quality")
    .map(([key, value]) => `${key.replaceAll("_", " ")} ${value}`);
  if (descriptor.kind === "crafted" && descriptor.craftedBy) parts.push(`crafted by ${descriptor.craftedBy}`);
  return parts.join(" · ");
}

function tag(descriptor) {
  if (descriptor?.kind === "crafted") return "crafted";
  const rarity = descriptor?.attributes?.rarity;
  return typeof rarity === "string" && rarity !== "common" ? rarity : null;
}

function rowClass(stack) {
  if (stack.status === "loading") return "loading";
  if (stack.status !== "ready") return "missing";
  if (stack.descriptor?.kind === "crafted") return "crafted";
  return stack.descriptor?.attributes?.rarity === "rare" ? "rare" : "";
}

// The names of every item seen, for the log (removed items included).
const names = new Map();

function render(changed = new Set()) {
  const owners = client.items();
  for (const stack of owners.flatMap((owner) => owner.items)) {
    if (stack.descriptor) names.set(stack.item, stack.descriptor.name);
  }
  main.replaceChildren();
  if (owners.length === 0) main.append(element("p", "empty", "No inventory."));
  for (const owner of owners) {
    const section = element("section");
    section.dataset.owner = owner.owner;
    const title = element("h2", "", ownerTitle(owner));
    title.append(element("small", "", `v${owner.version}`));
    const list = element("ul");
    if (owner.items.length === 0) list.append(element("li", "empty", "empty"));
    for (const stack of owner.items) {
      const row = element("li", rowClass(stack));
      row.dataset.item = stack.item;
      if (changed.has(`${owner.owner}/${stack.item}`)) row.classList.add("changed");
      const name = element("span", "name", stack.descriptor?.name ?? stack.item);
      const label = tag(stack.descriptor);
      if (label) name.append(element("span", "tag", label));
      row.append(name, element("span", "qty", String(stack.qty)));
      const line = stats(stack.descriptor);
      if (line) row.append(element("span", "stats", line));
      list.append(row);
    }
    section.append(title, list);
    main.append(section);
  }
  versions.textContent = owners.map((owner) => `${ownerTitle(owner)} v${owner.version}`).join(", ");
  setTimeout(() => document.querySelectorAll("main li.changed").forEach((row) => row.classList.remove("changed")), 800);
}

// A log line: a time and parts, each a string or an item (`{ item, text }`)
// whose name is filled in when its descriptor arrives.
function note(parts, className) {
  const entry = element("li", className);
  entry.append(element("span", "when", new Date().toLocaleTimeString()));
  for (const part of [parts].flat()) {
    if (typeof part === "string") {
      entry.append(document.createTextNode(part));
    } else {
      const name = element("span", "", names.get(part.item) ?? "a new item");
      name.dataset.item = part.item;
      entry.append(document.createTextNode(part.text), name);
    }
  }
  log.prepend(entry);
  while (log.children.length > 40) log.lastChild.remove();
}

// One log line per owner touched by a batch of changes, e.g. "Bank: +8 Gold coins, −5 Oak wood".
function noteChanges(changes) {
  const byOwner = new Map();
  for (const change of changes) {
    let text = null;
    if (change.type === "item_added") text = `+${change.qty} `;
    if (change.type === "item_removed") text = `−${change.qty} `;
    if (change.type === "quantity_changed") {
      const delta = change.to - change.from;
      text = `${delta > 0 ? "+" : "−"}${Math.abs(delta)} `;
    }
    if (change.type === "descriptor_arrived" && change.descriptor) {
      for (const span of log.querySelectorAll(`span[data-item="${CSS.escape(change.item)}"]`)) {
        span.textContent = change.descriptor.name;
      }
    }
    if (text === null) continue;
    const parts = byOwner.get(change.owner) ?? [`${ownerLabel(change.owner)}: `];
    if (parts.length > 1) parts.push(", ");
    parts.push({ item: change.item, text });
    byOwner.set(change.owner, parts);
  }
  for (const parts of byOwner.values()) note(parts, "seen");
}

function showConnection(state) {
  connection.className = `state-${state.state}`;
  connection.textContent = state.state === "reconnecting" ? `reconnecting (attempt ${state.attempt})` : state.state;
}

setInterval(() => {
  if (client) {
    const ms = client.latencyMs;
    latency.textContent = ms === undefined ? "latency –" : `latency ${ms.toFixed(1)} ms`;
  }
  const left = Math.max(0, Math.round((autoplayUntil - Date.now()) / 1000));
  if (autoplay.checked && left === 0) autoplay.checked = false;
  autoplayLeft.textContent = autoplay.checked ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left` : "";
}, 500);

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(answer.message ?? `HTTP ${response.status}`), { code: answer.code ?? "http" });
  return answer;
}

async function login(name) {
  if (client) {
    client.close();
    client.free();
    client = null;
  }
  const { token, player: who } = await post("/demo/login", { player: name });
  player = who;
  document.getElementById("who").textContent = `playing as ${who}`;
  // The demo's tokens are short-lived: the SDK asks for a fresh one before
  // each expires (and when the node closes the session for an expired one).
  let first = token;
  const tokens = async () => {
    if (first !== null) {
      const fresh = first;
      first = null;
      return fresh;
    }
    return (await post("/demo/login", { player: who })).token;
  };
  client = new InventoryClient(wsUrl, tokens, { descriptorUrl });
  client.onConnection(showConnection);
  let live = false;
  client.onChange((changes) => {
    render(new Set(changes.map((change) => `${change.owner}/${change.item}`)));
    if (live) noteChanges(changes);
  });
  client.onError((error) => console.warn("inventory:", error.code, error.message));
  await client.connect();
  live = true;
  render();
  for (const button of actionButtons) button.disabled = false;
  autoplay.disabled = false;
  // Auto-play may still run for this player from another tab or an earlier visit.
  showAutoplay(await fetch(`/demo/autoplay/${encodeURIComponent(who)}`).then((response) => response.json()));
}

function showAutoplay(state) {
  autoplay.checked = state.running;
  autoplayUntil = Date.now() + state.remaining_secs * 1000;
}

function showLoginError(error) {
  main.replaceChildren(element("p", "empty", `Could not log in: ${error.message}`));
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  autoplay.checked = false;
  login(document.getElementById("player").value).catch(showLoginError);
});

for (const button of actionButtons) {
  button.addEventListener("click", async () => {
    const action = button.dataset.action;
    try {
      const done = await post("/demo/actions", { player, action });
      note(done.summary, "mine");
    } catch (error) {
      note(`${action}: ${error.message} (${error.code})`, "error");
    }
  });
}

autoplay.addEventListener("change", async () => {
  try {
    const state = await post("/demo/autoplay", { player, on: autoplay.checked });
    showAutoplay(state);
    note(state.running ? "Auto-play on: the node acts for you every 1–2 s" : "Auto-play off", "mine");
  } catch (error) {
    autoplay.checked = false;
    note(`auto-play: ${error.message} (${error.code})`, "error");
  }
});
