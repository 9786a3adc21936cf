use clap::Parser;

/// glibc's allocator took a fifth of the CPU of event ingestion in a profile (many small
/// allocations freed on other threads); mimalloc is made for that. It is built without
/// transparent huge pages (`no_thp`, which turns them off for the whole process at start): each
/// 2 MiB page it asked for was resident as a whole, 13–22 MB of every idle process's memory
/// (README, "Benchmarks").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zenovay::run(zenovay::Cli::parse()).await
}
