//! Kafka over TLS with SASL: a private single-node broker (the installed Kafka jars, KRaft) whose
//! client listener is `SASL_SSL` with a certificate from a CA this test generates (rcgen) and
//! SASL `PLAIN`. horsestream's Kafka clients reach it with `security.protocol=sasl_ssl`,
//! `ssl.ca.location` and the SASL login: topics are created, an event is produced, and the real
//! `horsestream api` binary, configured by its `--kafka-*` flags and
//! `HORSESTREAM_KAFKA_SASL_PASSWORD`, reads it from the events topic (without the password in
//! its log). A wrong password, a CA that did not sign the broker's certificate and plaintext are
//! refused.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{free_port, new_ca, required_env, unique};
use horsestream_proto::{ChunkProcessed, Event, EventKind};
use horsestream_sinks::kafka::{ClientOptions, KafkaConfig, TopicProducer, ensure_topics};
use rdkafka::producer::{BaseProducer, Producer};

const WAIT: Duration = Duration::from_secs(120);
const USER: &str = "horsestream";
const PASSWORD: &str = "kafka-tls-test-s3cret";

/// A broker of our own, killed (and waited for) when dropped.
struct OwnKafka {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for OwnKafka {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn java(libs: &Path) -> Command {
    let mut c = Command::new(std::env::var("HS_JAVA").unwrap_or_else(|_| "java".into()));
    c.arg("-cp").arg(format!("{}/*", libs.display()));
    c
}

impl OwnKafka {
    /// Starts the broker with `cert_chain` and `key` (PEM) on its SASL_SSL listener.
    fn start(cert_chain: &str, key: &str) -> OwnKafka {
        let libs = PathBuf::from(required_env("HORSESTREAM_HOME")).join("kafka/libs");
        let dir = tempfile::tempdir().unwrap();
        let (port, internal, controller) = (free_port(), free_port(), free_port());
        let keystore = dir.path().join("keystore.pem");
        std::fs::write(&keystore, format!("{key}{cert_chain}")).unwrap();
        let props = dir.path().join("server.properties");
        std::fs::write(
            &props,
            format!(
                "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs={data}
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}=\"{PASSWORD}\";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={keystore}
",
                data = dir.path().join("data").display(),
                keystore = keystore.display(),
            ),
        )
        .unwrap();
        let id = java(&libs)
            .args(["kafka.tools.StorageTool", "random-uuid"])
            .output()
            .unwrap();
        assert!(
            id.status.success(),
            "{}",
            String::from_utf8_lossy(&id.stderr)
        );
        let id = String::from_utf8(id.stdout).unwrap().trim().to_owned();
        let format = java(&libs)
            .args([
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                &id,
                "-c",
            ])
            .arg(&props)
            .output()
            .unwrap();
        assert!(
            format.status.success(),
            "format: {}{}",
            String::from_utf8_lossy(&format.stdout),
            String::from_utf8_lossy(&format.stderr)
        );
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let child = Command::new(std::env::var("HS_JAVA").unwrap_or_else(|_| "java".into()))
            .args(["-Xmx384m", "-Xms384m", "-Djava.awt.headless=true", "-cp"])
            .arg(format!("{}/*", libs.display()))
            .arg("kafka.Kafka")
            .arg(&props)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        OwnKafka { dir, child, port }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

fn options(pairs: &[(&str, &str)]) -> ClientOptions {
    let mut o = ClientOptions::default();
    for (k, v) in pairs {
        o.set(k, v).unwrap();
    }
    o
}

/// Whether a client with `o` gets the broker's metadata.
fn metadata(brokers: &str, o: ClientOptions) -> Result<usize, String> {
    let mut k = KafkaConfig::new(brokers);
    k.client_options = o;
    let p: BaseProducer = k.client_config().create().map_err(|e| e.to_string())?;
    p.client()
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|m| m.brokers().len())
        .map_err(|e| e.to_string())
}

#[test]
fn sasl_ssl_with_a_generated_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("horsestream test CA");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "horsestream kafka");
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
    let other_pem = dir.path().join("other.pem");
    std::fs::write(&other_pem, new_ca("some other CA").cert.pem()).unwrap();
    let kafka = OwnKafka::start(&leaf.pem(), &key.serialize_pem());
    let brokers = kafka.brokers();
    let ca_path = ca_pem.to_str().unwrap();
    let good = options(&[
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", ca_path),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", USER),
        ("sasl.password", PASSWORD),
    ]);

    // The broker is up once a client with the right settings gets its metadata.
    let deadline = Instant::now() + WAIT;
    while metadata(&brokers, good.clone()) != Ok(1) {
        assert!(
            Instant::now() < deadline,
            "the TLS broker never answered:\n{}",
            kafka.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Refused: a wrong password, a CA that did not sign the certificate, plaintext.
    let mut wrong_password = good.clone();
    wrong_password
        .set("sasl.password", "not-the-password")
        .unwrap();
    let mut wrong_ca = good.clone();
    wrong_ca
        .set("ssl.ca.location", other_pem.to_str().unwrap())
        .unwrap();
    for (what, o) in [
        ("wrong password", wrong_password),
        ("another CA", wrong_ca),
        ("plaintext", ClientOptions::default()),
    ] {
        let r = metadata(&brokers, o);
        assert!(r.is_err(), "{what}: {r:?}");
    }

    // Topics, a produced event, and the API binary consuming it over SASL_SSL.
    let mut k = KafkaConfig::new(&brokers);
    k.client_options = good;
    let name = unique("kafka-tls");
    k.chunks_topic = format!("{name}.chunks");
    k.events_topic = format!("{name}.events");
    k.partitions = 1;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ensure_topics(&k)).unwrap();

    let metrics_port = free_port();
    let mut api = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args([
            "api",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
            "--brokers",
            &brokers,
            "--events-topic",
            &k.events_topic,
            "--kafka-security-protocol",
            "sasl_ssl",
            "--kafka-ssl-ca-location",
            ca_path,
            "--kafka-sasl-mechanism",
            "PLAIN",
            "--kafka-sasl-username",
            USER,
        ])
        .env("HORSESTREAM_KAFKA_SASL_PASSWORD", PASSWORD)
        .env(
            "HORSESTREAM_JWT_SECRET",
            "a-kafka-tls-test-secret-of-32-bytes-or-more",
        )
        .env("HORSESTREAM_LOG", "debug,librdkafka=debug,rdkafka=debug")
        .env_remove("HORSESTREAM_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(&mut api);
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    let pipe = guard.0.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("horsestream: api listening on http://") {
                let _ = tx.send(rest.parse().unwrap());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let addr = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("api did not start:\n{}", log.lock().unwrap()));
    let deadline = Instant::now() + WAIT;
    while get(addr, "/api/v1/ready").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the API never read the events topic over SASL_SSL:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let producer = TopicProducer::new(&k, &k.events_topic).unwrap();
    let event = Event {
        version: 1,
        emitted_at_us: 1,
        kind: EventKind::ChunkProcessed(ChunkProcessed {
            stream_id: "tls-paddock".into(),
            chunk_id: "tls-paddock:0".into(),
            sequence: 0,
            frames: 20,
            detections: 1,
            max_horses_per_frame: 1,
            start_pts_us: 0,
            end_pts_us: 2_000_000,
        }),
    };
    rt.block_on(producer.send(event.stream_id(), &event.encode_to_vec()))
        .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(metrics, "/metrics");
        if status == 200
            && body
                .lines()
                .any(|l| l == "horsestream_api_events_received_total 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "event not received:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = log.lock().unwrap().clone();
    assert!(!log.contains(PASSWORD), "the SASL password is in the log");
    drop(guard);
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over plain HTTP; (status, body), status 0 without an answer.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let status = buf.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}
