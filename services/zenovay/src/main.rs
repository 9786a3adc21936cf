use clap::Parser;

/// glibc's allocator took a fifth of the CPU of event ingestion in a profile (many small
/// allocations freed on other threads); mimalloc is made for that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zenovay::run(zenovay::Cli::parse()).await
}
