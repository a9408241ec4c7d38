//! Faithful fakes of the Gemini and Replicate HTTP APIs for wiremock, written
//! from the public API references: they check what the real services check
//! (method, path, auth, required JSON fields) and answer in the real shapes.
//!
//! Shared with crates/cli/tests through `#[path]`, so the end-to-end run of
//! `atelier process` talks to the same fakes as the client tests.

// Each test binary uses part of the fakes.
#![allow(dead_code)]
// A refusal is wiremock's `ResponseTemplate`, returned once per request; boxing
// it would only add noise to a test fake.
#![allow(clippy::result_large_err)]

pub mod gemini;
pub mod replicate;
