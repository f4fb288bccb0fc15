//! The TypeScript declarations of the plain objects the API hands out, added
//! to the generated `.d.ts` so that `tsc --strict` checks their use.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Where session tokens come from: a fixed token, or a provider the client asks before connecting, before each token expires, and when the node closes a session for an expired one. */
export type TokenSource = string | (() => Promise<string>);

/** Options of `new InventoryClient(url, token, options)`. */
export interface InventoryClientOptions {
  /**
   * Where descriptors come from: `"same-origin"` (the page's origin), the
   * descriptor service's base URL, or `null` to fetch none (items stay
   * `"loading"`). Left out, `connect()` reports an `InventoryError` saying so.
   */
  descriptorUrl?: "same-origin" | string | null;
  /** A read token sent as `Authorization: Bearer` with descriptor requests. */
  descriptorToken?: string;
  /** Wire encoding, negotiated as a WebSocket subprotocol. Default `"json"`. */
  encoding?: "json" | "msgpack";
  /** How many descriptor answers are cached. Default 4096. */
  descriptorCapacity?: number;
  /** How long a connection may take until every inventory is held. Default 10000. */
  connectTimeoutMs?: number;
  /** First reconnect delay (exponential, with jitter). Default 100. */
  reconnectMinDelayMs?: number;
  /** Largest reconnect delay. Default 10000. */
  reconnectMaxDelayMs?: number;
  /** Ping period; two silent periods mean a dead connection. Default 15000. */
  pingIntervalMs?: number;
  /** How long descriptor ids wait to share one batch request. Default 5. */
  batchWindowMs?: number;
}

/** What the client knows about an item's descriptor. */
export type DescriptorStatus = "loading" | "ready" | "not_found" | "burned";

/** A scalar attribute of a descriptor. */
export type AttributeValue = boolean | number | string;

/** An item descriptor, as the descriptor service serves it. */
export interface Descriptor {
  id: string;
  kind: "catalog" | "crafted";
  template?: string;
  name: string;
  stacking: "stackable" | "unique";
  revision: number;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  craftedBy?: string;
  inputs?: { item: string; qty: number }[];
  attributes?: Record<string, AttributeValue>;
}

/** One stack of an inventory. */
export interface ItemStack {
  item: string;
  qty: number;
  status: DescriptorStatus;
  /** Present when `status` is `"ready"`. */
  descriptor: Descriptor | null;
}

/** One inventory: the player's account, or one of the player's characters. */
export interface OwnerInventory {
  /** `a:<user>` or `c:<user>:<character>`. */
  owner: string;
  kind: "account" | "character";
  user: string;
  character: string | null;
  version: number;
  /** In ascending item-id order. */
  items: ItemStack[];
}

/** Exactly one thing that changed in the view. */
export type InventoryChange =
  | { type: "item_added"; owner: string; item: string; qty: number; status: DescriptorStatus; descriptor: Descriptor | null }
  | { type: "item_removed"; owner: string; item: string; qty: number }
  | { type: "quantity_changed"; owner: string; item: string; from: number; to: number }
  | { type: "descriptor_arrived"; owner: string; item: string; status: DescriptorStatus; descriptor: Descriptor | null }
  | { type: "resynced"; owner: string; version: number }
  | { type: "owner_removed"; owner: string };

/** Where the connection stands. */
export type ConnectionState =
  | { state: "idle" }
  | { state: "connecting"; attempt: number }
  | { state: "connected" }
  | { state: "reconnecting"; attempt: number; delayMs: number }
  | { state: "closed" };

/** Every error the SDK reports: an `Error` with a stable code. */
export interface InventoryError extends Error {
  /** A stable `protocol::ErrorCode`, e.g. `"unauthorized"`, `"token_expired"`, `"unavailable"`. */
  code: string;
  /** Whether trying again later may succeed. */
  retryable: boolean;
}
"#;
