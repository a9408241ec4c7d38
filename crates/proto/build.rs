//! Generates the protobuf messages and the gRPC client and server stubs from the
//! workspace's `proto/` folder, and writes the file descriptor set that
//! tonic-reflection serves, so grpc clients can discover the services at run time.

use std::{env, error::Error, path::PathBuf};

const PROTO_DIR: &str = "../../proto";
const PROTOS: [&str; 2] = [
    "../../proto/atelier/v1/pipeline.proto",
    "../../proto/atelier/v1/status.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // A directory makes cargo watch every file below it, including new .proto files.
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(out_dir.join("atelier_descriptor.bin"))
        .compile_protos(&PROTOS, &[PROTO_DIR])?;
    Ok(())
}
