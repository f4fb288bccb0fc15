// A scripted zone node and descriptor service for the sdk-wasm test suites
// (wasm-bindgen-test in Node and in headless Chromium). It speaks the real
// wire protocol (JSON subprotocol `inv.v1.json`) but keeps its inventories
// in memory, and offers control endpoints the tests call with fetch:
//
//   POST /test/grant {user, owner, item, qty}  applies a delta and pushes it
//   POST /test/drop  {user}                    kills the user's sockets (no close frame)
//   GET  /test/hellos?user=u                   the Hellos received (resume versions)
//   GET  /test/batches                         the descriptor batches received
//
// Any token is a user id, except `bad` (refused with `unauthorized`) and a
// JWT-shaped `<header>.<payload>.<sig>` whose payload is `{sub, exp}`: its
// user is `sub`, and like a real node the stub refuses it once expired
// (`token_expired`, close code 4001) and closes its session at `exp` unless a
// later Hello brings a fresher token.
// Each user has `a:<user>` {wood: 10} and `c:<user>:hero` {<user>-sword: 1},
// both at version 1. Descriptor ids starting `missing-` are missing, `burned-`
// burned; others get a catalog descriptor named "The <id>".
//
// Usage: node stub-node.mjs (prints `listening on http://127.0.0.1:<port>`)

import http from "node:http";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";

const users = new Map(); // user -> { owners: Map<owner, {version, items: Map}>, log: [], sockets: Set, hellos: [] }
const batches = [];

function userState(user) {
  if (!users.has(user)) {
    users.set(user, {
      owners: new Map([
        [`a:${user}`, { version: 1, items: new Map([["wood", 10]]) }],
        [`c:${user}:hero`, { version: 1, items: new Map([[`${user}-sword`, 1]]) }],
      ]),
      log: [],
      sockets: new Set(),
      hellos: [],
    });
  }
  return users.get(user);
}

function snapshot(owner, state) {
  return { owner, version: state.version, items: Object.fromEntries(state.items) };
}

/** The user a token names, and when it expires (ms, or null for never). */
function identify(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return { user: token, expiresAt: null };
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  return { user: claims.sub, expiresAt: claims.exp * 1000 };
}

const CLOSE_TOKEN_EXPIRED = 4001;

function hello(ws, message) {
  if (message.token === "bad") {
    ws.send(JSON.stringify({ type: "error", code: "unauthorized", message: "bad token" }));
    ws.close(4401, "unauthorized");
    return;
  }
  const { user, expiresAt } = identify(message.token);
  if (expiresAt !== null && expiresAt <= Date.now()) {
    ws.send(JSON.stringify({ type: "error", code: "token_expired", message: "the token has expired" }));
    ws.close(CLOSE_TOKEN_EXPIRED, "the token has expired");
    return;
  }
  clearTimeout(ws.expiry);
  if (expiresAt !== null) {
    ws.expiry = setTimeout(() => ws.close(CLOSE_TOKEN_EXPIRED, "the token has expired"), expiresAt - Date.now());
  }
  const state = userState(user);
  state.hellos.push(message.resume ?? null);
  state.sockets.add(ws);
  ws.user = user;
  const owners = [...state.owners.keys()].sort();
  ws.send(JSON.stringify({ type: "welcome", user, owners }));
  const resume = message.resume ?? {};
  const resumed = owners.filter((o) => resume[o] !== undefined && resume[o] <= state.owners.get(o).version);
  const fresh = owners.filter((o) => !resumed.includes(o));
  if (resumed.length > 0) {
    ws.send(JSON.stringify({ type: "resumed", owners: resumed }));
    for (const entry of state.log) {
      if (resumed.includes(entry.owner.owner) && entry.owner.version > resume[entry.owner.owner]) {
        ws.send(JSON.stringify(entry));
      }
    }
  }
  if (fresh.length > 0) {
    ws.send(JSON.stringify({ type: "snapshot", owners: fresh.map((o) => snapshot(o, state.owners.get(o))) }));
  }
}

function grant({ user, owner, item, qty }) {
  const state = userState(user);
  const inventory = state.owners.get(owner);
  const held = inventory.items.get(item) ?? 0;
  if (held + qty <= 0) inventory.items.delete(item);
  else inventory.items.set(item, held + qty);
  inventory.version += 1;
  const delta = {
    type: "delta",
    change_id: randomUUID(),
    kind: "adjust",
    owner: { owner, version: inventory.version, deltas: [{ item, change: qty }] },
  };
  state.log.push(delta);
  for (const ws of state.sockets) ws.send(JSON.stringify(delta));
  return { version: inventory.version };
}

function describe(id) {
  return {
    id,
    kind: "catalog",
    name: `The ${id}`,
    stacking: "stackable",
    revision: 1,
    created_at: 0,
    attributes: { power: 3 },
  };
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => resolve(body ? JSON.parse(body) : {}));
  });
}

function reply(res, status, body) {
  res.writeHead(status, {
    "content-type": "application/json",
    // The browser suite's page is served by the test runner on another port.
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "content-type",
  });
  res.end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://stub");
  if (req.method === "OPTIONS") return reply(res, 204, {});
  if (req.method === "POST" && url.pathname === "/v1/descriptors/batch") {
    const { ids } = await readBody(req);
    batches.push(ids);
    const answer = { descriptors: [], missing: [], burned: [] };
    for (const id of [...new Set(ids)]) {
      if (id.startsWith("missing-")) answer.missing.push(id);
      else if (id.startsWith("burned-")) answer.burned.push(id);
      else answer.descriptors.push(describe(id));
    }
    return reply(res, 200, answer);
  }
  if (req.method === "POST" && url.pathname === "/test/grant") {
    return reply(res, 200, grant(await readBody(req)));
  }
  if (req.method === "POST" && url.pathname === "/test/drop") {
    const { user } = await readBody(req);
    const state = userState(user);
    for (const ws of state.sockets) ws.terminate();
    state.sockets.clear();
    return reply(res, 200, {});
  }
  if (req.method === "GET" && url.pathname === "/test/hellos") {
    return reply(res, 200, userState(url.searchParams.get("user")).hellos);
  }
  if (req.method === "GET" && url.pathname === "/test/batches") {
    return reply(res, 200, batches);
  }
  reply(res, 404, { code: "not_found", message: `no route ${url.pathname}` });
});

const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has("inv.v1.json") ? "inv.v1.json" : false) });
server.on("upgrade", (req, socket, head) => {
  if (new URL(req.url, "http://stub").pathname !== "/v1/ws") return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("message", (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === "hello") hello(ws, message);
      else if (message.type === "ping") ws.send(JSON.stringify({ type: "pong", nonce: message.nonce }));
    });
    ws.on("close", () => {
      clearTimeout(ws.expiry);
      if (ws.user) userState(ws.user).sockets.delete(ws);
    });
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
