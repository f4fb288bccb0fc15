//! Runnable examples: the world simulation and small tools (binaries under
//! `src/bin`). Filled by the world-simulation issue.
