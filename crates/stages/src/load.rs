//! Fetching and decoding blobs off the async runtime.

use std::sync::Arc;

use atelier_imaging::decode::{self, Decoded};
use bytes::Bytes;
use image::GrayImage;

use crate::{StageContext, StageError};

/// Decodes already-fetched bytes with the configured limits.
pub(crate) async fn decode_bytes(ctx: &StageContext, bytes: Bytes) -> Result<Decoded, StageError> {
    decode_reduced(ctx, bytes, |_| 1.0).await
}

/// [`decode_bytes`] for a consumer that shrinks the image anyway: `fraction`
/// says, from the probed size, to what fraction of it (see
/// `decode::decode_reduced`; JPEG only, other formats decode in full).
pub(crate) async fn decode_reduced(
    ctx: &StageContext,
    bytes: Bytes,
    fraction: impl FnOnce(&decode::Probe) -> f64,
) -> Result<Decoded, StageError> {
    let limits = ctx.settings.limits.clone();
    let (bytes, probe) = blocking("probe", move || {
        let probe = decode::probe(&bytes, &limits);
        (bytes, probe)
    })
    .await?;
    let probe = probe?;
    let fraction = fraction(&probe);
    // The full size's budget: a reduced JPEG decode needs less, never more.
    let _room = ctx.decode_room(probe.decoded_bytes).await?;
    let limits = ctx.settings.limits.clone();
    blocking("decode", move || {
        decode::decode_reduced(&bytes, &limits, fraction)
    })
    .await?
    .map_err(StageError::from)
}

/// Decodes an already-fetched mask.
pub(crate) async fn decode_mask(bytes: Bytes) -> Result<Arc<GrayImage>, StageError> {
    let mask = blocking("decode mask", move || decode::decode_mask(&bytes)).await??;
    Ok(Arc::new(mask))
}

/// Runs CPU work on the blocking pool, keeping the tracing span.
pub(crate) async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, StageError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| StageError::Task(format!("{what}: {e}")))
}
