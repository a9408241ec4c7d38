//! Replicate: generation and upscaling through hosted models.
//!
//! One [`ReplicateClient`] (one connection pool, one concurrency limit, one
//! creations-per-minute budget) is shared by the generator and the upscaler.

mod client;
mod generator;
mod multipart;
mod prompt;
mod upscaler;
mod wire;

pub use client::ReplicateClient;
pub use generator::ReplicateGenerator;
pub use prompt::generation_prompt;
pub use upscaler::ReplicateUpscaler;

use atelier_core::settings::ReplicateModel;
use serde_json::{Map, Value};

use crate::ProviderError;

/// The model's constant extra inputs (`extra_input`, a JSON object).
fn extra_input(model: &ReplicateModel) -> Result<Map<String, Value>, ProviderError> {
    if model.extra_input.trim().is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(&model.extra_input).map_err(|e| ProviderError::Config {
        provider: client::PROVIDER,
        message: format!("extra_input of {} is not a JSON object: {e}", model.model),
    })
}

/// Sets `field` unless the mapping leaves it out (empty name).
fn set_field(fields: &mut Map<String, Value>, field: &str, value: Value) {
    if !field.is_empty() {
        fields.insert(field.to_string(), value);
    }
}
