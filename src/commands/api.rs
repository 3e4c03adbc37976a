//! `horsestream api`: the HTTP API and the Socket.io gateway, fed from the events topic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use horsestream_api::auth::{AuthConfig, Bootstrap, InMemoryUserStore, StoreUserStore, users};
use horsestream_api::{AppState, EventsConfig, ModelSettings, PlaybackSettings, ServeOptions};
use horsestream_sinks::kafka::KafkaConfig;

use crate::options::KafkaSecurityArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, env = "HORSESTREAM_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Kafka bootstrap servers (the live events come from there).
    #[arg(
        long,
        env = "HORSESTREAM_KAFKA_BROKERS",
        default_value = "127.0.0.1:19092"
    )]
    pub brokers: String,
    #[arg(
        long,
        env = "HORSESTREAM_EVENTS_TOPIC",
        default_value = "horsestream.events"
    )]
    pub events_topic: String,
    /// Serve without the live-events feed (no Kafka needed; sockets receive nothing).
    #[arg(long)]
    pub no_events: bool,
    /// HS256 key of the JWTs, at least 32 bytes, the same on every replica
    /// (e.g. `openssl rand -base64 48`).
    #[arg(
        long,
        env = "HORSESTREAM_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "hash_password"
    )]
    pub jwt_secret: Option<String>,
    /// Lifetime of access tokens, seconds.
    #[arg(long, env = "HORSESTREAM_ACCESS_TTL_SECS", default_value_t = 15 * 60)]
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens, seconds.
    #[arg(long, env = "HORSESTREAM_REFRESH_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub refresh_ttl_secs: u64,
    /// Name of the bootstrap admin user.
    #[arg(long, env = "HORSESTREAM_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,
    /// argon2 PHC hash of the admin's password (`horsestream api --hash-password` makes one).
    /// Without it a password is generated and printed at start-up.
    #[arg(long, env = "HORSESTREAM_ADMIN_PASSWORD_HASH", hide_env_values = true)]
    pub admin_password_hash: Option<String>,
    /// The store (`postgres://…` or `sqlite://PATH`) behind the REST resources and the users.
    /// Without it users live in memory (the admin only) and the REST resources answer 503.
    #[arg(long, env = "HORSESTREAM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where uploaded model files are installed (the dataflow's model directory).
    #[arg(long, env = "HORSESTREAM_MODEL_DIR")]
    pub model_dir: Option<std::path::PathBuf>,
    /// Manifest override that uploads are checked against (default: the embedded manifest).
    #[arg(long, env = "HORSESTREAM_MODEL_MANIFEST")]
    pub model_manifest: Option<std::path::PathBuf>,
    /// Largest model upload accepted, MiB.
    #[arg(long, default_value_t = ModelSettings::DEFAULT_MAX_UPLOAD >> 20)]
    pub max_model_upload_mib: u64,
    /// The folder `horsestream ingest --hls-dir` writes playback segments to, served as
    /// `GET /api/v1/streams/{id}/hls/{file}`.
    #[arg(long, env = "HORSESTREAM_HLS_DIR")]
    pub hls_dir: Option<std::path::PathBuf>,
    /// The built web client (`bash scripts/web-build.sh` writes `web/dist`), served at `/`.
    #[arg(long, env = "HORSESTREAM_WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,
    /// PEM certificate chain (leaf first) to serve HTTPS and WSS with; needs `--tls-key`.
    /// Without both, the API serves plain HTTP.
    #[arg(long, env = "HORSESTREAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HORSESTREAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve Prometheus `GET /metrics` (plain HTTP) on this address.
    #[arg(long, env = "HORSESTREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub kafka_security: KafkaSecurityArgs,
    /// Read a password from stdin, print its argon2 hash and exit.
    #[arg(long)]
    pub hash_password: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.hash_password {
        let mut password = String::new();
        std::io::stdin().read_line(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "empty password on stdin");
        println!("{}", users::hash_password(password)?);
        return Ok(());
    }
    let secret = args.jwt_secret.clone().unwrap_or_default();
    let mut auth = AuthConfig::new(secret.into_bytes()).context("HORSESTREAM_JWT_SECRET")?;
    auth.access_ttl = Duration::from_secs(args.access_ttl_secs);
    auth.refresh_ttl = Duration::from_secs(args.refresh_ttl_secs);

    let rt = tokio::runtime::Runtime::new()?;
    let state = rt
        .block_on(state(&args, &auth))?
        .with_playback(PlaybackSettings {
            hls_dir: args.hls_dir.clone(),
            web_dir: args.web_dir.clone(),
        });
    let events = if args.no_events {
        None
    } else {
        let mut kafka = KafkaConfig::new(&args.brokers);
        kafka.events_topic.clone_from(&args.events_topic);
        kafka.client_options = args.kafka_security.client_options()?;
        Some(EventsConfig::new(kafka))
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(horsestream_api::tls::server_config(cert, key)?),
        _ => None,
    };

    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let metrics = match args.metrics_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot serve metrics on {addr}"))?;
                eprintln!("horsestream: metrics on http://{}/metrics", l.local_addr()?);
                Some(l)
            }
            None => None,
        };
        let options = ServeOptions { events, metrics };
        let addr = listener.local_addr()?;
        match tls {
            Some(config) => {
                let listener =
                    horsestream_api::tls::TlsListener::new(listener, config, state.clone())?;
                eprintln!("horsestream: api listening on https://{addr}");
                horsestream_api::serve_with(listener, state, options, shutdown_signal()).await?;
            }
            None => {
                eprintln!("horsestream: api listening on http://{addr}");
                horsestream_api::serve_with(listener, state, options, shutdown_signal()).await?;
            }
        }
        anyhow::Ok(())
    })
}

fn announce(admin: &str, outcome: Bootstrap) {
    match outcome {
        Bootstrap::Configured => {}
        Bootstrap::Generated { password, hash } => eprintln!(
            "horsestream: no HORSESTREAM_ADMIN_PASSWORD_HASH set; the admin user {admin:?} has \
             this generated password:\n\n    {password}\n\nTo keep it across in-memory runs, set \
             HORSESTREAM_ADMIN_PASSWORD_HASH='{hash}'\n"
        ),
    }
}

/// Users and REST resources from the store when a database URL is given, else users in memory.
async fn state(args: &Args, auth: &AuthConfig) -> anyhow::Result<AppState> {
    let models = ModelSettings {
        dir: args.model_dir.clone(),
        manifest: horsestream_models::Manifest::load(args.model_manifest.as_deref())
            .context("model manifest")?,
        max_upload_bytes: args.max_model_upload_mib << 20,
    };
    let Some(url) = &args.database_url else {
        let store = InMemoryUserStore::new();
        let outcome = users::bootstrap_admin(
            &store,
            &args.admin_user,
            args.admin_password_hash.as_deref(),
        )
        .context("bootstrap admin user")?;
        announce(&args.admin_user, outcome);
        return Ok(AppState::new(auth, Arc::new(store)).with_models(models));
    };
    let store = horsestream_sinks::Store::connect(url)
        .await
        .context("connect to the database (HORSESTREAM_DATABASE_URL)")?;
    let users = StoreUserStore::new(store.clone());
    if let Some(outcome) = users
        .bootstrap_admin(&args.admin_user, args.admin_password_hash.as_deref())
        .await
        .context("bootstrap admin user")?
    {
        announce(&args.admin_user, outcome);
    }
    Ok(AppState::new(auth, Arc::new(users))
        .with_store(store)
        .with_models(models))
}

/// Ctrl-C or SIGTERM (what Kubernetes sends).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
