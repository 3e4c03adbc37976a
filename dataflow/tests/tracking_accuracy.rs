//! Tracking accuracy on a synthetic sequence with known ground truth, through the real
//! models: horse crops of `../shared/media/horses.jpg` (found by the detector itself) move
//! along known paths over a plain pasture; two of them cross, one walks behind a post for a
//! 2 s full occlusion, then leaves for 20 s and comes back. The frames go through the same
//! stages as the dataflow's (JPEG chunks of 10 s with 1 s overlap → detector + re-ID →
//! DeepSORT → horse identities), and the horse numbers are scored against the ground truth
//! with the project's MOT metrics: no identity switch, the returning horse keeps its number,
//! ID precision ≥ 0.95 and the goal of IDF1 ≥ 0.95 (measured values are printed).

use std::path::PathBuf;

use horsestream_dataflow::tracking::TrackerConfig;
use horsestream_dataflow::tracking::metrics::MotAccumulator;
use horsestream_dataflow::{Analyzer, ChunkAnalyzer, HorseConfig, StreamHorses, StreamTracks};
use horsestream_models::{ModelRegistry, ModelsConfig};
use horsestream_proto::{BoundingBox, Frame, FrameChunk, FrameEncoding};
use image::{Rgb, RgbImage, imageops};

const W: u32 = 960;
const H: u32 = 620;
const FPS: u32 = 10;
const SECONDS: u32 = 50;
const FRAMES: u32 = FPS * SECONDS;
/// Crops are scaled to this height.
const HORSE_H: u32 = 200;

fn shared_media() -> PathBuf {
    std::env::var_os("HORSESTREAM_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/media"))
}

fn iou(a: &BoundingBox, b: &BoundingBox) -> f32 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    inter / (a.w * a.h + b.w * b.h - inter)
}

/// Three horses made from the photo's detections, scaled to `HORSE_H` pixels high: the dark
/// horse in the middle of the photo, the grey horse standing apart on the right, and that
/// grey horse mirrored (a look-alike walking the other way). The white horse on the left is
/// not used: its box holds a second, half-hidden horse that would be an object the ground
/// truth does not know.
fn horse_crops(registry: &ModelRegistry) -> Vec<RgbImage> {
    let photo = image::open(shared_media().join("horses.jpg"))
        .expect("../shared/media/horses.jpg")
        .to_rgb8();
    let mut detector = registry.detector("yolox_nano").expect("detector");
    let mut found = Analyzer::detect(&mut detector, std::slice::from_ref(&photo))
        .expect("detecting on the photo")
        .remove(0);
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let boxes: Vec<BoundingBox> = found.iter().map(|f| f.bbox).collect();
    let apart = boxes
        .iter()
        .find(|b| {
            boxes
                .iter()
                .all(|o| std::ptr::eq(*b, o) || iou(b, o) == 0.0)
        })
        .expect("a horse standing apart in the photo");
    let third = photo.width() as f32 / 3.0;
    let middle = boxes
        .iter()
        .find(|b| !std::ptr::eq(*b, apart) && (third..2.0 * third).contains(&(b.x + b.w / 2.0)))
        .expect("a horse in the middle of the photo");
    let crop = |b: &BoundingBox| {
        let crop = imageops::crop_imm(
            &photo,
            b.x.max(0.0) as u32,
            b.y.max(0.0) as u32,
            b.w as u32,
            b.h as u32,
        )
        .to_image();
        let w = (crop.width() * HORSE_H / crop.height()).clamp(80, 360);
        imageops::resize(&crop, w, HORSE_H, imageops::FilterType::Triangle)
    };
    let grey = crop(apart);
    vec![crop(middle), imageops::flip_horizontal(&grey), grey]
}

/// Where horse `id` is at frame `t` (top-left corner), or `None` while it is away.
fn position(id: usize, t: u32, crop_w: u32) -> Option<(f32, f32)> {
    let s = t as f32 / FPS as f32;
    let travel = (W - crop_w) as f32;
    match id {
        // Left to right along the top lane, the whole time.
        0 => Some((travel * s / SECONDS as f32, 30.0)),
        // Right to left a little lower: crosses horse 0 half-way, their boxes overlapping.
        1 => Some((travel * (1.0 - s / SECONDS as f32), 140.0)),
        // The bottom lane: walks right behind the post (5–11 s), leaves at 15 s, comes back
        // at 35 s from the right and walks left.
        2 if s < 15.0 => Some((20.0 + 36.0 * s, 390.0)),
        2 if s >= 35.0 => Some((travel - 30.0 * (s - 35.0), 390.0)),
        _ => None,
    }
}

/// The post in the bottom lane: wide enough to hide horse 2 completely for 2 s.
fn post(crop_w: u32) -> (f32, f32) {
    let left = 20.0 + 36.0 * 7.0;
    (left, left + crop_w as f32 + 72.0)
}

/// The pasture: the photo itself, blurred until no horse in it is recognisable.
fn background() -> RgbImage {
    let photo = image::open(shared_media().join("horses.jpg"))
        .expect("../shared/media/horses.jpg")
        .to_rgb8();
    let small = imageops::resize(&photo, 193, 128, imageops::FilterType::Triangle);
    imageops::resize(
        &imageops::blur(&small, 8.0),
        W,
        H,
        imageops::FilterType::Triangle,
    )
}

/// The horses visible in a frame: (horse, box).
type Truth = Vec<(u64, BoundingBox)>;

/// Frame `t` and its ground truth: (horse, visible box) for horses at least 40 % visible.
fn frame(t: u32, crops: &[RgbImage], pasture: &RgbImage) -> (RgbImage, Truth) {
    let mut img = pasture.clone();
    let mut truth = Vec::new();
    for (id, crop) in crops.iter().enumerate() {
        let Some((x, y)) = position(id, t, crop.width()) else {
            continue;
        };
        imageops::overlay(&mut img, crop, x as i64, y as i64);
        let full = BoundingBox {
            x,
            y,
            w: crop.width() as f32,
            h: crop.height() as f32,
        };
        truth.push((id as u64, full));
    }
    // The post covers the bottom lane; what is behind it is not visible.
    let (p0, p1) = post(crops[2].width());
    for px in p0 as u32..p1 as u32 {
        for py in 380..H {
            img.put_pixel(px, py, Rgb([110, 80, 50]));
        }
    }
    let truth = truth
        .into_iter()
        .filter_map(|(id, b)| {
            if id != 2 {
                return Some((id, b));
            }
            // The part of horse 2 left and right of the post.
            let left = (p0.min(b.x + b.w) - b.x).max(0.0);
            let right = (b.x + b.w - p1.max(b.x)).max(0.0);
            let (x, w) = if left >= right {
                (b.x, left)
            } else {
                (p1.max(b.x), right)
            };
            (w >= 0.4 * b.w).then_some((id, BoundingBox { x, w, ..b }))
        })
        .collect();
    (img, truth)
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(img)
        .unwrap();
    out
}

#[test]
fn crossing_occluded_and_returning_horses_keep_their_identities() {
    let registry = ModelRegistry::from_config(&ModelsConfig::default()).expect("model registry");
    let crops = horse_crops(&registry);
    let pasture = background();

    let frames: Vec<(Vec<u8>, Truth)> = (0..FRAMES)
        .map(|t| {
            let (img, truth) = frame(t, &crops, &pasture);
            (jpeg(&img), truth)
        })
        .collect();

    let mut analyzer = ChunkAnalyzer::new(
        Box::new(
            registry
                .detector("yolox_nano")
                .expect("detector")
                .with_candidates(),
        ),
        8,
    )
    .with_embedder(Box::new(
        registry.embedder("reid_mobilenetv2").expect("re-ID model"),
    ));
    let mut tracks = StreamTracks::new(TrackerConfig::default());
    let mut horses = StreamHorses::new(HorseConfig::default(), |_| Default::default()).unwrap();

    let start_us = 1_767_000_000_000_000;
    let mut acc = MotAccumulator::new();
    let mut scored_until = None;
    // The returning horse's number before it left and after it came back.
    let (mut before_leaving, mut after_return) = (Vec::new(), Vec::new());
    // 10 s chunks starting every 9 s, as ingest cuts them.
    for sequence in 0u64.. {
        let first = sequence as u32 * 9 * FPS;
        if first >= FRAMES {
            break;
        }
        let last = (first + 10 * FPS).min(FRAMES);
        let chunk = FrameChunk {
            stream_id: "paddock".into(),
            sequence,
            start_pts_us: first as i64 * 100_000,
            end_pts_us: last as i64 * 100_000,
            fps_num: FPS,
            fps_den: 1,
            width: W,
            height: H,
            source: "synthetic".into(),
            encoding: FrameEncoding::Jpeg,
            stream_start_time_us: start_us,
            trace_id: String::new(),
            frames: (first..last)
                .enumerate()
                .map(|(i, t)| Frame {
                    index: i as u32,
                    pts_us: t as i64 * 100_000,
                    capture_time_us: start_us + t as i64 * 100_000,
                    data: frames[t as usize].0.clone(),
                })
                .collect(),
        };
        let mut processed = analyzer.process(&chunk).expect("analysis");
        tracks.process(&mut processed);
        let analysis = horses.process(&processed);
        for f in &processed.frames {
            let t = (f.pts_us / 100_000) as u32;
            if scored_until.is_some_and(|s| t <= s) {
                continue; // the overlap, scored with the previous chunk
            }
            scored_until = Some(t);
            let hyp: Vec<(u64, BoundingBox)> = f
                .detections
                .iter()
                .filter_map(|d| {
                    let number = analysis.horse_of_track.get(&d.track_id?)?;
                    Some((u64::from(*number), d.bbox))
                })
                .collect();
            let truth = &frames[t as usize].1;
            acc.update(truth, &hyp);
            // The hypothesis that explains horse 2, if one does.
            if let Some((_, gt)) = truth.iter().find(|(id, _)| *id == 2) {
                let best = hyp
                    .iter()
                    .filter(|(_, b)| iou(b, gt) >= 0.5)
                    .max_by(|a, b| iou(&a.1, gt).total_cmp(&iou(&b.1, gt)));
                if let Some((number, _)) = best {
                    if t < 15 * FPS {
                        before_leaving.push(*number);
                    } else {
                        after_return.push(*number);
                    }
                }
            }
        }
    }
    let s = acc.summary();
    let id_precision = s.idtp as f64 / (s.idtp + s.idfp) as f64;
    let id_recall = s.idtp as f64 / (s.idtp + s.idfn) as f64;
    eprintln!(
        "MOTA {:.3}, IDF1 {:.3} (ID precision {id_precision:.3}, ID recall {id_recall:.3}), \
         ID switches {}: {s:?}",
        s.mota, s.idf1, s.id_switches
    );
    assert!(s.gt > 1000, "{s:?}");
    // Identities: no horse ever changes its number (crossing, occlusion, return), and what
    // is reported as a horse is that horse.
    assert_eq!(s.id_switches, 0, "{s:?}");
    assert!(
        id_precision >= 0.95,
        "ID precision {id_precision:.3}: {s:?}"
    );
    // The goal. yolox_nano scores each pasted horse above its threshold in about
    // three frames of four: DeepSORT alone gave 0.857, with interpolation over short gaps
    // 0.930, and with the low-score candidates continuing confirmed tracks (ByteTrack's second
    // association) 0.986.
    assert!(s.idf1 >= 0.95, "IDF1 {:.3}: {s:?}", s.idf1);
    assert!(!before_leaving.is_empty() && !after_return.is_empty());
    let kept = |numbers: &[u64]| numbers.iter().all(|n| *n == numbers[0]);
    assert!(
        kept(&before_leaving),
        "horse 2 changed number: {before_leaving:?}"
    );
    assert!(
        kept(&after_return) && after_return[0] == before_leaving[0],
        "horse 2 left as {} and came back as {:?}",
        before_leaving[0],
        after_return
    );
}
