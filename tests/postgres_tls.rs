//! PostgreSQL over TLS: a private TimescaleDB (`scripts/services.sh pg-start` with its own
//! HORSESTREAM_HOME and port) is given a server certificate signed by a CA this test generates
//! (rcgen) and `ssl = on`; the store connects with `sslmode=verify-full&sslrootcert=<CA>` (sqlx
//! with rustls), the session is encrypted (`pg_stat_ssl`), the `horsestream` binary does the
//! same through `--database-url`, and a CA that did not sign the server's certificate is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{error_line, free_port, horsestream, new_ca};
use sqlx::Row;

/// A PostgreSQL of our own, stopped when dropped.
struct OwnPostgres {
    home: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    fn start() -> Self {
        let pg = OwnPostgres {
            home: tempfile::tempdir().unwrap(),
            port: free_port(),
        };
        pg.services("pg-start");
        pg
    }

    fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/horsestream{params}",
            self.port
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.home.path().join("postgres/data")
    }

    fn services(&self, command: &str) {
        let out = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
            .arg(command)
            .env("HORSESTREAM_HOME", self.home.path())
            .env("HS_PG_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "services.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
            .arg("pg-stop")
            .env("HORSESTREAM_HOME", self.home.path())
            .env("HS_PG_PORT", self.port.to_string())
            .output();
    }
}

/// Whether the session of `url` is encrypted, per the server.
async fn session_ssl(url: &str) -> Result<bool, sqlx::Error> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let row = sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await?;
    let ssl: bool = row.get(0);
    pool.close().await;
    Ok(ssl)
}

#[test]
fn verify_full_against_a_generated_ca() {
    let pg = OwnPostgres::start();
    let certs = tempfile::tempdir().unwrap();

    // The server's certificate and key in its data directory, owned by the postgres user.
    let ca = new_ca("horsestream test CA");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "horsestream postgres");
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &ca.cert, &ca.key_pair).unwrap();
    let data = pg.data_dir();
    std::fs::write(data.join("server.crt"), leaf.pem()).unwrap();
    std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
    for f in ["server.crt", "server.key"] {
        let path = data.join(f);
        let ok = Command::new("chown")
            .args(["postgres:postgres", path.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
            && Command::new("chmod")
                .args(["600", path.to_str().unwrap()])
                .status()
                .unwrap()
                .success();
        assert!(ok, "cannot hand {f} to the postgres user");
    }
    let ca_pem = certs.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).unwrap();
    let other_pem = certs.path().join("other-ca.pem");
    std::fs::write(&other_pem, new_ca("some other CA").cert.pem()).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let plain = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&pg.url("?sslmode=disable"))
            .await
            .unwrap();
        for q in [
            "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
            "ALTER SYSTEM SET ssl_key_file = 'server.key'",
            "ALTER SYSTEM SET ssl = on",
        ] {
            sqlx::raw_sql(q).execute(&plain).await.unwrap();
        }
        let reloaded: bool = sqlx::query("SELECT pg_reload_conf()")
            .fetch_one(&plain)
            .await
            .unwrap()
            .get(0);
        assert!(reloaded);
        plain.close().await;
    });

    let verified = pg.url(&format!(
        "?sslmode=verify-full&sslrootcert={}",
        ca_pem.display()
    ));
    // The reload is asynchronous: wait until new sessions get TLS.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match rt.block_on(session_ssl(&verified)) {
            Ok(true) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "no TLS session after the reload: {other:?}"
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Without TLS the same server still answers, unencrypted: the URL decides.
    assert!(
        !rt.block_on(session_ssl(&pg.url("?sslmode=disable")))
            .unwrap()
    );

    // The store (migrations, queries) over the verified connection.
    rt.block_on(async {
        let store = horsestream_sinks::Store::connect(&verified)
            .await
            .expect("the store over TLS");
        assert!(store.list_streams().await.unwrap().is_empty());
    });

    // A CA that did not sign the server's certificate: refused, by sqlx and by the store.
    let wrong = pg.url(&format!(
        "?sslmode=verify-full&sslrootcert={}",
        other_pem.display()
    ));
    let e = rt
        .block_on(session_ssl(&wrong))
        .expect_err("a server certificate from another CA must be refused")
        .to_string();
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    assert!(
        rt.block_on(horsestream_sinks::Store::connect(&wrong))
            .is_err()
    );

    // The binary honours the URL's TLS settings as given on the command line.
    let out = horsestream(&[
        "stream",
        "add",
        "--id",
        "tls-paddock",
        "--url",
        "/nonexistent/video.mp4",
        "--database-url",
        &verified,
    ]);
    assert!(out.status.success(), "stream add: {}", error_line(&out));
    let out = horsestream(&[
        "stream",
        "add",
        "--id",
        "tls-paddock-2",
        "--url",
        "/nonexistent/video.mp4",
        "--database-url",
        &wrong,
    ]);
    assert!(
        !out.status.success(),
        "a wrong CA was accepted by the binary"
    );
    rt.block_on(async {
        let store = horsestream_sinks::Store::connect(&verified).await.unwrap();
        let ids: Vec<String> = store
            .list_streams()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["tls-paddock"]);
    });
}
