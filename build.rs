//! Compiles `proto/` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/kms/v1/kms.proto",
        "proto/kms/v1/identity.proto",
        "proto/kms/v1/audit.proto",
        "proto/kms/v1/bench.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    // Messages that carry plaintext, data keys or secrets get a hand-written,
    // redacting `Debug` in `src/server/pb.rs` instead of prost's derived one.
    let secret_bearing = [
        ".kms.v1.EncryptRequest",
        ".kms.v1.DecryptResponse",
        ".kms.v1.GenerateDataKeyResponse",
        ".kms.v1.GenerateRandomResponse",
        ".kms.v1.Credentials",
        ".kms.v1.AccessKey",
        ".kms.v1.CreateAccessKeyResponse",
        ".kms.v1.CreateAccountResponse",
        ".kms.v1.EnableMfaDeviceResponse",
        ".kms.v1.AssumeRoleRequest",
        ".kms.v1.AssumeRoleResponse",
    ];
    tonic_prost_build::configure()
        .skip_debug(secret_bearing)
        // prost's codec, but an undecodable message is ValidationException.
        .codec_path("crate::server::grpc::codec::KmsCodec")
        .compile_fds(fds)?;
    Ok(())
}
