//! One chunk's trace across processes: ingest gives every chunk a trace id (in the chunk
//! header), and the spans of ingest (`ingest` > `encode`, `publish`) and of every dataflow
//! stage (`decode`, `detect`, `track`, `horses`, `sink`) carry it, as the logs of the two
//! processes show with `HORSESTREAM_LOG_SPANS=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use common::*;

/// Runs horsestream with the per-chunk spans logged as they close.
fn traced(args: &[String]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_horsestream"))
        .args(args)
        .env("HORSESTREAM_LOG", "warn,horsestream::trace=info")
        .env("HORSESTREAM_LOG_SPANS", "1")
        .output()
        .expect("running horsestream");
    assert!(
        out.status.success(),
        "horsestream {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A closed span as logged: its name and the fields of it and the spans around it.
#[derive(Debug)]
struct Closed {
    name: String,
    fields: BTreeMap<String, String>,
}

/// The spans closed in a log: lines `… INFO a{k=v …}:b{…}: horsestream::trace: close …`.
fn closed_spans(log: &str) -> Vec<Closed> {
    log.lines()
        .filter_map(|line| {
            let (head, _) = line.split_once(": horsestream::trace: close")?;
            let chain = head.split_once(" INFO ")?.1.trim_start();
            let mut names = Vec::new();
            let mut fields = BTreeMap::new();
            for span in split_top(chain, ':') {
                let (name, body) = match span.split_once('{') {
                    Some((n, b)) => (n, b.trim_end_matches('}')),
                    None => (span, ""),
                };
                names.push(name.to_owned());
                for kv in body.split(' ') {
                    if let Some((k, v)) = kv.split_once('=') {
                        fields.insert(k.to_owned(), v.trim_matches('"').to_owned());
                    }
                }
            }
            Some(Closed {
                name: names.pop()?,
                fields,
            })
        })
        .collect()
}

/// `s` split at `sep` outside braces.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[test]
fn one_chunk_shares_its_trace_id_from_ingest_to_the_sink() {
    let name = unique("trace");
    let k = fresh_topics(&name);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("t.db").display());
    register(&store, &name);
    let with_topics = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(topic_args(&k));
        all
    };
    let video = sample().0.to_str().unwrap().to_owned();
    let ingest = traced(&with_topics(&[
        "ingest",
        "--input",
        &video,
        "--stream-id",
        &name,
    ]));
    let dataflow = traced(&with_topics(&[
        "dataflow",
        "--database-url",
        &store,
        "--group-id",
        &name,
        "--until-end",
        "--no-reid",
    ]));
    let ingest = closed_spans(&String::from_utf8_lossy(&ingest.stderr));
    let dataflow = closed_spans(&String::from_utf8_lossy(&dataflow.stderr));

    // Ingest: one trace id per chunk, on the chunk's span and its encode and publish spans.
    let mut trace_of = BTreeMap::new();
    for s in ingest.iter().filter(|s| s.name == "ingest") {
        let id = s.fields["trace_id"].clone();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{s:?}"
        );
        trace_of.insert(s.fields["chunk_id"].clone(), id);
    }
    let chunks: Vec<String> = (0..3).map(|i| format!("{name}:{i}")).collect();
    assert_eq!(
        trace_of.keys().cloned().collect::<Vec<_>>(),
        chunks,
        "{ingest:?}"
    );
    let ids: BTreeSet<&String> = trace_of.values().collect();
    assert_eq!(ids.len(), 3, "trace ids are per chunk: {trace_of:?}");

    let stages = |spans: &[Closed], chunk: &str, trace: &str| -> BTreeSet<String> {
        spans
            .iter()
            .filter(|s| {
                s.fields.get("chunk_id").map(String::as_str) == Some(chunk)
                    && s.fields.get("trace_id").map(String::as_str) == Some(trace)
            })
            .map(|s| s.name.clone())
            .collect()
    };
    for chunk in &chunks {
        let trace = &trace_of[chunk];
        assert_eq!(
            stages(&ingest, chunk, trace),
            ["encode", "ingest", "publish"]
                .map(String::from)
                .into_iter()
                .collect(),
            "ingest spans of {chunk}"
        );
        assert_eq!(
            stages(&dataflow, chunk, trace),
            ["decode", "detect", "horses", "sink", "track"]
                .map(String::from)
                .into_iter()
                .collect(),
            "dataflow spans of {chunk} (trace {trace})"
        );
    }
    // No dataflow span of these chunks carries another trace id.
    for s in &dataflow {
        if let Some(chunk) = s.fields.get("chunk_id") {
            assert_eq!(s.fields.get("trace_id"), trace_of.get(chunk), "{s:?}");
        }
    }
}
