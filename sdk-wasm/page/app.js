// The live inventory page: logs in as a demo player, shows the inventories
// grouped by account and character with names and stats from the descriptor
// service, and follows every change through the wasm SDK. Plain DOM, no
// framework. Served with the SDK's web package under ./pkg/.
//
// Query parameters (optional): `ws` (the node's WebSocket URL, default
// ws(s)://<this host>/v1/ws), `descriptors` (the descriptor service's base
// URL, default this origin).

import init, { InventoryClient, version } from "./pkg/sdk_wasm.js";

await init();

const params = new URLSearchParams(location.search);
const wsUrl = params.get("ws") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
const descriptorUrl = params.get("descriptors") ?? "";

const main = document.getElementById("inventory");
const connection = document.getElementById("connection");
const latency = document.getElementById("latency");
document.getElementById("version").textContent = `sdk v${version()}`;

let client = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ownerTitle(owner) {
  return owner.kind === "account" ? "Account" : owner.character;
}

function stats(descriptor) {
  const attributes = Object.entries(descriptor?.attributes ?? {});
  return attributes.map(([key, value]) => `${key} ${value}`).join(" · ");
}

function render(changed = new Set()) {
  const owners = client.items();
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
      const row = element("li", stack.status === "ready" ? "" : stack.status === "loading" ? "loading" : "missing");
      row.dataset.item = stack.item;
      if (changed.has(`${owner.owner}/${stack.item}`)) row.classList.add("changed");
      row.append(element("span", "name", stack.descriptor?.name ?? stack.item));
      row.append(element("span", "qty", String(stack.qty)));
      const line = stats(stack.descriptor);
      if (line) row.append(element("span", "stats", line));
      list.append(row);
    }
    section.append(title, list);
    main.append(section);
  }
  setTimeout(() => document.querySelectorAll("li.changed").forEach((row) => row.classList.remove("changed")), 800);
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
}, 500);

async function login(player) {
  if (client) {
    client.close();
    client.free();
  }
  const response = await fetch("/demo/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ player }),
  });
  if (!response.ok) throw new Error(`login refused (${response.status})`);
  const { token } = await response.json();
  client = new InventoryClient(wsUrl, token, { descriptorUrl });
  client.onConnection(showConnection);
  client.onChange((changes) => render(new Set(changes.map((change) => `${change.owner}/${change.item}`))));
  client.onError((error) => console.warn("inventory:", error.code, error.message));
  await client.connect();
  render();
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  login(document.getElementById("player").value).catch((error) => {
    main.replaceChildren(element("p", "empty", `Could not log in: ${error.message}`));
  });
});
