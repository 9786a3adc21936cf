use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    zenovay::run(zenovay::Cli::parse()).await
}
