//! `horsestream api`: the HTTP API (health for now; REST and the gateway come later).

use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, env = "HORSESTREAM_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(horsestream_api::serve(args.listen))?;
    Ok(())
}
