// The operator console: a support or operator token, then a player's live
// inventories (through the browser SDK), their history, a revert with a
// confirmation that shows exactly what will change, an item's custody and
// the audit log. Everything goes through the node's HTTP API and WebSocket.

import init, { InventoryClient } from "/console/pkg/sdk_wasm.js";

await init();

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
let token = null;
let client = null;
let historyBefore = null;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(answer.message ?? `HTTP ${response.status}`), { code: answer.code ?? "http" });
  return answer;
}

const deltas = (list) => list.map((d) => `${d.change > 0 ? "+" : ""}${d.change} ${d.item}`).join(", ");

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("signin-error").textContent = "";
  let me;
  try {
    me = await api("GET", "/v1/console/me");
  } catch (error) {
    $("signin-error").textContent = `${error.code}: ${error.message}`;
    return;
  }
  const operator = me.role === "operator";
  document.body.dataset.role = me.role;
  $("whoami").textContent = `${me.name} (${me.role})`;
  $("signin").hidden = true;
  $("player").hidden = false;
  $("audit-section").hidden = !operator;
  if (operator) loadAudit();
});

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("search").value.trim();
  if (client) {
    client.close();
    client.free();
    client = null;
  }
  $("inventories").replaceChildren();
  try {
    const { token: session } = await api("POST", "/v1/console/sessions", { user });
    client = new InventoryClient(wsUrl, session, { descriptorUrl: "same-origin" });
    client.onConnection((state) => ($("connection").textContent = `live: ${state.state}`));
    client.onChange(() => renderInventories());
    await client.connect();
    renderInventories();
  } catch (error) {
    $("connection").textContent = `${error.code ?? "error"}: ${error.message}`;
  }
  const owners = [`a:${user}`, ...(client?.items() ?? []).map((o) => o.owner).filter((o) => o !== `a:${user}`)];
  $("history-owner").replaceChildren(...owners.map((owner) => new Option(owner, owner)));
  $("history-section").hidden = false;
  historyBefore = null;
  loadHistory(true);
});

function renderInventories() {
  const owners = client.items();
  $("inventories").replaceChildren(
    ...owners.map((owner) => {
      const box = document.createElement("div");
      box.className = "owner";
      box.dataset.owner = owner.owner;
      const title = document.createElement("h3");
      title.textContent = `${owner.owner} v${owner.version}`;
      const list = document.createElement("ul");
      for (const stack of owner.items) {
        const item = document.createElement("li");
        item.dataset.item = stack.item;
        item.dataset.qty = String(stack.qty);
        item.textContent = `${stack.descriptor?.name ?? stack.item} × ${stack.qty}`;
        list.append(item);
      }
      box.append(title, list);
      return box;
    }),
  );
}

$("history-owner").addEventListener("change", () => {
  historyBefore = null;
  loadHistory(true);
});
$("older").addEventListener("click", () => loadHistory(false));

async function loadHistory(fresh) {
  const owner = $("history-owner").value;
  $("history-error").textContent = "";
  const query = historyBefore ? `?limit=20&before=${historyBefore}` : "?limit=20";
  let page;
  try {
    page = await api("GET", `/v1/owners/${encodeURIComponent(owner)}/history${query}`);
  } catch (error) {
    $("history-error").textContent = `${error.code}: ${error.message}`;
    return;
  }
  if (fresh) $("history").replaceChildren();
  for (const entry of page.entries) {
    const row = document.createElement("tr");
    row.dataset.change = entry.change_id;
    row.dataset.kind = entry.kind;
    cell(row, String(entry.version));
    cell(row, entry.applied_at ? new Date(entry.applied_at).toLocaleString() : "–");
    cell(row, entry.kind + (entry.reverts ? ` of ${entry.reverts.original.slice(0, 8)}` : ""));
    cell(row, deltas(entry.deltas));
    cell(row, entry.others.join(", "));
    const actions = cell(row, "");
    if (document.body.dataset.role === "operator" && (entry.kind === "adjust" || entry.kind === "trade")) {
      const button = document.createElement("button");
      button.textContent = "Revert…";
      button.className = "revert";
      button.addEventListener("click", () => confirmRevert(entry.change_id));
      actions.append(button);
    }
    $("history").append(row);
  }
  historyBefore = page.next_before;
  $("older").hidden = !historyBefore;
}

async function confirmRevert(change) {
  const request = { id: crypto.randomUUID() };
  let preview;
  try {
    preview = await api("POST", `/v1/changes/${change}/revert?dry_run=true`, request);
  } catch (error) {
    $("history-error").textContent = `${error.code}: ${error.message}`;
    return;
  }
  $("confirm-change").textContent = change;
  $("confirm-undo").replaceChildren(
    ...preview.undo.map((step) => {
      const row = document.createElement("tr");
      cell(row, step.owner);
      cell(row, `${step.change > 0 ? "+" : ""}${step.change} ${step.item}`);
      return row;
    }),
  );
  $("confirm-blocked").textContent = "";
  const dialog = $("confirm");
  dialog.showModal();
  const choice = await new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }));
  if (choice !== "ok") return;
  try {
    await api("POST", `/v1/changes/${change}/revert`, request);
  } catch (error) {
    $("history-error").textContent = `${error.code}: ${error.message}`;
    return;
  }
  historyBefore = null;
  await loadHistory(true);
  loadAudit();
}

$("custody-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const item = $("custody-item").value.trim();
  $("custody").replaceChildren();
  try {
    const custody = await api("GET", `/v1/items/${encodeURIComponent(item)}/custody`);
    for (const step of custody.steps) {
      const line = document.createElement("li");
      line.textContent = `${step.kind}: ${step.from ?? "–"} → ${step.to ?? "–"} (${step.change_id.slice(0, 8)})`;
      $("custody").append(line);
    }
  } catch (error) {
    const line = document.createElement("li");
    line.className = "error";
    line.textContent = `${error.code}: ${error.message}`;
    $("custody").append(line);
  }
});

$("audit-refresh").addEventListener("click", () => loadAudit());

async function loadAudit() {
  if ($("audit-section").hidden) return;
  $("audit-error").textContent = "";
  try {
    const page = await api("GET", "/v1/audit-log?limit=50");
    $("audit").replaceChildren(
      ...page.entries.map((action) => {
        const row = document.createElement("tr");
        for (const text of [new Date(action.at).toLocaleString(), action.actor, action.role, action.action, action.owner ?? "", action.target ?? "", action.outcome]) {
          cell(row, text);
        }
        return row;
      }),
    );
  } catch (error) {
    $("audit-error").textContent = `${error.code}: ${error.message}`;
  }
}
