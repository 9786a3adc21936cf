use clap::Parser;

/// glibc's allocator took a fifth of the CPU of event ingestion in a profile (many small
/// allocations freed on other threads); mimalloc is made for that. It is built without
/// transparent huge pages (`no_thp`, which turns them off for the whole process at start): each
/// 2 MiB page it asked for was resident as a whole, 13–22 MB of every idle process's memory
/// (README, "Benchmarks").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An error that stops the process (a setting it cannot take, a store it cannot open) is said in
/// one line with its causes: the backtrace that `anyhow` adds when `RUST_BACKTRACE` is set, as it
/// often is where panics are debugged, made a wrong setting read like a crash.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match zenovay::run(zenovay::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
