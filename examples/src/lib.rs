//! Runnable examples: the world simulation ([`world`]) with its [`audit`],
//! and small tools (binaries under `src/bin`).

pub mod audit;
pub mod world;
