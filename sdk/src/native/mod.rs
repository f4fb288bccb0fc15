//! Native transports: the WebSocket inventory client and the HTTP descriptor
//! client, on tokio.

mod connection;
mod descriptor_client;

pub use connection::{ClientHandle, ConnectionState, InventoryClient, InventoryClientBuilder};
pub use descriptor_client::{DescriptorClient, DescriptorClientBuilder, ListFilter, RawListPage};
