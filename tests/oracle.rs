//! Oracle test: the same chunks through the dataflow with 1 worker, 2 workers, and 2 processes
//! of 1 worker each (a timely cluster over loopback) must give identical stored output: boxes
//! and track ids, horses with their gait totals, gait windows, and alerts (the stream has a
//! zone, so `zone_exit` fires).

mod common;

use std::process::{Command, Stdio};

use common::*;
use horsestream_sinks::kafka::KafkaConfig;

fn dataflow_args(k: &KafkaConfig, store: &str, group: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "dataflow",
        "--until-end",
        "--database-url",
        store,
        "--group-id",
        group,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(topic_args(k));
    args
}

#[test]
fn one_worker_two_workers_and_two_processes_store_the_same_rows() {
    let (name, k) = ingested_sample("oracle");

    let dir = tempfile::tempdir().unwrap();
    let store = |n: &str| {
        let url = format!("sqlite://{}", dir.path().join(n).display());
        register_with_zone(&url, &name);
        url
    };

    let mut runs = Vec::new();
    for workers in ["1", "2"] {
        let s = store(&format!("w{workers}.db"));
        let mut args = dataflow_args(&k, &s, &format!("{name}-w{workers}"));
        args.extend(["--workers".into(), workers.into()]);
        let out = horsestream(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", error_line(&out));
        runs.push((
            format!("{workers} worker(s)"),
            stored(&s, &name),
            (analysis(&s, &name), alerts(&s, &name)),
        ));
    }

    // Two processes, one worker each, forming one timely cluster.
    let hostfile = dir.path().join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let s = store("p2.db");
    // `store` created the schema before the two processes share the file: the embedded
    // store's migrations are not meant to race (TimescaleDB's are serialised by a lock).
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut args = dataflow_args(&k, &s, &format!("{name}-p2"));
            args.extend(
                [
                    "--workers",
                    "1",
                    "--processes",
                    "2",
                    "--process",
                    &p.to_string(),
                    "--hostfile",
                ]
                .iter()
                .map(|a| a.to_string()),
            );
            args.push(hostfile.display().to_string());
            Command::new(env!("CARGO_BIN_EXE_horsestream"))
                .args(&args)
                .env("HORSESTREAM_LOG", "error")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    runs.push((
        "2 processes x 1 worker".into(),
        stored(&s, &name),
        (analysis(&s, &name), alerts(&s, &name)),
    ));

    let (reference_name, reference, derived) = &runs[0];
    assert_eq!(
        reference.len(),
        220,
        "all frames stored by {reference_name}"
    );
    let ((horses, gait), alerts) = derived;
    assert!(!alerts.is_empty(), "{reference_name}: no alerts");
    assert!(horses.len() >= 3, "{reference_name}: horses {horses:?}");
    assert!(!gait.is_empty(), "{reference_name}: no gait windows");
    // Every gait window is in its horse's totals (compared across the runs below with the rest).
    let windows: i64 = horses.iter().flat_map(|h| &h.4).map(|t| t.windows).sum();
    assert_eq!(
        windows,
        gait.len() as i64,
        "{reference_name}: totals {horses:?}"
    );
    for (run, rows, d) in &runs[1..] {
        assert_eq!(rows, reference, "{run} differs from {reference_name}");
        assert_eq!(
            d, derived,
            "{run}'s horses, gait or alerts differ from {reference_name}'s"
        );
    }
}
