//! Compiles `proto/horsestream.proto` with the protoc binary vendored on crates.io, so a
//! build needs neither a system protoc nor network access.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    prost_build::Config::new()
        .protoc_executable(protoc)
        .compile_protos(&["proto/horsestream.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/horsestream.proto");
    Ok(())
}
