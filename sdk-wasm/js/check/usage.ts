// Compiled by `tsc --strict` (cargo xtask test) against the generated
// declarations: mistakes in them, or in the shapes they promise, fail CI.

import init, {
  InventoryClient,
  InventoryState,
  type ConnectionState,
  type InventoryChange,
  type InventoryError,
  type OwnerInventory,
  type TokenSource,
} from "inventory-sdk";

export async function usage(token: string): Promise<number> {
  await init();
  const client = new InventoryClient("ws://127.0.0.1:7000/v1/ws", token, {
    descriptorUrl: "same-origin",
    descriptorToken: "read-token",
    encoding: "msgpack",
    reconnectMinDelayMs: 50,
  });
  const provider: TokenSource = async () => token;
  const refreshing = new InventoryClient("/v1/ws", provider, { descriptorUrl: "https://descriptors.example" });
  refreshing.free();
  const plain = new InventoryClient("/v1/ws", token, { descriptorUrl: null });
  plain[Symbol.dispose]();

  // React: useSyncExternalStore(client.subscribe.bind(client), client.getSnapshot.bind(client)).
  const stop: () => void = client.subscribe(() => {
    const snapshot: readonly OwnerInventory[] = client.getSnapshot();
    const created: number | undefined = snapshot[0]?.items[0]?.descriptor?.createdAt;
    console.log(snapshot.length, created);
  });
  stop();

  const unsubscribe: () => void = client.onChange((changes: InventoryChange[]) => {
    for (const change of changes) {
      if (change.type === "quantity_changed") {
        const delta: number = change.to - change.from;
        console.log(change.owner, change.item, delta);
      } else if (change.type === "item_added" && change.descriptor !== null) {
        const name: string = change.descriptor.name;
        console.log(name);
      }
    }
  });
  client.onConnection((state: ConnectionState) => {
    if (state.state === "reconnecting") console.log(state.attempt, state.delayMs);
  });
  client.onError((error: InventoryError) => console.log(error.code, error.retryable, error.message));

  await client.connect();
  const owners: OwnerInventory[] = client.items();
  const hero: OwnerInventory | undefined = client.owner("c:alice:hero");
  const characterName: string | null = hero?.character ?? null;
  const ids: string[] = client.owners();
  const user: string | undefined = client.user();
  const latency: number | undefined = client.latencyMs;
  console.log(characterName, ids, user, latency, client.connectionState().state);
  unsubscribe();
  client.reconnect();
  client.close();

  const state = new InventoryState("json");
  const changes: InventoryChange[] = state.applyFrame('{"type":"pong","nonce":1}');
  console.log(changes.length, state.needsResume, state.items().length);
  return owners.reduce((sum, owner) => sum + owner.items.reduce((n, stack) => n + stack.qty, 0), 0);
}
