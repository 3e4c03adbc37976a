//! The cargo-fuzz harnesses (`fuzz/src/lib.rs`) on stable: each target's function over seeds
//! generated here and a bounded number of deterministic mutations of them (bit flips, byte
//! replacement with boundary values, insertions, deletions, truncation, splicing), so CI runs
//! the same checks libFuzzer runs for hours (docs/bad-input.md). No time limit is asserted:
//! the iteration count bounds the work. `HORSESTREAM_FUZZ_SEEDS=DIR` also writes the seeds to
//! `DIR/<target>/` as a starting corpus for `cargo fuzz run`.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use horsestream_proto::{Frame, FrameChunk, FrameEncoding};

/// Mutations per seed.
const ROUNDS: usize = 2000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input` (sometimes several stacked), with `others` to splice from.
fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = [0x00, 0xFF, 0x7F, 0x80, 0x01, b':', b'@', b'.'][rng.below(8)];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                out.drain(i..i + n);
            }
            4 => out.truncate(rng.below(len + 1)),
            5 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ if len > 8 => {
                // A varint-looking run: large lengths and values inside protobuf fields.
                let i = rng.below(len - 8);
                out[i..i + 8].copy_from_slice(&rng.next().to_le_bytes());
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

/// Runs `target` on every seed and `ROUNDS` mutations of each. The seeds in `accepted` must be
/// accepted (the others may be either), and so must some mutations (else the mutations never reach the code behind the
/// first check); returns how many mutations were accepted.
fn exercise(
    name: &str,
    seeds: Vec<Vec<u8>>,
    accepted: std::ops::Range<usize>,
    target: fn(&[u8]) -> bool,
) -> usize {
    if let Some(dir) = std::env::var_os("HORSESTREAM_FUZZ_SEEDS") {
        let dir = std::path::Path::new(&dir).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
    let mut rng = Rng(name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    }));
    let mut passed = 0;
    for (i, seed) in seeds.iter().enumerate() {
        let ok = target(seed);
        assert!(ok || !accepted.contains(&i), "{name} seed {i} was refused");
        for _ in 0..ROUNDS {
            passed += usize::from(target(&mutate(&mut rng, seed, &seeds)));
        }
    }
    assert!(passed > 0, "no mutation of the {name} seeds was accepted");
    passed
}

fn chunk_seed(encoding: FrameEncoding, frames: Vec<Vec<u8>>, w: u32, h: u32) -> Vec<u8> {
    FrameChunk {
        stream_id: "paddock-1".into(),
        sequence: 3,
        start_pts_us: 27_000_000,
        end_pts_us: 37_000_000,
        fps_num: 10,
        fps_den: 1,
        width: w,
        height: h,
        source: "rtsp://cam/stream".into(),
        encoding,
        stream_start_time_us: 1_795_000_000_000_000,
        trace_id: String::new(),
        frames: frames
            .into_iter()
            .enumerate()
            .map(|(i, data)| Frame {
                index: i as u32,
                pts_us: 27_000_000 + i as i64 * 100_000,
                capture_time_us: 1_795_000_027_000_000 + i as i64 * 100_000,
                data,
            })
            .collect(),
    }
    .encode_to_vec()
}

#[test]
fn chunk_decoding_and_validation_hold_on_mutated_chunks() {
    let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| (i * 7) as u8).collect();
    let jpeg = horsestream_ingest::encode_rgb_jpeg(&rgb, 4, 3, 80).unwrap();
    let seeds = vec![
        chunk_seed(FrameEncoding::Rgb24, vec![rgb.clone(), rgb.clone()], 4, 3),
        chunk_seed(FrameEncoding::Jpeg, vec![jpeg.clone(), jpeg], 4, 3),
        chunk_seed(FrameEncoding::Jpeg, Vec::new(), 16_384, 16_384),
        Vec::new(),
    ];
    exercise("chunk", seeds, 0..3, harness::chunk);
}

#[test]
fn source_url_parsing_never_shows_the_password() {
    let seeds: Vec<Vec<u8>> = [
        "\u{0}cam.local:554/stream1?transport=udp",
        "\u{2}0.0.0.0:1935/live/KEY",
        "\u{3}example.com/live/index.m3u8",
        "\u{4}www.youtube.com/watch?v=dQw4w9WgXcQ",
        "\u{0}[fe80::1]:8554/cam",
        "\u{0}/no-host",
        "rtsp://u:p@cam/x",
        "youtube:dQw4w9WgXcQ",
        "file:///tmp/horse.mp4",
        "https://user:pw@host:99999/p",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    exercise("source_url", seeds, 0..5, harness::source_url);
}

#[test]
fn auth_header_accepts_only_valid_hs256_access_tokens() {
    let valid = harness::valid_bearer();
    let (head, rest) = valid.split_once('.').unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        valid.clone().into_bytes(),
        valid.replacen("Bearer", "bearer", 1).into_bytes(),
        format!("Bearer eyJhbGciOiJub25lIn0.{rest}").into_bytes(),
        format!("{head}.e30.").into_bytes(),
        b"Basic YWRtaW46cHc=".to_vec(),
        b"Bearer ".to_vec(),
    ];
    exercise("auth_header", seeds, 0..2, harness::auth_header);
}

#[test]
fn detection_cursors_decode_or_are_invalid_cursor() {
    let seeds: Vec<Vec<u8>> = vec![
        harness::valid_cursor(1_795_000_000_000_000, "cam-1:3").into_bytes(),
        harness::valid_cursor(i64::MAX, "cam-1:0").into_bytes(),
        harness::valid_cursor(-1, "").into_bytes(),
        b"!!".to_vec(),
        Vec::new(),
    ];
    exercise("cursor", seeds, 0..1, harness::cursor);
}

#[test]
fn rest_json_bodies_are_accepted_or_answered_with_a_json_error() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"id":"cam-1","name":"Paddock","sourceUrl":"rtsp://10.0.0.5/s","sourceKind":"rtsp",
           "credentials":{"username":"u","password":"p"},"zones":[],"enabled":true}"#,
        r#"{"name":"North","credentials":null,"calibration":null,
           "alertRules":{"no_movement_s":600,"lying_down_s":null,"zone_exit":true}}"#,
        r#"{"displayName":"Bella"}"#,
        r#"{"model":"yolox_nano"}"#,
        r#"{"pan":0.5,"tilt":-1,"zoom":0,"timeoutMs":2000}"#,
        r#"{"name":"gate"}"#,
        r#"{"username":"admin","password":"' OR 1=1 --"}"#,
        r#"{"refreshToken":"abc.def.ghi"}"#,
        "{}",
        "[1, 2",
        r#"{"id": 1e400}"#,
        // Found by `cargo fuzz run rest_json`: JSON whose array is longer than a struct's
        // fields was answered 400 malformed_json.
        "[\"\",\" .,o\"]\n\r",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    exercise("rest_json", seeds, 0..9, harness::rest_json);
}
