//! The two real stores every REST test runs against: SQLite in a temporary directory and the
//! TimescaleDB server at `HORSESTREAM_DATABASE_URL` (started by `scripts/services.sh`), in a
//! database of its own (`<name>_api_tests`, created on first use) so that the schema is this
//! tree's migrations even while another checkout has applied newer ones to the main database.
//! Tests use unique stream ids, so they share that database safely in parallel.

use horsestream_api::AppState;
use horsestream_sinks::{NewStream, Store};

/// `(backend name, store, the tempdir keeping SQLite alive)`.
pub async fn stores() -> Vec<(&'static str, Store, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("SQLite store");
    let url = std::env::var("HORSESTREAM_DATABASE_URL").expect(
        "HORSESTREAM_DATABASE_URL must name the test TimescaleDB: eval \"$(bash scripts/services.sh env)\"",
    );
    let pg = Store::connect(&api_test_database(&url).await)
        .await
        .expect("TimescaleDB store");
    vec![("sqlite", sqlite, Some(dir)), ("postgres", pg, None)]
}

/// A stream id no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A stopped file stream `id` without credentials, calibration or zones.
pub fn file_stream(id: &str) -> NewStream {
    NewStream {
        id: id.into(),
        name: format!("{id} paddock"),
        source_url: "file:///data/paddock.mp4".into(),
        source_kind: "file".into(),
        credentials_secret: None,
        calibration: None,
        zones: Vec::new(),
        enabled: false,
    }
}

pub fn state_with_store(store: &Store) -> AppState {
    super::state().with_store(store.clone())
}

/// `url` with its database renamed `<name>_api_tests`, created when missing.
async fn api_test_database(url: &str) -> String {
    use sqlx::Connection;
    let (server, name) = url.rsplit_once('/').expect("postgres://host/db");
    let name = name.split('?').next().unwrap();
    let test_db = format!("{name}_api_tests");
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test server");
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&test_db)
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    if exists.is_none() {
        // Parallel tests may race here: "already exists" is success.
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{test_db}\""
        )))
        .execute(&mut conn)
        .await;
    }
    format!("{server}/{test_db}")
}
