//! Atelier's wire format: the protobuf messages that travel between the gateway,
//! the stage workers and the status service, the status service's gRPC stubs, and
//! conversions to and from `atelier-core` types.
//!
//! The `.proto` files under the workspace's `proto/` folder are the contract;
//! this crate generates code from them at build time, and [`convert`] is the one
//! place that maps them onto the domain types, validating on the way in so a
//! worker never acts on a half-understood message.

pub mod convert;
pub mod error;

pub use convert::{CancelNotice, cancel_job, job_state, stage_message};
pub use error::ProtoError;

/// Code generated from `proto/atelier/v1` (messages, `StatusService` client and
/// server). Kept as generated: fix the `.proto` files, not this module.
#[allow(clippy::all, clippy::pedantic, missing_docs, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("atelier.v1");
}

/// Encoded `FileDescriptorSet` of every `atelier.v1` file, to register with
/// tonic-reflection so generic gRPC clients can list and call the services.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("atelier_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    // Just the parts of descriptor.proto this test reads (unknown fields are skipped),
    // so the test needs no prost-types.
    #[derive(Clone, PartialEq, Message)]
    struct FileSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<File>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct File {
        #[prost(string, tag = "2")]
        package: String,
        #[prost(message, repeated, tag = "6")]
        service: Vec<Service>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Service {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn descriptor_set_names_the_status_service() {
        assert!(!FILE_DESCRIPTOR_SET.is_empty());
        let set = FileSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package, s.name)))
            .collect();
        assert_eq!(services, ["atelier.v1.StatusService"]);
    }
}
