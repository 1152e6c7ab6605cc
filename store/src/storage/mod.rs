//! Durable storage of a member: one RocksDB with a column family per concern.

pub mod db;
pub mod log_store;
pub mod state_machine;
