//! `horsestream stream add|list`: register the streams whose results the store accepts (the
//! API does the same over REST). A chunk of a stream that is not registered is refused.

use anyhow::Context;
use horsestream_sinks::{NewStream, SinkError, Store};

use crate::options::runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: TimescaleDB (`postgres://…`) or an embedded SQLite file (`sqlite://…`).
    #[arg(long, env = "HORSESTREAM_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: StreamCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StreamCommand {
    /// Register a stream (nothing changes if it exists with that id).
    Add {
        /// Stream id: the Kafka key and the id results are stored under.
        #[arg(long)]
        id: String,
        /// Where the video comes from (file path, rtsp://, …), without credentials.
        #[arg(long)]
        url: String,
        /// Display name; the id when absent.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the registered streams, one per line.
    List,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let url = args
        .database_url
        .context("--database-url (or HORSESTREAM_DATABASE_URL) is required")?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = Store::connect(&url)
            .await
            .context("connecting to the database")?;
        match args.command {
            StreamCommand::Add { id, url, name } => {
                let created = register(&store, &id, &url, name.as_deref()).await?;
                println!("{} {id}", if created { "registered" } else { "exists" });
            }
            StreamCommand::List => {
                for s in store.list_streams().await? {
                    println!(
                        "{}\t{}\t{}\t{}",
                        s.id, s.source_kind, s.status, s.source_url
                    );
                }
            }
        }
        Ok(())
    })
}

/// Registers a stream unless one with that id exists; true when it was created.
pub async fn register(
    store: &Store,
    id: &str,
    source_url: &str,
    name: Option<&str>,
) -> anyhow::Result<bool> {
    let kind = horsestream_ingest::SourceSpec::parse(source_url)
        .with_context(|| format!("stream {id}: source"))?
        .kind()
        .to_owned();
    let new = NewStream {
        id: id.to_owned(),
        name: name.unwrap_or(id).to_owned(),
        source_url: source_url.to_owned(),
        source_kind: kind,
        credentials_secret: None,
        calibration: None,
        zones: Vec::new(),
        enabled: true,
    };
    match store.create_stream(&new).await {
        Ok(_) => Ok(true),
        Err(SinkError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("registering stream {id}")),
    }
}

#[cfg(test)]
mod tests {
    use horsestream_api::rest::streams::SOURCE_KINDS;
    use horsestream_ingest::SourceSpec;

    /// Every source ingest reads is a kind the API accepts for a stream.
    #[test]
    fn ingest_source_kinds_are_api_stream_kinds() {
        for input in [
            "paddock.mp4",
            "file:///videos/paddock.mkv",
            "rtsp://camera/stream?transport=udp",
            "rtmp://0.0.0.0:1935/live/key",
            "https://cdn.example/live/index.m3u8?token=x",
            "http://cdn.example/paddock.mp4",
            "youtube:dQw4w9WgXcQ",
        ] {
            let kind = SourceSpec::parse(input).unwrap().kind();
            assert!(SOURCE_KINDS.contains(&kind), "{input}: {kind}");
        }
        assert_eq!(
            SourceSpec::parse("https://cdn.example/live/index.m3u8?token=x")
                .unwrap()
                .kind(),
            "hls"
        );
    }
}
