// The wasm half of `cargo xtask bench wasm`: loads the release bundle
// (target/npm/web) in Node and applies a stream of node frames through the
// public `InventoryState.applyFrame`, as a JavaScript transport would.
//
// Usage: node bench-node.mjs <bundle-dir> <frames.json> <rounds>
// Prints one line per round: `deltas <count> ms <elapsed>`.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [bundle, framesFile, rounds = "3"] = process.argv.slice(2);
const sdk = await import(pathToFileURL(join(bundle, "sdk_wasm.js")).href);
sdk.initSync({ module: readFileSync(join(bundle, "sdk_wasm_bg.wasm")) });

const { setup, deltas } = JSON.parse(readFileSync(framesFile, "utf8"));
for (let round = 0; round < Number(rounds); round++) {
  const state = new sdk.InventoryState("json");
  for (const frame of setup) state.applyFrame(frame);
  let changes = 0;
  const started = process.hrtime.bigint();
  for (const frame of deltas) changes += state.applyFrame(frame).length;
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (changes === 0) throw new Error("the stream changed nothing");
  console.log(`deltas ${deltas.length} ms ${elapsedMs}`);
  state.free();
}
