//! `horsestream demo` on embedded defaults (in-process bus, SQLite store): the summary it
//! prints, and its refusal of bad input.

mod common;

use common::*;

#[test]
fn demo_processes_a_video_with_no_servers() {
    let (video, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("demo.db").display());
    let out = horsestream(&["demo", video.to_str().unwrap(), "--store", &store]);
    assert!(out.status.success(), "demo failed: {}", error_line(&out));
    let text = stdout(&out);
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line in {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(field("chunks"), 3);
    assert_eq!(field("frames"), 220);
    assert!(field("detections") >= 220, "{text}");
    assert!(field("horses") >= 3, "{text}");
    let identities = field("identities");
    assert!(
        (1..=field("horses")).contains(&identities),
        "every horse comes from a track, a track from a horse: {text}"
    );
    assert!(field("gait") > 0, "{text}");
    // Each chunk's summary and boxes, one update per horse per chunk, one per gait window.
    let events = text
        .lines()
        .find(|l| l.trim_start().starts_with("events"))
        .unwrap();
    assert!(events.contains("3 chunk:processed"), "{events}");
    assert!(events.contains("3 detection:update"), "{events}");
    assert!(
        events.contains(&format!("{} metrics:update", field("gait"))),
        "{events}"
    );
    // Every chunk's horses are tracked: a chunk that overtook the one before it found its
    // frames taken for already tracked and stored all its boxes without track ids.
    let frames = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = horsestream_sinks::Store::connect(&store).await.unwrap();
        store.frames("demo").await.unwrap()
    });
    let mut tracked = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for f in &frames {
        let e = tracked.entry(f.chunk_id.as_str()).or_default();
        e.0 += f.track_ids.len();
        e.1 += f.track_ids.iter().flatten().count();
    }
    assert_eq!(tracked.len(), 3, "{tracked:?}");
    assert!(
        tracked
            .values()
            .all(|&(boxes, with_id)| with_id * 2 > boxes),
        "chunk: (boxes, boxes with a track id) {tracked:?}"
    );
}

#[test]
fn demo_refuses_bad_files_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("demo.db").display());
    for (file, reason) in bad_files(dir.path()) {
        let path = file.display().to_string();
        let out = horsestream(&["demo", &path, "--store", &store]);
        assert!(!out.status.success(), "{path} was accepted");
        let line = error_line(&out);
        assert!(
            line.contains(&path) && line.contains(reason),
            "{path}: {line:?}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.lines().filter(|l| l.contains("error")).count(),
            1,
            "{stderr}"
        );
    }
}

/// A store whose horse gallery holds another size than the re-ID model gives is refused at
/// start-up with what to run; `horsestream gallery --migrate` moves it to the model's size.
#[test]
fn a_gallery_of_another_size_is_refused_until_migrated() {
    let (video, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("demo.db").display());
    let gallery = |extra: &[&str]| {
        let mut args = vec!["gallery", "--database-url", &store];
        args.extend_from_slice(extra);
        horsestream(&args)
    };
    let out = gallery(&["--migrate", "--dim", "512"]);
    assert!(out.status.success(), "{}", error_line(&out));
    assert!(
        stdout(&out).contains("now 512-value embeddings"),
        "{}",
        stdout(&out)
    );

    let out = horsestream(&["demo", video.to_str().unwrap(), "--store", &store]);
    assert!(!out.status.success(), "ran with a 512-value gallery");
    let line = error_line(&out);
    assert!(
        line.contains("gives 1280-value embeddings")
            && line.contains("holds 512-value ones")
            && line.contains("horsestream gallery --migrate"),
        "{line}"
    );

    let out = gallery(&["--migrate"]);
    assert!(out.status.success(), "{}", error_line(&out));
    assert!(
        stdout(&out).contains("now 1280-value embeddings"),
        "{}",
        stdout(&out)
    );
    let out = gallery(&[]);
    assert!(
        stdout(&out)
            .contains("gallery: 1280-value embeddings; re-ID model \"reid_mobilenetv2\": 1280"),
        "{}",
        stdout(&out)
    );
}
