//! `horsestream gallery`: the size of the embeddings a store's horse gallery holds, and its
//! migration to the configured re-ID model's size (sinks/MIGRATIONS.md).

use anyhow::Context;
use horsestream_sinks::Store;

use crate::options::{ModelOptions, runtime};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store: TimescaleDB (`postgres://…`) or an embedded SQLite file (`sqlite://…`).
    #[arg(long, env = "HORSESTREAM_DATABASE_URL")]
    pub database_url: String,
    /// Make the gallery hold the re-ID model's embedding size: deletes every stored embedding
    /// (horses, names, tracks and history stay). Run it with the dataflow stopped.
    #[arg(long)]
    pub migrate: bool,
    /// The size to migrate to, instead of the re-ID model's.
    #[arg(long, requires = "migrate")]
    pub dim: Option<usize>,
    #[command(flatten)]
    pub models: ModelOptions,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let model = match args.dim {
        Some(dim) => Some(dim),
        None => args.models.reid_dim()?,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let store = Store::connect(&args.database_url)
            .await
            .context("connecting to the database")?;
        let held = store.embedding_dim();
        match model {
            Some(m) => println!(
                "gallery: {held}-value embeddings; re-ID model {:?}: {m}",
                args.models.reid_model
            ),
            None => println!("gallery: {held}-value embeddings; re-ID is off"),
        }
        if !args.migrate {
            return Ok(());
        }
        let dim = model.context("--migrate needs a re-ID model or --dim")?;
        let removed = store
            .migrate_gallery(dim)
            .await
            .context("migrating the gallery")?;
        if dim == held {
            println!("gallery: already {dim}-value embeddings, nothing changed");
        } else {
            println!("gallery: now {dim}-value embeddings, {removed} stored embeddings deleted");
        }
        Ok(())
    })
}
