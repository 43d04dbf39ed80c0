//! Blob transfer, the node's own feature: a peer opens a [`StreamKind::BLOB`] stream
//! to fetch a sound's file by its id; the file arrives verified group by group
//! ([`tree`]) and resumes after an interruption ([`fetch`]); we serve ours the same
//! way ([`serve`]).
//!
//! Nothing here plays or keeps a sound: the application does, with the verified file.

mod buffers;
mod direct;
mod fetch;
mod fetch_batch;
mod serve;
mod serve_batch;
pub mod tree;

use std::sync::Arc;

pub use fetch::{Fetch, FetchError, FetchStats};
pub(crate) use fetch::{Fetches, STALE_AFTER, remove_stale, run as run_fetch};
pub use fetch_batch::BATCH_BLOB_MAX;
pub(crate) use fetch_batch::run_batch;
pub(crate) use serve::tree_for;

use super::router::{RouteClash, Router, StreamHandler};
use crate::proto::StreamKind;

/// The feature's name and version.
pub(crate) const FEATURE: &str = "blob/1";
/// Batches of small blobs on one stream ([`StreamKind::BLOB_BATCH`]).
pub(crate) const BATCH_FEATURE: &str = "blob-batch/2";

/// A blob's group hashes, or why they could not be had.
pub(crate) type TreeCell = tokio::sync::OnceCell<Result<Arc<tree::BlobTree>, String>>;

/// Registers the blob stream with the router. Permission is checked per request:
/// a sound may be fetched with `read`, or when we offered it in a trigger.
pub(crate) fn register(router: &mut Router) -> Result<(), RouteClash> {
    let handler: StreamHandler = Arc::new(|shared, link, send, recv| {
        Box::pin(serve::serve_stream(shared, link, send, recv))
    });
    router.add_stream(FEATURE, StreamKind::BLOB, None, handler)?;
    let batch: StreamHandler = Arc::new(|shared, link, send, recv| {
        Box::pin(serve_batch::serve_batch_stream(shared, link, send, recv))
    });
    router.add_stream(BATCH_FEATURE, StreamKind::BLOB_BATCH, None, batch)
}
