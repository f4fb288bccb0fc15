//! Native transports: the WebSocket inventory client, the HTTP descriptor
//! client and (feature `game-server`) the game servers' client of the zone
//! node's gameplay API, on tokio.

mod connection;
mod descriptor_client;
#[cfg(feature = "game-server")]
mod game_server;
mod http;

pub use connection::{ClientHandle, InventoryClient, InventoryClientBuilder, TokenFuture};
pub use descriptor_client::{DescriptorClient, DescriptorClientBuilder, ListFilter, RawListPage};
#[cfg(feature = "game-server")]
pub use game_server::{GameServerClient, GameServerClientBuilder};
