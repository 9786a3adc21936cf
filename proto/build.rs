use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc comes from a crate so that `cargo build` needs nothing installed.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let protos = [
        "zenovay/identity/v1/identity.proto",
        "zenovay/policy/v1/policy.proto",
        "zenovay/analytics/v1/analytics.proto",
    ];
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("zenovay_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
