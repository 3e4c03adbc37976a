//! Flags shared by several subcommands; every flag can also be set by its environment variable.

use std::path::PathBuf;

use anyhow::Context;
use horsestream_models::{ExecutionProviderKind, Manifest, ModelRegistry, ModelsConfig, Task};
use horsestream_sinks::Store;
use horsestream_sinks::kafka::{ClientOptions, KafkaConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct ModelOptions {
    /// Directory holding the model files named in the manifest.
    #[arg(long, env = "HORSESTREAM_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// A manifest to use instead of the embedded models/manifest.toml.
    #[arg(long, env = "HORSESTREAM_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// The ONNX Runtime shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_dylib: Option<PathBuf>,
    /// cpu, cuda or tensorrt.
    #[arg(long, env = "HORSESTREAM_EXECUTION_PROVIDER", default_value = "cpu")]
    pub execution_provider: String,
    /// Threads per ONNX Runtime session.
    #[arg(long, env = "HORSESTREAM_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// The detector's manifest entry.
    #[arg(long, env = "HORSESTREAM_DETECTOR", default_value = "yolox_nano")]
    pub detector: String,
    /// The re-identification model's manifest entry (appearance features for tracking).
    #[arg(
        long,
        env = "HORSESTREAM_REID_MODEL",
        default_value = "reid_mobilenetv2"
    )]
    pub reid_model: String,
    /// Track by motion and box overlap only, without appearance features (faster).
    #[arg(long, env = "HORSESTREAM_NO_REID")]
    pub no_reid: bool,
    /// Frames per inference call.
    #[arg(long, env = "HORSESTREAM_BATCH_SIZE", default_value_t = 8)]
    pub batch_size: usize,
    /// Analyse every frame of every chunk, the overlap too. By default a frame that comes
    /// again in the next chunk's overlap (same stream, pts, capture time and bytes) takes the
    /// result found for it before; this is for measuring that, and for tests whose model
    /// calls must see whole chunks.
    #[arg(long, env = "HORSESTREAM_NO_OVERLAP_REUSE")]
    pub no_overlap_reuse: bool,
    /// Run this pose model (a manifest entry of task `pose`, e.g. `rtmpose_ap10k`) on the
    /// detections of every stream. Without it, a stream runs the pose model activated for it
    /// (`PUT /api/v1/streams/{id}/model`), looked up again every 30 s. A pose model whose file
    /// is not installed is logged once and its streams run without pose.
    #[arg(long, env = "HORSESTREAM_POSE_MODEL")]
    pub pose_model: Option<String>,
}

impl ModelOptions {
    /// The registry, with the detector's file and signature checked once before any worker
    /// starts, so a wrong model is refused at start-up with one clear message.
    /// Without an explicit thread count every session may use all the cores: streams are
    /// sharded over workers, so with fewer busy streams than workers a core share would leave
    /// cores idle (one stream on 2 workers of 1 thread each: 30 frames/s in the demo; of 2
    /// threads: 38). When `workers` sessions share the cores their idle threads do not spin
    /// (that burns what the others need; 38 → 40 frames/s).
    pub fn registry(&self, workers: usize) -> anyhow::Result<ModelRegistry> {
        let ep = match self.execution_provider.to_ascii_lowercase().as_str() {
            "cpu" => ExecutionProviderKind::Cpu,
            "cuda" => ExecutionProviderKind::Cuda,
            "tensorrt" => ExecutionProviderKind::TensorRt,
            other => anyhow::bail!("unknown execution provider {other:?} (cpu, cuda, tensorrt)"),
        };
        let registry = ModelRegistry::from_config(&ModelsConfig {
            model_dir: self.model_dir.clone(),
            manifest: self.manifest.clone(),
            ort_dylib: self.ort_dylib.clone(),
            intra_threads: Some(self.intra_threads.unwrap_or_else(horsestream_models::cores)),
            intra_spinning: Some(workers <= 1),
            execution_provider: ep,
        })?;
        registry
            .detector(&self.detector)
            .with_context(|| format!("loading detector {:?}", self.detector))?;
        if !self.no_reid {
            registry
                .embedder(&self.reid_model)
                .with_context(|| format!("loading re-ID model {:?}", self.reid_model))?;
        }
        if let Some(name) = &self.pose_model {
            // A wrong name is a typo to refuse now; a missing file only turns pose off.
            let entry = registry.manifest().get(name)?;
            anyhow::ensure!(
                entry.task == Task::Pose,
                "--pose-model {name:?} is a {} model, not a pose model",
                entry.task
            );
        }
        Ok(registry)
    }

    /// The size of the embeddings the re-ID model gives (its manifest's `embedding_dim`, which
    /// loading checks against the model's output); `None` with `--no-reid`.
    pub fn reid_dim(&self) -> anyhow::Result<Option<usize>> {
        if self.no_reid {
            return Ok(None);
        }
        let manifest = Manifest::load(self.manifest.as_deref())?;
        let entry = manifest.get(&self.reid_model)?;
        let reid = entry
            .reid
            .as_ref()
            .with_context(|| format!("{:?} is not a re-ID model", self.reid_model))?;
        Ok(Some(reid.embedding_dim as usize))
    }

    /// Refuses to run with a re-ID model whose embeddings do not fit the store's horse gallery
    /// (they would be refused one by one, and horses never re-identified).
    pub fn check_gallery(&self, store: &Store) -> anyhow::Result<()> {
        let Some(model) = self.reid_dim()? else {
            return Ok(());
        };
        let gallery = store.embedding_dim();
        anyhow::ensure!(
            model == gallery,
            "the re-ID model {:?} gives {model}-value embeddings, but this database's horse \
             gallery holds {gallery}-value ones; run `horsestream gallery --migrate` with the \
             same --database-url and model options (it empties the gallery; horses keep their \
             names and history; see sinks/MIGRATIONS.md)",
            self.reid_model
        );
        Ok(())
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct KafkaOptions {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "HORSESTREAM_KAFKA_BROKERS",
        default_value = "127.0.0.1:19092"
    )]
    pub brokers: String,
    #[arg(
        long,
        env = "HORSESTREAM_CHUNKS_TOPIC",
        default_value = "horsestream.chunks"
    )]
    pub chunks_topic: String,
    #[arg(
        long,
        env = "HORSESTREAM_EVENTS_TOPIC",
        default_value = "horsestream.events"
    )]
    pub events_topic: String,
    /// Partitions of topics this process creates.
    #[arg(long, env = "HORSESTREAM_TOPIC_PARTITIONS", default_value_t = 4)]
    pub partitions: i32,
    #[command(flatten)]
    pub security: KafkaSecurityArgs,
}

impl KafkaOptions {
    pub fn config(&self) -> KafkaConfig {
        let mut c = KafkaConfig::new(&self.brokers);
        c.chunks_topic.clone_from(&self.chunks_topic);
        c.events_topic.clone_from(&self.events_topic);
        c.partitions = self.partitions;
        // Every value was checked when the flags were parsed.
        c.client_options = self.security.client_options().unwrap_or_default();
        c
    }
}

/// TLS and SASL settings of every Kafka client (docs/security.md). The named flags are
/// librdkafka's properties of the same name; `--kafka-option` passes any other one.
#[derive(Clone, Default, clap::Args)]
pub struct KafkaSecurityArgs {
    /// `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
    #[arg(long, env = "HORSESTREAM_KAFKA_SECURITY_PROTOCOL")]
    pub kafka_security_protocol: Option<String>,
    /// `ssl.ca.location`: PEM file of the CA(s) that signed the brokers' certificates.
    #[arg(long, env = "HORSESTREAM_KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<String>,
    /// `ssl.certificate.location`: this client's PEM certificate (mutual TLS).
    #[arg(long, env = "HORSESTREAM_KAFKA_SSL_CERTIFICATE_LOCATION")]
    pub kafka_ssl_certificate_location: Option<String>,
    /// `ssl.key.location`: this client's PEM private key (mutual TLS).
    #[arg(long, env = "HORSESTREAM_KAFKA_SSL_KEY_LOCATION")]
    pub kafka_ssl_key_location: Option<String>,
    /// `sasl.mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(long, env = "HORSESTREAM_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,
    /// `sasl.username`.
    #[arg(long, env = "HORSESTREAM_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// `sasl.password` (prefer the environment variable: flags show in `ps`).
    #[arg(long, env = "HORSESTREAM_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,
    /// Any other librdkafka property, `KEY=VALUE`, repeatable (in the environment: separated
    /// by `;`). Applied before the named flags above.
    #[arg(
        long = "kafka-option",
        env = "HORSESTREAM_KAFKA_OPTIONS",
        hide_env_values = true,
        value_delimiter = ';',
        value_parser = parse_kafka_option,
    )]
    pub kafka_options: Vec<String>,
}

impl std::fmt::Debug for KafkaSecurityArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.client_options() {
            Ok(o) => o.fmt(f),
            Err(_) => f.write_str("<invalid Kafka options>"),
        }
    }
}

fn parse_kafka_option(s: &str) -> Result<String, String> {
    ClientOptions::default()
        .set_pair(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

impl KafkaSecurityArgs {
    pub fn client_options(&self) -> anyhow::Result<ClientOptions> {
        let mut o = ClientOptions::default();
        for pair in &self.kafka_options {
            o.set_pair(pair)?;
        }
        let named = [
            ("security.protocol", &self.kafka_security_protocol),
            ("ssl.ca.location", &self.kafka_ssl_ca_location),
            (
                "ssl.certificate.location",
                &self.kafka_ssl_certificate_location,
            ),
            ("ssl.key.location", &self.kafka_ssl_key_location),
            ("sasl.mechanism", &self.kafka_sasl_mechanism),
            ("sasl.username", &self.kafka_sasl_username),
            ("sasl.password", &self.kafka_sasl_password),
        ];
        for (key, value) in named {
            if let Some(v) = value {
                o.set(key, v)?;
            }
        }
        Ok(o)
    }
}

/// A small runtime for the async clients (sqlx, rdkafka futures) of a blocking command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
