// A Redux-style adapter: the client's changes become actions dispatched to a
// store, and the reducer keeps the inventories (and the descriptors, which
// the SDK batches and caches) as plain immutable state. Works with Redux
// Toolkit's `configureStore` or any `{ dispatch, getState }` store.

import {
  InventoryClient,
  type ConnectionState,
  type Descriptor,
  type InventoryChange,
  type InventoryClientOptions,
  type OwnerInventory,
} from "inventory-sdk";

/** The slice of state this adapter owns. */
export interface InventoryState {
  connection: ConnectionState;
  /** Owner id -> item id -> quantity. */
  owners: Record<string, Record<string, number>>;
  /** Item id -> descriptor, for the items that have one. */
  descriptors: Record<string, Descriptor>;
  versions: Record<string, number>;
}

export type InventoryAction =
  | { type: "inventory/loaded"; owners: OwnerInventory[] }
  | { type: "inventory/changed"; changes: InventoryChange[] }
  | { type: "inventory/connection"; state: ConnectionState };

export const initialInventoryState: InventoryState = {
  connection: { state: "idle" },
  owners: {},
  descriptors: {},
  versions: {},
};

/** The reducer: pure, one case per action. */
export function inventoryReducer(
  state: InventoryState = initialInventoryState,
  action: InventoryAction,
): InventoryState {
  switch (action.type) {
    case "inventory/connection":
      return { ...state, connection: action.state };
    case "inventory/loaded": {
      const owners: InventoryState["owners"] = {};
      const versions: InventoryState["versions"] = {};
      const descriptors = { ...state.descriptors };
      for (const owner of action.owners) {
        owners[owner.owner] = Object.fromEntries(owner.items.map((s) => [s.item, s.qty]));
        versions[owner.owner] = owner.version;
        for (const stack of owner.items) {
          if (stack.descriptor) descriptors[stack.item] = stack.descriptor;
        }
      }
      return { ...state, owners, versions, descriptors };
    }
    case "inventory/changed":
      return action.changes.reduce(applyChange, state);
  }
}

function applyChange(state: InventoryState, change: InventoryChange): InventoryState {
  const items = { ...(state.owners[change.owner] ?? {}) };
  switch (change.type) {
    case "item_added":
      items[change.item] = change.qty;
      return withDescriptor({ ...state, owners: { ...state.owners, [change.owner]: items } }, change.item, change.descriptor);
    case "quantity_changed":
      items[change.item] = change.to;
      return { ...state, owners: { ...state.owners, [change.owner]: items } };
    case "item_removed":
      delete items[change.item];
      return { ...state, owners: { ...state.owners, [change.owner]: items } };
    case "descriptor_arrived":
      return withDescriptor(state, change.item, change.descriptor);
    case "resynced":
      return { ...state, versions: { ...state.versions, [change.owner]: change.version } };
    case "owner_removed": {
      const { [change.owner]: _removed, ...owners } = state.owners;
      return { ...state, owners };
    }
  }
}

function withDescriptor(state: InventoryState, item: string, descriptor: Descriptor | null): InventoryState {
  return descriptor ? { ...state, descriptors: { ...state.descriptors, [item]: descriptor } } : state;
}

/** The part of a Redux store the adapter needs. */
export interface Store {
  dispatch(action: InventoryAction): unknown;
}

/**
 * Connects a client to a store: every batch of changes becomes one
 * `inventory/changed` action, connection changes `inventory/connection`.
 * Returns a function that detaches and closes the client.
 */
export async function connectToStore(
  store: Store,
  url: string,
  token: string,
  options?: InventoryClientOptions,
): Promise<() => void> {
  const client = new InventoryClient(url, token, options);
  const stopConnection = client.onConnection((state) => store.dispatch({ type: "inventory/connection", state }));
  const stopChanges = client.onChange((changes) => store.dispatch({ type: "inventory/changed", changes }));
  await client.connect();
  store.dispatch({ type: "inventory/loaded", owners: client.items() });
  return () => {
    stopChanges();
    stopConnection();
    client.close();
    client.free();
  };
}
