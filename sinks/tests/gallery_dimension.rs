//! The horse gallery's embedding size follows the re-ID model: a store reports the size its
//! gallery holds, refuses embeddings of another size, and `migrate_gallery` moves it to a new
//! model's size (deleting the old, incomparable embeddings, keeping the horses), on TimescaleDB
//! (the column's `vector(N)` type and its hnsw index) and on SQLite. The PostgreSQL case runs
//! in a database of its own: retyping the shared database's column would disturb every other
//! test.

use chrono::{DateTime, Utc};
use horsestream_sinks::{EMBEDDING_DIM, HorseSighting, NewStream, SinkError, Store};

/// A database created for this test and dropped after it.
struct OwnDatabase {
    admin: String,
    name: String,
    url: String,
}

impl OwnDatabase {
    async fn create() -> Self {
        let base = std::env::var("HORSESTREAM_DATABASE_URL").expect(
            "HORSESTREAM_DATABASE_URL is not set: run `scripts/services.sh start` and \
             `eval \"$(scripts/services.sh env)\"` first",
        );
        let (server, _) = base.rsplit_once('/').expect("a database URL with a path");
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let name = format!("gallery_{}_{nanos}", std::process::id());
        let admin = format!("{server}/postgres");
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        OwnDatabase {
            url: format!("{server}/{name}"),
            name,
            admin,
        }
    }

    async fn drop_it(self) {
        let pool = sqlx::PgPool::connect(&self.admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}

/// A unit vector of `dim` values along `axis`.
fn unit(dim: usize, axis: usize) -> Vec<f32> {
    let mut e = vec![0.0; dim];
    e[axis] = 1.0;
    e
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
}

async fn gallery_follows_the_model(url: &str) {
    let store = Store::connect(url).await.unwrap();
    assert_eq!(
        store.embedding_dim(),
        EMBEDDING_DIM,
        "a new store has the shipped size"
    );
    store
        .create_stream(&NewStream {
            id: "cam-1".into(),
            name: "cam-1".into(),
            source_url: "file:///videos/paddock.mp4".into(),
            source_kind: "file".into(),
            credentials_secret: None,
            calibration: None,
            zones: vec![],
            enabled: true,
        })
        .await
        .unwrap();
    let horse = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: "cam-1".into(),
            time: at(0),
            track_id: Some(1),
            colour: None,
        })
        .await
        .unwrap();
    for i in 0..2 {
        store
            .add_horse_feature(horse.id, at(i), &unit(EMBEDDING_DIM, i as usize))
            .await
            .unwrap();
    }
    // A smaller model's embedding does not fit the gallery.
    let refused = store
        .add_horse_feature(horse.id, at(5), &unit(512, 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            SinkError::Invalid {
                what: "embedding",
                ..
            }
        ),
        "{refused}"
    );

    // Migrating to 512 deletes the two old embeddings and keeps the horse.
    assert_eq!(store.migrate_gallery(512).await.unwrap(), 2);
    assert_eq!(store.embedding_dim(), 512);
    assert!(
        store
            .nearest_horse("cam-1", &unit(512, 0), 5)
            .await
            .unwrap()
            .is_empty(),
        "the old embeddings are gone"
    );
    store
        .add_horse_feature(horse.id, at(10), &unit(512, 7))
        .await
        .unwrap();
    assert!(
        store
            .add_horse_feature(horse.id, at(11), &unit(EMBEDDING_DIM, 7))
            .await
            .is_err(),
        "the old size no longer fits"
    );
    let found = store
        .nearest_horse("cam-1", &unit(512, 7), 1)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].horse_id, horse.id);
    assert!(found[0].distance < 1e-6, "{}", found[0].distance);
    assert_eq!(
        store.get_horse(horse.id).await.unwrap().display_name,
        horse.display_name
    );

    // Another connection reads the new size; migrating to it again changes nothing.
    let again = Store::connect(url).await.unwrap();
    assert_eq!(again.embedding_dim(), 512);
    assert_eq!(again.migrate_gallery(512).await.unwrap(), 0);
    assert_eq!(
        again
            .nearest_horse("cam-1", &unit(512, 7), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    for bad in [0, 100_000] {
        assert!(again.migrate_gallery(bad).await.is_err(), "{bad}");
    }
    assert_eq!(again.embedding_dim(), 512);
}

#[tokio::test]
async fn sqlite_gallery_follows_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    gallery_follows_the_model(&url).await;
}

#[tokio::test]
async fn postgres_gallery_follows_the_model() {
    let db = OwnDatabase::create().await;
    gallery_follows_the_model(&db.url).await;
    // The column is retyped and its hnsw index rebuilt.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (column,): (String,) = sqlx::query_as(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = 'horse_features'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(column, "vector(512)");
    let (index,): (String,) = sqlx::query_as(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'horse_features_embedding_hnsw'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        index.contains("hnsw") && index.contains("vector_cosine_ops"),
        "{index}"
    );
    pool.close().await;
    db.drop_it().await;
}
