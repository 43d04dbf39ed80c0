//! Budgets for what jhack keeps of sounds: decoded samples in memory, and on disk
//! the sounds fetched from peers.
//!
//! Both evict the least recently used first and never evict what is pinned (sounds
//! bound to keys). Neither does I/O nor locks: [`decoded::DecodedCache`] is a plain
//! structure its owner wraps as needed, and [`disk_budget::DiskBudget`] only decides
//! what the library should delete.

pub mod decoded;
pub mod disk_budget;

pub use decoded::{CacheStats, DecodedCache, DoesNotFit};
pub use disk_budget::{DiskBudget, DiskEntry, DiskUsage, NoRoom};
