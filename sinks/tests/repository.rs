//! The repository suite: every test function runs against TimescaleDB (from
//! `HORSESTREAM_DATABASE_URL`, started by `scripts/services.sh start`) and against the
//! embedded SQLite store. Ids are unique per run, so reruns on the shared database never collide.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use horsestream_proto::{Frame, FrameChunk, FrameEncoding, Keypoint, ProcessedChunk, testing};
use horsestream_sinks::store::DetectionQuery;
use horsestream_sinks::{
    AlertQuery, AlertRules, Calibration, DetectionProblem, EMBEDDING_DIM, GALLERY_LIMIT, GaitJoint,
    GaitPose, GaitRow, HorseObservation, HorseSighting, HorseTotalsRow, NewAlert, NewStream,
    NewUser, RetentionJob, Role, Severity, SinkError, Store, StreamPatch, Zone,
};

/// A name no other test, run or process uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

struct Backend {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn postgres() -> Backend {
    let url = std::env::var("HORSESTREAM_DATABASE_URL").expect(
        "HORSESTREAM_DATABASE_URL is not set: the repository suite needs the real TimescaleDB. \
         Run `scripts/services.sh start` and `eval \"$(scripts/services.sh env)\"` first.",
    );
    let store = Store::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to HORSESTREAM_DATABASE_URL={url}: {e}"));
    Backend { store, _dir: None }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Backend {
        store: Store::connect(&url).await.unwrap(),
        _dir: Some(dir),
    }
}

/// Runs each listed `async fn(&Store)` once per backend, as `postgres::name` and `sqlite::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let b = super::postgres().await;
                    super::$name(&b.store).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let b = super::sqlite().await;
                    super::$name(&b.store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    stream_crud,
    alert_rules_default_and_change_per_stream,
    unknown_ids_are_not_found,
    same_chunk_written_three_times_is_stored_once,
    chunk_replayed_after_its_row_aged_out_is_stored_once,
    chunk_with_bad_detection_is_rejected_whole,
    keypoints_and_interpolation_are_stored_with_their_detections,
    gait_windows_are_idempotent_and_need_a_known_stream,
    horses_are_numbered_and_widened_by_sightings,
    observed_horses_are_kept_by_number_and_replays_change_nothing,
    horse_totals_move_only_forward_and_go_with_their_horse,
    the_gallery_keeps_the_newest_features,
    a_chunk_of_an_unknown_stream_is_refused,
    ingested_chunks_turn_processed_and_status_reports_respect_stops,
    degraded_chunks_stay_until_analysed,
    nearest_horse_finds_the_closest_gallery,
    alerts_deduplicate_and_acknowledge_once,
    users_are_unique_by_name,
    retention_drops_rows_older_than_the_age,
    retention_job_runs_at_start_and_stops,
);

fn at(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap()
}

fn new_stream(id: &str) -> NewStream {
    NewStream {
        id: id.to_owned(),
        name: "Paddock north".into(),
        source_url: "rtsp://cam-3.local:554/stream1".into(),
        source_kind: "rtsp".into(),
        credentials_secret: Some("user:s3cret".into()),
        calibration: Some(Calibration::PixelsPerMetre(42.5)),
        zones: vec![Zone {
            name: "water".into(),
            polygon: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]],
        }],
        enabled: true,
    }
}

async fn stream(store: &Store) -> String {
    let id = unique("stream");
    store.create_stream(&new_stream(&id)).await.unwrap();
    id
}

/// Chunk `sequence` (10 s each) of a stream that started at `start_us`.
fn chunk(
    stream_id: &str,
    sequence: u64,
    start_us: i64,
    boxes_per_frame: &[usize],
) -> ProcessedChunk {
    let first_pts = sequence as i64 * 10_000_000;
    testing::chunk(
        stream_id,
        sequence,
        start_us,
        first_pts,
        10_000_000,
        boxes_per_frame,
    )
}

fn box_count(frames: &[horsestream_sinks::FrameRow]) -> usize {
    frames.iter().map(|f| f.boxes.len()).sum()
}

async fn stream_crud(store: &Store) {
    let id = unique("crud");
    let created = store.create_stream(&new_stream(&id)).await.unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.status, "stopped");
    assert!(created.has_credentials);
    assert_eq!(created.calibration, Some(Calibration::PixelsPerMetre(42.5)));
    assert_eq!(created.zones.len(), 1);
    assert_eq!(store.get_stream(&id).await.unwrap(), created);
    assert!(store.list_streams().await.unwrap().contains(&created));
    assert_eq!(
        store.stream_credentials(&id).await.unwrap().as_deref(),
        Some("user:s3cret")
    );

    let again = store.create_stream(&new_stream(&id)).await.unwrap_err();
    assert!(
        matches!(again, SinkError::Conflict { what: "stream", .. }),
        "{again}"
    );

    let homography = [[0.01, 0.0, -3.0], [0.0, 0.02, -1.0], [0.0, 0.0005, 1.0]];
    let updated = store
        .update_stream(
            &id,
            &StreamPatch {
                status: Some("live".into()),
                calibration: Some(Some(Calibration::Homography(homography))),
                credentials_secret: Some(None),
                enabled: Some(false),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.status, "live");
    assert_eq!(updated.name, created.name);
    assert_eq!(updated.zones, created.zones);
    assert_eq!(
        updated.calibration,
        Some(Calibration::Homography(homography))
    );
    assert!(!updated.enabled);
    assert!(!updated.has_credentials);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.stream_credentials(&id).await.unwrap(), None);
    assert_eq!(store.get_stream(&id).await.unwrap(), updated);

    let bad = StreamPatch {
        calibration: Some(Some(Calibration::PixelsPerMetre(-1.0))),
        ..StreamPatch::default()
    };
    let err = store.update_stream(&id, &bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::Invalid {
                what: "calibration",
                ..
            }
        ),
        "{err}"
    );

    store.delete_stream(&id).await.unwrap();
    let gone = store.get_stream(&id).await.unwrap_err();
    assert!(
        matches!(gone, SinkError::NotFound { what: "stream", .. }),
        "{gone}"
    );
    assert!(
        !store
            .list_streams()
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == id)
    );
}

async fn unknown_ids_are_not_found(store: &Store) {
    let missing = unique("missing");
    let is_not_found = |e: SinkError, what: &str| match e {
        SinkError::NotFound { what: w, ref id } if w == what => {
            assert!(!e.is_retriable());
            id.clone()
        }
        other => panic!("expected unknown {what}, got {other:?}"),
    };
    assert_eq!(
        is_not_found(store.get_stream(&missing).await.unwrap_err(), "stream"),
        missing
    );
    is_not_found(
        store
            .update_stream(&missing, &StreamPatch::default())
            .await
            .unwrap_err(),
        "stream",
    );
    is_not_found(store.delete_stream(&missing).await.unwrap_err(), "stream");
    is_not_found(
        store.stream_credentials(&missing).await.unwrap_err(),
        "stream",
    );
    let sighting = HorseSighting {
        horse_id: None,
        stream_id: missing.clone(),
        time: Utc::now(),
        track_id: Some(1),
        colour: None,
    };
    is_not_found(store.upsert_horse(&sighting).await.unwrap_err(), "stream");
    is_not_found(store.get_horse(i64::MAX).await.unwrap_err(), "horse");
    let alert = NewAlert {
        time: Utc::now(),
        stream_id: missing.clone(),
        horse_id: None,
        kind: "fall".into(),
        severity: Severity::Critical,
        message: "horse down".into(),
        dedup_key: None,
    };
    is_not_found(store.insert_alert(&alert).await.unwrap_err(), "stream");
    is_not_found(
        store.acknowledge_alert(i64::MAX, "ops").await.unwrap_err(),
        "alert",
    );
    is_not_found(
        store
            .add_horse_feature(i64::MAX, Utc::now(), &vec![0.5; EMBEDDING_DIM])
            .await
            .unwrap_err(),
        "horse",
    );
}

async fn same_chunk_written_three_times_is_stored_once(store: &Store) {
    let id = stream(store).await;
    let c = chunk(&id, 4, 1_750_000_000_000_000, &[3, 0, 2, 1]);
    // A retry, a restart and a replay deliver the same chunk again.
    for _ in 0..3 {
        store.write_chunk(&c).await.unwrap();
    }
    let frames = store.frames(&id).await.unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(box_count(&frames), 6);
    let per_frame: Vec<usize> = frames.iter().map(|f| f.boxes.len()).collect();
    assert_eq!(per_frame, vec![3, 0, 2, 1]);
    // The builder's detection k is track k + 1 at x = 10 + 60k.
    assert_eq!(frames[0].track_ids, vec![Some(1), Some(2), Some(3)]);
    assert_eq!(frames[2].boxes[1]["x"], 70.0);
}

/// Retention removed the chunk's `video_chunks` row but not yet the hypertable chunk holding
/// its detections (it ends after the cutoff): a replay must neither fail nor duplicate.
/// Its rows live in 1996, after the 1995 cutoff of the other retention tests; its own pass
/// (cutoff 1996) would remove theirs, so it takes the same turn.
async fn chunk_replayed_after_its_row_aged_out_is_stored_once(store: &Store) {
    let _serial = RETENTION_SERIAL.lock().await;
    let id = stream(store).await;
    let start = Utc.with_ymd_and_hms(1996, 1, 1, 0, 0, 0).unwrap();
    let c = chunk(&id, 0, start.timestamp_micros(), &[2, 1]);
    store.write_chunk(&c).await.unwrap();
    store
        .drop_before(start + chrono::Duration::minutes(1))
        .await
        .unwrap();
    store.write_chunk(&c).await.unwrap();
    store.write_chunk(&c).await.unwrap();
    let frames = store.frames(&id).await.unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(box_count(&frames), 3);
}

/// A pose on the first detection of every frame: keypoint `j` at `(x + j, y + 0.5)`; the
/// second detection of every frame is an interpolated box.
fn posed(mut c: ProcessedChunk) -> ProcessedChunk {
    for f in &mut c.frames {
        if let Some(d) = f.detections.get_mut(1) {
            d.interpolated = true;
        }
        if let Some(d) = f.detections.first_mut() {
            d.keypoints = (0..17)
                .map(|j| Keypoint {
                    x: d.bbox.x + j as f32,
                    y: d.bbox.y + 0.5,
                    score: 0.25 + j as f32 / 100.0,
                })
                .collect();
        }
    }
    c
}

/// Keypoints and the `interpolated` flag go in with their detections on every write path (on
/// PostgreSQL the `COPY`, and the row-by-row merge when a chunk's detection keys outlived its
/// chunk row) and come back with them; a detection without pose reads back without keypoints. In 1996 under the
/// retention lock, as `chunk_replayed_after_its_row_aged_out_is_stored_once`.
async fn keypoints_and_interpolation_are_stored_with_their_detections(store: &Store) {
    let _serial = RETENTION_SERIAL.lock().await;
    let id = stream(store).await;
    let start = Utc.with_ymd_and_hms(1996, 1, 2, 0, 0, 0).unwrap();
    store
        .write_chunk(&posed(chunk(&id, 0, start.timestamp_micros(), &[2])))
        .await
        .unwrap();
    store
        .drop_before(start + chrono::Duration::minutes(1))
        .await
        .unwrap();
    // The chunk again with a second frame: its rows go in by the merge path on PostgreSQL.
    let again = posed(chunk(&id, 0, start.timestamp_micros(), &[2, 2]));
    store.write_chunk(&again).await.unwrap();
    let rows = store
        .detections(&DetectionQuery {
            stream_id: id.clone(),
            from: None,
            to: None,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let d = &again.frames[r.frame_index as usize].detections[r.det_index as usize];
        let want: Vec<[f32; 3]> = d.keypoints.iter().map(|k| [k.x, k.y, k.score]).collect();
        assert_eq!(
            r.keypoints, want,
            "frame {} detection {}",
            r.frame_index, r.det_index
        );
        assert_eq!(r.keypoints.len(), if r.det_index == 0 { 17 } else { 0 });
        assert_eq!(r.interpolated, r.det_index == 1);
    }
}

async fn chunk_with_bad_detection_is_rejected_whole(store: &Store) {
    let id = stream(store).await;
    let before = store.rejected_chunks();
    let mut c = chunk(&id, 0, 1_750_000_000_000_000, &[2, 2]);
    c.frames[1].detections[1].bbox.y = f32::NAN;
    let err = store.write_chunk(&c).await.unwrap_err();
    assert!(!err.is_retriable());
    match err {
        SinkError::InvalidChunk { chunk_id, problem } => {
            assert_eq!(chunk_id, c.chunk_id());
            assert!(matches!(
                problem,
                DetectionProblem::NotFinite {
                    frame: 1,
                    detection: 1,
                    field: "y"
                }
            ));
        }
        other => panic!("expected InvalidChunk, got {other:?}"),
    }
    c.frames[1].detections[1].bbox.y = 250_000.0;
    assert!(matches!(
        store.write_chunk(&c).await.unwrap_err(),
        SinkError::InvalidChunk {
            problem: DetectionProblem::OutOfRange { .. },
            ..
        }
    ));
    assert_eq!(store.rejected_chunks(), before + 2);
    assert!(
        store.frames(&id).await.unwrap().is_empty(),
        "nothing of a rejected chunk is written"
    );
}

fn gait_row(stream_id: &str, track_id: i64, t_us: i64, speed: f64) -> GaitRow {
    GaitRow {
        time: at(t_us),
        stream_id: stream_id.into(),
        track_id,
        horse_id: None,
        speed,
        acceleration: 0.25,
        unit: "metres_per_second".into(),
        stride_hz: Some(1.1),
        gait_class: "walk".into(),
        distance: 12.5,
        pose: None,
    }
}

/// What a window's poses gave: a hoof stride, three measured joints and one not seen.
fn gait_pose() -> GaitPose {
    let joint = |limb: &str, mean: Option<f64>, rom: Option<f64>, samples| GaitJoint {
        limb: limb.into(),
        mean_deg: mean,
        rom_deg: rom,
        samples,
    };
    GaitPose {
        samples: 38,
        hoof_stride_hz: Some(1.375),
        hoof_confidence: 0.875,
        joints: vec![
            joint("left_fore", Some(141.5), Some(40.25), 38),
            joint("right_fore", Some(139.0), Some(30.5), 38),
            joint("left_hind", Some(130.0), Some(29.75), 36),
            joint("right_hind", None, None, 3),
        ],
        symmetry_fore: Some(27.5),
        symmetry_hind: None,
    }
}

async fn gait_windows_are_idempotent_and_need_a_known_stream(store: &Store) {
    let id = stream(store).await;
    let t0 = 1_750_000_000_000_000;
    let mut rows: Vec<GaitRow> = (0..4)
        .map(|i| gait_row(&id, i % 2, t0 + i * 500_000, 1.5))
        .collect();
    // A window with pose metrics keeps them, one without has none.
    rows[0].pose = Some(gait_pose());
    for _ in 0..3 {
        store.write_gait(&rows).await.unwrap();
    }
    let stored = store.gait(&id).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0], rows[0]);
    assert_eq!(stored[1], rows[2]);

    // A replayed window with a horse assigned since and a corrected speed overwrites itself;
    // the same key twice in one batch keeps the last.
    let mut fixed = rows[0].clone();
    fixed.horse_id = Some(7);
    fixed.speed = 1.75;
    store
        .write_gait(&[rows[0].clone(), fixed.clone()])
        .await
        .unwrap();
    let stored = store.gait(&id).await.unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0], fixed);

    let unknown = unique("no-stream");
    let err = store
        .write_gait(&[gait_row(&id, 9, t0, 1.0), gait_row(&unknown, 1, t0, 1.0)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::NotFound { what: "stream", id } if *id == unknown),
        "{err}"
    );
    assert_eq!(
        store.gait(&id).await.unwrap().len(),
        4,
        "a refused batch writes nothing"
    );

    let err = store
        .write_gait(&[gait_row(&id, 1, t0, f64::NAN)])
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Invalid { .. }), "{err}");
    let mut bad = gait_row(&id, 1, t0, 1.0);
    let mut pose = gait_pose();
    pose.joints[1].rom_deg = Some(f64::INFINITY);
    bad.pose = Some(pose);
    let err = store.write_gait(&[bad]).await.unwrap_err();
    assert!(
        matches!(&err, SinkError::Invalid { reason, .. } if reason.contains("right_fore rom_deg")),
        "{err}"
    );
}

async fn horses_are_numbered_and_widened_by_sightings(store: &Store) {
    let id = stream(store).await;
    let t = |s: i64| at(1_750_000_000_000_000 + s * 1_000_000);
    let first = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: id.clone(),
            time: t(10),
            track_id: Some(3),
            colour: Some("bay".into()),
        })
        .await
        .unwrap();
    assert_eq!(first.display_name, "Horse_1");
    assert_eq!(first.track_ids, vec![3]);
    let second = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: id.clone(),
            time: t(11),
            track_id: None,
            colour: None,
        })
        .await
        .unwrap();
    assert_eq!(second.display_name, "Horse_2");
    assert!(second.track_ids.is_empty());

    for (time, track) in [(t(5), Some(8)), (t(30), Some(3)), (t(20), None)] {
        store
            .upsert_horse(&HorseSighting {
                horse_id: Some(first.id),
                stream_id: id.clone(),
                time,
                track_id: track,
                colour: None,
            })
            .await
            .unwrap();
    }
    let h = store.get_horse(first.id).await.unwrap();
    assert_eq!((h.first_seen, h.last_seen), (t(5), t(30)));
    assert_eq!(h.track_ids, vec![3, 8]);
    assert_eq!(h.colour.as_deref(), Some("bay"));
    let listed: Vec<String> = store
        .list_horses(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.display_name)
        .collect();
    assert_eq!(listed, vec!["Horse_1", "Horse_2"]);

    // A horse id from another stream is not this stream's horse.
    let other = stream(store).await;
    let err = store
        .upsert_horse(&HorseSighting {
            horse_id: Some(first.id),
            stream_id: other,
            time: t(40),
            track_id: None,
            colour: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, SinkError::NotFound { what: "horse", .. }),
        "{err}"
    );
}

/// Totals per unit round-trip exactly; totals that reach less far (a replay of older chunks)
/// leave newer ones alone; invalid totals are refused whole; deleting the stream (and so its
/// horses) deletes them.
async fn horse_totals_move_only_forward_and_go_with_their_horse(store: &Store) {
    let id = stream(store).await;
    let horse = store
        .observe_horse(&HorseObservation {
            stream_id: id.clone(),
            number: 1,
            first_seen: at(0),
            last_seen: at(9_000_000),
            track_ids: vec![4],
        })
        .await
        .unwrap();
    let totals = |through_s: i64, walk: f64| {
        vec![
            HorseTotalsRow {
                unit: "m_per_s".into(),
                windows: through_s,
                distance: 1.5 * walk + 0.1,
                seconds: [("walk".to_owned(), walk), ("trot".to_owned(), 2.25)].into(),
                through: at(through_s * 1_000_000),
            },
            HorseTotalsRow {
                unit: "px_per_s".into(),
                windows: 1,
                distance: 0.0,
                seconds: [("standstill".to_owned(), 1.0)].into(),
                through: at(through_s * 1_000_000),
            },
        ]
    };
    assert!(store.horse_totals(horse.id).await.unwrap().is_empty());
    store
        .put_horse_totals(horse.id, &totals(9, 6.75))
        .await
        .unwrap();
    assert_eq!(store.horse_totals(horse.id).await.unwrap(), totals(9, 6.75));
    // Older totals change nothing; newer ones replace them.
    store
        .put_horse_totals(horse.id, &totals(5, 3.0))
        .await
        .unwrap();
    assert_eq!(store.horse_totals(horse.id).await.unwrap(), totals(9, 6.75));
    store
        .put_horse_totals(horse.id, &totals(12, 9.5))
        .await
        .unwrap();
    assert_eq!(store.horse_totals(horse.id).await.unwrap(), totals(12, 9.5));
    let mut bad = totals(20, 1.0);
    bad[1].seconds.insert("walk".into(), f64::NAN);
    assert!(matches!(
        store.put_horse_totals(horse.id, &bad).await,
        Err(SinkError::Invalid { .. })
    ));
    assert_eq!(store.horse_totals(horse.id).await.unwrap(), totals(12, 9.5));
    store.delete_stream(&id).await.unwrap();
    assert!(store.horse_totals(horse.id).await.unwrap().is_empty());
}

async fn observed_horses_are_kept_by_number_and_replays_change_nothing(store: &Store) {
    let id = stream(store).await;
    let seen = |number, from, to, tracks: &[i64]| HorseObservation {
        stream_id: id.clone(),
        number,
        first_seen: at(from),
        last_seen: at(to),
        track_ids: tracks.to_vec(),
    };
    let two = store.observe_horse(&seen(2, 50, 60, &[7])).await.unwrap();
    assert_eq!(two.display_name, "Horse_2");
    let one = store.observe_horse(&seen(1, 10, 20, &[3])).await.unwrap();
    // A later chunk widens the times and adds a track; a replay of either changes nothing.
    store
        .observe_horse(&seen(1, 15, 40, &[3, 9]))
        .await
        .unwrap();
    store.observe_horse(&seen(1, 10, 20, &[3])).await.unwrap();
    let again = store
        .observe_horse(&seen(1, 15, 40, &[3, 9]))
        .await
        .unwrap();
    assert_eq!(again.id, one.id);
    assert_eq!((again.first_seen, again.last_seen), (at(10), at(40)));
    assert_eq!(again.track_ids, vec![3, 9]);
    assert_eq!(store.list_horses(&id).await.unwrap().len(), 2);
    // A horse created by the API side afterwards takes the next free number.
    let next = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: id.clone(),
            time: at(70),
            track_id: None,
            colour: None,
        })
        .await
        .unwrap();
    assert_eq!(next.display_name, "Horse_3");
    let err = store
        .observe_horse(&HorseObservation {
            stream_id: unique("nobody"),
            ..seen(1, 0, 1, &[])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, SinkError::NotFound { what: "stream", .. }),
        "{err}"
    );
    let err = store.observe_horse(&seen(4, 9, 1, &[])).await.unwrap_err();
    assert!(matches!(err, SinkError::Invalid { .. }), "{err}");
}

async fn the_gallery_keeps_the_newest_features(store: &Store) {
    let id = stream(store).await;
    let horse = store
        .observe_horse(&HorseObservation {
            stream_id: id.clone(),
            number: 1,
            first_seen: at(0),
            last_seen: at(1),
            track_ids: vec![1],
        })
        .await
        .unwrap();
    let extra = 5;
    for i in 0..GALLERY_LIMIT + extra {
        // Older features point along axis 0, the newest ones along axis 2.
        let axis = if i < extra { 0 } else { 2 };
        store
            .add_horse_feature(horse.id, at(i * 1_000_000), &embedding(axis, 0.0))
            .await
            .unwrap();
    }
    let best = store
        .nearest_horse(&id, &embedding(0, 0.0), 1)
        .await
        .unwrap();
    assert_eq!(best.len(), 1);
    assert!(
        best[0].distance > 0.9,
        "the oldest features were dropped: {best:?}"
    );
}

async fn a_chunk_of_an_unknown_stream_is_refused(store: &Store) {
    let id = unique("unregistered");
    let c = chunk(&id, 0, 1_750_000_000_000_000, &[1, 2]);
    let err = store.write_chunk(&c).await.unwrap_err();
    assert!(!err.is_retriable());
    assert!(
        matches!(err, SinkError::NotFound { what: "stream", .. }),
        "{err}"
    );
    store.create_stream(&new_stream(&id)).await.unwrap();
    store.write_chunk(&c).await.unwrap();
    assert_eq!(box_count(&store.frames(&id).await.unwrap()), 3);
    // A replay after the stream was deleted is refused too, though its chunk row is known.
    store.delete_stream(&id).await.unwrap();
    let err = store.write_chunk(&c).await.unwrap_err();
    assert!(
        matches!(err, SinkError::NotFound { what: "stream", .. }),
        "{err}"
    );
}

/// A unit vector along `axis`, slightly tilted towards `axis + 1`.
/// What ingest published for a processed chunk: the same stream, sequence, times and frames.
fn published(c: &ProcessedChunk) -> FrameChunk {
    FrameChunk {
        stream_id: c.stream_id.clone(),
        sequence: c.sequence,
        start_pts_us: c.start_pts_us,
        end_pts_us: c.end_pts_us,
        fps_num: 10,
        fps_den: 1,
        width: 640,
        height: 480,
        source: "test".into(),
        encoding: FrameEncoding::Jpeg,
        stream_start_time_us: c.stream_start_time_us,
        trace_id: String::new(),
        frames: c
            .frames
            .iter()
            .map(|f| Frame {
                index: f.index,
                pts_us: f.pts_us,
                capture_time_us: f.capture_time_us,
                data: vec![0xff, 0xd8],
            })
            .collect(),
    }
}

async fn ingested_chunks_turn_processed_and_status_reports_respect_stops(store: &Store) {
    let id = stream(store).await;
    let start = 1_750_000_000_000_000;
    let first = chunk(&id, 0, start, &[1, 2]);
    let second = chunk(&id, 1, start, &[0, 1]);
    let before = store.stats().await.unwrap().chunks;
    store.record_ingested(&published(&first)).await.unwrap();
    store.record_ingested(&published(&second)).await.unwrap();
    // Recorded twice (ingest retried the record): still one row.
    store.record_ingested(&published(&second)).await.unwrap();
    assert_eq!(
        store.chunk_statuses(&id).await.unwrap(),
        vec![(0, "ingested".to_owned()), (1, "ingested".to_owned())]
    );
    assert_eq!(store.last_chunk_sequence(&id).await.unwrap(), Some(1));
    assert_eq!(
        store.last_chunk_sequence(&unique("none")).await.unwrap(),
        None
    );
    // Ingested chunks are not results: no frames, not counted.
    assert!(store.frames(&id).await.unwrap().is_empty());

    store.write_chunk(&first).await.unwrap();
    let frames = store.frames(&id).await.unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(
        box_count(&frames),
        3,
        "the ingested row did not hold the boxes back"
    );
    // A late record of a processed chunk leaves it processed; a rewrite changes nothing.
    store.record_ingested(&published(&first)).await.unwrap();
    store.write_chunk(&first).await.unwrap();
    assert_eq!(box_count(&store.frames(&id).await.unwrap()), 3);
    assert_eq!(
        store.chunk_statuses(&id).await.unwrap(),
        vec![(0, "processed".to_owned()), (1, "ingested".to_owned())]
    );
    // The store's chunk count leaves the ingested chunk out (checked where this test is the
    // only writer: other tests write to the shared PostgreSQL at the same time).
    if matches!(store, Store::Sqlite(_)) {
        assert_eq!(store.stats().await.unwrap().chunks, before + 1);
    }
    // Ingest of an unregistered stream records nothing.
    let stranger = chunk(&unique("unregistered"), 0, start, &[1]);
    store.record_ingested(&published(&stranger)).await.unwrap();
    assert!(
        store
            .chunk_statuses(&stranger.stream_id)
            .await
            .unwrap()
            .is_empty()
    );

    // Status reports land while the stream is enabled ...
    assert!(store.report_stream_status(&id, "active").await.unwrap());
    assert!(
        !store.report_stream_status(&id, "active").await.unwrap(),
        "unchanged"
    );
    assert_eq!(store.get_stream(&id).await.unwrap().status, "active");
    // ... but not after a stop request, except the final `stopped`.
    store
        .update_stream(
            &id,
            &StreamPatch {
                enabled: Some(false),
                status: Some("stopped".into()),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(!store.report_stream_status(&id, "active").await.unwrap());
    assert_eq!(store.get_stream(&id).await.unwrap().status, "stopped");
    store.report_stream_status(&id, "stopped").await.unwrap();
    assert_eq!(store.get_stream(&id).await.unwrap().status, "stopped");
}

/// The dataflow's record of chunks it could not analyse (a model was down): `degraded` rows
/// that an analysis of the chunk later (a replay) turns `processed`, never the other way.
async fn degraded_chunks_stay_until_analysed(store: &Store) {
    let id = stream(store).await;
    let start = 1_700_000_000_000_000;
    let first = chunk(&id, 0, start, &[1, 2]);
    let second = chunk(&id, 1, start, &[1, 0]);
    // What the dataflow records of a degraded chunk: its frames, no detections.
    let bare = |c: &ProcessedChunk| {
        let mut c = c.clone();
        for f in &mut c.frames {
            f.detections.clear();
            f.embeddings.clear();
        }
        c
    };
    store.write_chunk(&first).await.unwrap();
    store.record_degraded(&bare(&first)).await.unwrap();
    store.record_degraded(&bare(&second)).await.unwrap();
    store.record_degraded(&bare(&second)).await.unwrap();
    assert_eq!(
        store.chunk_statuses(&id).await.unwrap(),
        vec![(0, "processed".to_owned()), (1, "degraded".to_owned())],
        "an analysed chunk stays processed; a degraded one is recorded once"
    );
    assert_eq!(box_count(&store.frames(&id).await.unwrap()), 3);
    // The replay analyses it: its boxes are stored and the row turns processed.
    store.write_chunk(&second).await.unwrap();
    assert_eq!(
        store.chunk_statuses(&id).await.unwrap(),
        vec![(0, "processed".to_owned()), (1, "processed".to_owned())]
    );
    assert_eq!(box_count(&store.frames(&id).await.unwrap()), 4);
    // A stream nobody registered gets no row.
    let stranger = chunk(&unique("unregistered"), 0, start, &[1]);
    store.record_degraded(&bare(&stranger)).await.unwrap();
    assert!(
        store
            .chunk_statuses(&stranger.stream_id)
            .await
            .unwrap()
            .is_empty()
    );
}

fn embedding(axis: usize, tilt: f32) -> Vec<f32> {
    let mut e = vec![0.0; EMBEDDING_DIM];
    e[axis] = 1.0;
    e[axis + 1] = tilt;
    e
}

async fn nearest_horse_finds_the_closest_gallery(store: &Store) {
    let id = stream(store).await;
    let now = Utc::now();
    let mut horses = Vec::new();
    for axis in [0, 10, 20] {
        let h = store
            .upsert_horse(&HorseSighting {
                horse_id: None,
                stream_id: id.clone(),
                time: now,
                track_id: None,
                colour: None,
            })
            .await
            .unwrap();
        for (i, tilt) in [0.05, 0.1, 0.2].into_iter().enumerate() {
            let time = now + chrono::Duration::milliseconds(i as i64);
            store
                .add_horse_feature(h.id, time, &embedding(axis, tilt))
                .await
                .unwrap();
            // The same feature again is kept once.
            store
                .add_horse_feature(h.id, time, &embedding(axis, tilt))
                .await
                .unwrap();
        }
        horses.push(h);
    }
    // Another stream's identical horse must not be found.
    let other = stream(store).await;
    let stranger = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: other,
            time: now,
            track_id: None,
            colour: None,
        })
        .await
        .unwrap();
    store
        .add_horse_feature(stranger.id, now, &embedding(10, 0.0))
        .await
        .unwrap();

    let found = store
        .nearest_horse(&id, &embedding(10, 0.0), 2)
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].horse_id, horses[1].id);
    assert_eq!(found[0].display_name, "Horse_2");
    let expected = 1.0 - 1.0 / (1.0f64 + 0.05 * 0.05).sqrt();
    assert!((found[0].distance - expected).abs() < 1e-4, "{found:?}");
    assert!((found[1].distance - 1.0).abs() < 1e-4, "{found:?}");
    assert!(found.iter().all(|m| m.horse_id != stranger.id));

    let all = store
        .nearest_horse(&id, &embedding(20, 0.2), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 3, "one match per horse");
    assert_eq!(all[0].horse_id, horses[2].id);
    assert!(all[0].distance.abs() < 1e-4);

    let err = store.nearest_horse(&id, &[1.0; 512], 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::Invalid {
                what: "embedding",
                ..
            }
        ),
        "{err}"
    );
}

async fn alerts_deduplicate_and_acknowledge_once(store: &Store) {
    let id = stream(store).await;
    let horse = store
        .upsert_horse(&HorseSighting {
            horse_id: None,
            stream_id: id.clone(),
            time: Utc::now(),
            track_id: None,
            colour: None,
        })
        .await
        .unwrap();
    let t0 = 1_750_000_000_000_000;
    let key = unique("alert-key");
    let raise = |i: i64, key: Option<String>| NewAlert {
        time: at(t0 + i * 1_000_000),
        stream_id: id.clone(),
        horse_id: Some(horse.id),
        kind: "lying_down".into(),
        severity: if i == 0 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        message: format!("Horse_1 lying down for {i} min"),
        dedup_key: key,
    };
    let first = store
        .insert_alert(&raise(0, Some(key.clone())))
        .await
        .unwrap();
    let replayed = store.insert_alert(&raise(0, Some(key))).await.unwrap();
    assert_eq!(replayed, first, "a replayed alert is stored once");
    let second = store.insert_alert(&raise(1, None)).await.unwrap();
    assert_ne!(second.id, first.id);

    let q = AlertQuery {
        stream_id: Some(id.clone()),
        ..AlertQuery::default()
    };
    let listed = store.list_alerts(&q).await.unwrap();
    assert_eq!(listed, vec![second.clone(), first.clone()], "newest first");

    let acked = store
        .acknowledge_alert(first.id, "vet-on-duty")
        .await
        .unwrap();
    assert_eq!(acked.acknowledged_by.as_deref(), Some("vet-on-duty"));
    let at_time = acked.acknowledged_at.expect("acknowledged");
    let again = store
        .acknowledge_alert(first.id, "someone-else")
        .await
        .unwrap();
    assert_eq!(again.acknowledged_by.as_deref(), Some("vet-on-duty"));
    assert_eq!(again.acknowledged_at, Some(at_time));

    let open = store
        .list_alerts(&AlertQuery {
            unacknowledged_only: true,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(open, vec![second]);

    let bad_horse = NewAlert {
        horse_id: Some(i64::MAX),
        ..raise(2, None)
    };
    let err = store.insert_alert(&bad_horse).await.unwrap_err();
    assert!(
        matches!(err, SinkError::NotFound { what: "horse", .. }),
        "{err}"
    );
}

async fn users_are_unique_by_name(store: &Store) {
    let name = unique("groom");
    let new = NewUser {
        username: name.clone(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::Manager,
    };
    let created = store.create_user(&new).await.unwrap();
    assert_eq!(
        (created.username.as_str(), created.role),
        (name.as_str(), Role::Manager)
    );
    assert!(
        !format!("{created:?}").contains("argon2"),
        "Debug hides the hash"
    );
    let found = store.find_user_by_username(&name).await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(found.password_hash, new.password_hash);
    assert_eq!(
        store
            .find_user_by_username(&unique("nobody"))
            .await
            .unwrap(),
        None
    );
    let err = store.create_user(&new).await.unwrap_err();
    assert!(
        matches!(err, SinkError::Conflict { what: "user", .. }),
        "{err}"
    );
}

/// A retention pass removes every stream's old rows, so the two retention tests must not run
/// at the same time on the shared database: one would drop the other's rows and its report
/// would count nothing.
static RETENTION_SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Old rows are put in 1990 and the cutoff in 1995 so that the pass (which removes every
/// stream's rows older than the cutoff) leaves the shared database's other data alone.
async fn retention_drops_rows_older_than_the_age(store: &Store) {
    let _serial = RETENTION_SERIAL.lock().await;
    let id = stream(store).await;
    let old_us = Utc
        .with_ymd_and_hms(1990, 3, 1, 12, 0, 0)
        .unwrap()
        .timestamp_micros();
    let recent_us = (Utc::now() - chrono::Duration::days(1)).timestamp_micros();
    store
        .write_chunk(&chunk(&id, 0, old_us, &[2, 1]))
        .await
        .unwrap();
    store
        .write_chunk(&chunk(&id, 1, recent_us, &[1, 1]))
        .await
        .unwrap();
    store
        .write_gait(&[
            gait_row(&id, 1, old_us, 1.0),
            gait_row(&id, 1, recent_us, 2.0),
        ])
        .await
        .unwrap();

    let cutoff = Utc.with_ymd_and_hms(1995, 1, 1, 0, 0, 0).unwrap();
    let age = (Utc::now() - cutoff).to_std().unwrap();
    let report = store.drop_older_than(age).await.unwrap();
    assert!(
        report.dropped_chunks + report.deleted_rows > 0,
        "{report:?}"
    );

    let frames = store.frames(&id).await.unwrap();
    let chunks: Vec<&str> = frames.iter().map(|f| f.chunk_id.as_str()).collect();
    let recent = format!("{id}:1");
    assert!(
        chunks.iter().all(|c| *c == recent),
        "old chunk gone: {chunks:?}"
    );
    assert_eq!(box_count(&frames), 2);
    let gait = store.gait(&id).await.unwrap();
    assert_eq!(gait.len(), 1);
    assert_eq!(gait[0].speed, 2.0);
    store.get_stream(&id).await.expect("streams are kept");
}

async fn retention_job_runs_at_start_and_stops(store: &Store) {
    let _serial = RETENTION_SERIAL.lock().await;
    let id = stream(store).await;
    let old_us = Utc
        .with_ymd_and_hms(1991, 6, 1, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    store
        .write_chunk(&chunk(&id, 0, old_us, &[1]))
        .await
        .unwrap();
    let age = (Utc::now() - Utc.with_ymd_and_hms(1995, 1, 1, 0, 0, 0).unwrap())
        .to_std()
        .unwrap();
    let job = RetentionJob::new(store.clone())
        .max_age(age)
        .every(Duration::from_secs(3600));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(job.run(async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store
        .frames(&id)
        .await
        .unwrap()
        .iter()
        .any(|f| !f.boxes.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "retention job never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
}

/// Ingest leases, on the embedded store: on the shared PostgreSQL other tests' enabled
/// streams would be claimed too (`tests/ingest_catalogue.rs` covers PostgreSQL with a
/// database of its own).
#[tokio::test]
async fn ingest_processes_split_streams_by_lease() {
    let b = sqlite().await;
    let store = &b.store;
    let ids: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    for id in &ids {
        let mut s = new_stream(id);
        s.enabled = id != "d";
        store.create_stream(&s).await.unwrap();
    }
    let lease = Duration::from_secs(60);
    let one = store.claim_streams("one", 2, lease).await.unwrap();
    assert_eq!((one.owned, one.pending), (vec!["a".into(), "b".into()], 1));
    let two = store.claim_streams("two", 2, lease).await.unwrap();
    assert_eq!((two.owned, two.pending), (vec!["c".into()], 0));
    // Renewing changes nothing; a disabled stream is released, an enabled one is free.
    let one = store.claim_streams("one", 2, lease).await.unwrap();
    assert_eq!(one.owned, vec!["a".to_owned(), "b".to_owned()]);
    store
        .update_stream(
            "b",
            &StreamPatch {
                enabled: Some(false),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    store
        .update_stream(
            "d",
            &StreamPatch {
                enabled: Some(true),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    let one = store.claim_streams("one", 2, lease).await.unwrap();
    assert_eq!((one.owned, one.pending), (vec!["a".into(), "d".into()], 0));
    // A process that stops renewing loses its streams when the lease runs out.
    let one = store
        .claim_streams("one", 2, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(one.owned.len(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let two = store.claim_streams("two", 10, lease).await.unwrap();
    assert_eq!(
        two.owned,
        vec!["a".to_owned(), "c".to_owned(), "d".to_owned()]
    );
    // Released streams are free at once.
    store
        .release_streams("two", &["c".to_owned()])
        .await
        .unwrap();
    let one = store.claim_streams("one", 2, lease).await.unwrap();
    assert_eq!((one.owned, one.pending), (vec!["c".into()], 0));
}

async fn alert_rules_default_and_change_per_stream(store: &Store) {
    let id = stream(store).await;
    let created = store.get_stream(&id).await.unwrap();
    assert_eq!(created.alert_rules, AlertRules::default());
    assert_eq!(created.alert_rules.no_movement_s, Some(600.0));

    let rules = AlertRules {
        no_movement_s: Some(90.0),
        lying_down_s: None,
        zone_exit: false,
    };
    let updated = store
        .update_stream(
            &id,
            &StreamPatch {
                alert_rules: Some(rules),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.alert_rules, rules);
    assert_eq!(updated.zones, created.zones, "other fields stay");
    assert_eq!(store.get_stream(&id).await.unwrap().alert_rules, rules);
    // A patch without rules keeps them.
    let renamed = store
        .update_stream(
            &id,
            &StreamPatch {
                name: Some("renamed".into()),
                ..StreamPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.alert_rules, rules);

    for bad in [0.0, -5.0, f64::NAN, f64::INFINITY, 90_000.0] {
        let err = store
            .update_stream(
                &id,
                &StreamPatch {
                    alert_rules: Some(AlertRules {
                        lying_down_s: Some(bad),
                        ..rules
                    }),
                    ..StreamPatch::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SinkError::Invalid {
                    what: "alert rules",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    assert_eq!(store.get_stream(&id).await.unwrap().alert_rules, rules);
}
