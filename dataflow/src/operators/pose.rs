//! The pose stage of `Detect`: when a stream's pose is on, every detection of a batch of frames
//! gets its keypoints from the pose model (RTMPose-style SimCC on affine crops,
//! `horsestream_models::PoseEstimator`), the crops of the whole batch in one batched call.
//!
//! Which pose model a stream runs comes from a lookup (`--pose-model` for every stream, or the
//! pose model activated for the stream in `stream_models`), asked again every `refresh` so an
//! activation takes effect without a restart. A model is loaded on first use, once per worker
//! (one session per worker). A model that cannot be loaded — the optional pose weights are not
//! installed, which is the usual case — is logged once per process and its streams run without
//! pose; loading is tried again after `retry`. A failed pose call costs the batch its keypoints,
//! never its detections.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use horsestream_proto::{BoundingBox, FrameResult, Keypoint, MAX_KEYPOINT_COORD, MAX_KEYPOINTS};
use image::RgbImage;

/// Something that finds the keypoints of boxes on frames: the pose model in production.
pub trait EstimatePose {
    /// One pose per `(frame, box)`, in order; each pose in the model's keypoint order.
    fn estimate(
        &mut self,
        crops: &[(&RgbImage, BoundingBox)],
    ) -> Result<Vec<Vec<Keypoint>>, String>;
}

impl EstimatePose for horsestream_models::PoseEstimator {
    fn estimate(
        &mut self,
        crops: &[(&RgbImage, BoundingBox)],
    ) -> Result<Vec<Vec<Keypoint>>, String> {
        let poses = self.estimate_crops(crops).map_err(|e| e.to_string())?;
        Ok(poses
            .into_iter()
            .map(|p| {
                p.keypoints
                    .into_iter()
                    .map(|k| Keypoint {
                        x: k.x,
                        y: k.y,
                        score: k.confidence,
                    })
                    .collect()
            })
            .collect())
    }
}

/// The pose model a stream runs (a manifest entry of task `pose`), `None` for no pose.
pub type SelectPose = Box<dyn FnMut(&str) -> Option<String>>;
/// Builds a session of the named pose model.
pub type LoadPose = Box<dyn FnMut(&str) -> Result<Box<dyn EstimatePose>, String>>;

/// How often a stream's pose model is looked up again.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(30);
/// How long after a failed load a model is tried again.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// A model this worker holds, or when to try loading it again.
enum Session {
    Ready(Box<dyn EstimatePose>),
    Unavailable { retry_at: Instant },
}

/// One worker's pose stage: per-stream model choice, one session per model.
pub struct PoseStage {
    select: SelectPose,
    load: LoadPose,
    /// Each stream's model and when it was looked up.
    streams: HashMap<String, (Option<String>, Instant)>,
    sessions: HashMap<String, Session>,
    refresh: Duration,
    retry: Duration,
}

impl std::fmt::Debug for PoseStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseStage")
            .field("streams", &self.streams)
            .field("refresh", &self.refresh)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Models whose load failure this process has logged (every worker tries; one logs).
static REPORTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl PoseStage {
    pub fn new(select: SelectPose, load: LoadPose) -> Self {
        PoseStage {
            select,
            load,
            streams: HashMap::new(),
            sessions: HashMap::new(),
            refresh: DEFAULT_REFRESH,
            retry: DEFAULT_RETRY,
        }
    }

    /// Looks a stream's model up again after `refresh`; tries a failed model again after
    /// `retry`.
    pub fn with_timing(mut self, refresh: Duration, retry: Duration) -> Self {
        self.refresh = refresh;
        self.retry = retry;
        self
    }

    /// The model `stream` runs now, looked up at its first chunk and every `refresh`.
    fn model_of(&mut self, stream: &str) -> Option<String> {
        let now = Instant::now();
        match self.streams.get(stream) {
            Some((model, at)) if now.duration_since(*at) < self.refresh => model.clone(),
            _ => {
                let model = (self.select)(stream);
                self.streams.insert(stream.to_owned(), (model.clone(), now));
                model
            }
        }
    }

    /// The session of `model`, loaded on first use; `None` while it cannot be loaded.
    fn session(&mut self, model: &str) -> Option<&mut Box<dyn EstimatePose>> {
        let now = Instant::now();
        let due = match self.sessions.get(model) {
            Some(Session::Ready(_)) => false,
            Some(Session::Unavailable { retry_at }) => now >= *retry_at,
            None => true,
        };
        if due {
            let session = match (self.load)(model) {
                Ok(s) => {
                    if REPORTED.lock().is_ok_and(|mut r| r.remove(model)) {
                        tracing::info!(model, "pose model loaded, keypoints resume");
                    }
                    Session::Ready(s)
                }
                Err(reason) => {
                    let first = match REPORTED.lock() {
                        Ok(mut reported) => reported.insert(model.to_owned()),
                        Err(_) => true,
                    };
                    if first {
                        tracing::warn!(model, %reason, retry_in = ?self.retry,
                            "pose model unavailable: its streams run without pose");
                    } else {
                        tracing::debug!(model, %reason, "pose model still unavailable");
                    }
                    Session::Unavailable {
                        retry_at: now + self.retry,
                    }
                }
            };
            self.sessions.insert(model.to_owned(), session);
        }
        match self.sessions.get_mut(model) {
            Some(Session::Ready(s)) => Some(s),
            _ => None,
        }
    }

    /// Sets the keypoints of every detection of `frames` (whose pixels are `images`, same
    /// order) when `stream` runs a pose model that is available; otherwise leaves them empty.
    /// Candidates too: the pose runs before the tracker decides which of them to keep, and
    /// every box that is kept has its pose, as the gait analysis expects.
    /// Whether the model ran (for its inference time).
    pub fn attach(
        &mut self,
        stream: &str,
        images: &[RgbImage],
        frames: &mut [FrameResult],
    ) -> bool {
        let Some(model) = self.model_of(stream) else {
            return false;
        };
        let crops: Vec<(&RgbImage, BoundingBox)> = frames
            .iter()
            .zip(images)
            .flat_map(|(f, image)| f.detections.iter().map(move |d| (image, d.bbox)))
            .collect();
        if crops.is_empty() {
            return false;
        }
        let Some(session) = self.session(&model) else {
            return false;
        };
        let poses = match session.estimate(&crops) {
            Ok(p) if p.len() == crops.len() => p,
            Ok(p) => {
                tracing::warn!(
                    model,
                    poses = p.len(),
                    boxes = crops.len(),
                    stream,
                    "pose model returned a pose count unlike the box count: batch left without pose"
                );
                return true;
            }
            Err(reason) => {
                tracing::warn!(model, %reason, stream, "pose failed: batch left without pose");
                return true;
            }
        };
        let detections = frames.iter_mut().flat_map(|f| f.detections.iter_mut());
        for (d, pose) in detections.zip(poses) {
            d.keypoints = if plausible(&pose) { pose } else { Vec::new() };
        }
        true
    }
}

/// Whether a pose can be stored and sent: at most [`MAX_KEYPOINTS`] keypoints, each a finite
/// point within [`MAX_KEYPOINT_COORD`] (what the wire and the stores accept). A model that gives
/// anything else loses that pose, not the chunk.
pub fn plausible(pose: &[Keypoint]) -> bool {
    let inside = |v: f32| v.is_finite() && v.abs() <= MAX_KEYPOINT_COORD;
    pose.len() <= MAX_KEYPOINTS
        && pose
            .iter()
            .all(|k| inside(k.x) && inside(k.y) && k.score.is_finite())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use horsestream_proto::Detection;

    use super::*;

    /// Puts one keypoint at each box's centre, scored by the frame's top-left red value;
    /// records the size of every call.
    struct Centres(Rc<RefCell<Vec<usize>>>);
    impl EstimatePose for Centres {
        fn estimate(
            &mut self,
            crops: &[(&RgbImage, BoundingBox)],
        ) -> Result<Vec<Vec<Keypoint>>, String> {
            self.0.borrow_mut().push(crops.len());
            Ok(crops
                .iter()
                .map(|(img, b)| {
                    vec![Keypoint {
                        x: b.x + b.w / 2.0,
                        y: b.y + b.h / 2.0,
                        score: f32::from(img.get_pixel(0, 0).0[0]),
                    }]
                })
                .collect())
        }
    }

    fn frame(index: u32, boxes: &[f32]) -> FrameResult {
        FrameResult {
            index,
            pts_us: 0,
            capture_time_us: 0,
            detections: boxes
                .iter()
                .map(|&x| Detection {
                    frame_index: index,
                    pts_us: 0,
                    class_id: 17,
                    confidence: 0.9,
                    bbox: BoundingBox {
                        x,
                        y: 10.0,
                        w: 20.0,
                        h: 40.0,
                    },
                    track_id: None,
                    keypoints: Vec::new(),
                    interpolated: false,
                    candidate: false,
                })
                .collect(),
            embeddings: Vec::new(),
        }
    }

    fn image(red: u8) -> RgbImage {
        RgbImage::from_pixel(4, 4, image::Rgb([red, 0, 0]))
    }

    /// A stage where stream `posed` runs model `m`, others none; loads counted.
    fn stage(calls: Rc<RefCell<Vec<usize>>>, loads: Rc<RefCell<u32>>, ok: bool) -> PoseStage {
        PoseStage::new(
            Box::new(|s| (s == "posed").then(|| "m".to_owned())),
            Box::new(move |name| {
                assert_eq!(name, "m");
                *loads.borrow_mut() += 1;
                if ok {
                    Ok(Box::new(Centres(calls.clone())) as Box<dyn EstimatePose>)
                } else {
                    Err("rtmpose-m_ap10k_256x256.onnx: optional model not installed".into())
                }
            }),
        )
    }

    #[test]
    fn one_call_per_batch_and_each_pose_on_its_own_detection() {
        let (calls, loads) = (Rc::default(), Rc::default());
        let mut p = stage(Rc::clone(&calls), Rc::clone(&loads), true);
        let mut frames = vec![frame(0, &[0.0, 100.0]), frame(1, &[]), frame(2, &[50.0])];
        assert!(p.attach("posed", &[image(1), image(2), image(3)], &mut frames));
        assert_eq!(
            *calls.borrow(),
            vec![3],
            "the batch's three crops in one call"
        );
        let got: Vec<(f32, f32)> = frames
            .iter()
            .flat_map(|f| &f.detections)
            .map(|d| (d.keypoints[0].x, d.keypoints[0].score))
            .collect();
        assert_eq!(got, vec![(10.0, 1.0), (110.0, 1.0), (60.0, 3.0)]);
        // The next batch reuses the worker's session.
        p.attach("posed", &[image(9)], &mut [frame(0, &[5.0])]);
        assert_eq!(*loads.borrow(), 1);
        assert_eq!(*calls.borrow(), vec![3, 1]);
    }

    #[test]
    fn a_stream_without_pose_is_left_alone() {
        let (calls, loads) = (Rc::default(), Rc::default());
        let mut p = stage(Rc::clone(&calls), Rc::clone(&loads), true);
        let mut frames = vec![frame(0, &[0.0])];
        assert!(!p.attach("plain", &[image(1)], &mut frames));
        assert!(frames[0].detections[0].keypoints.is_empty());
        assert_eq!((calls.borrow().len(), *loads.borrow()), (0, 0));
    }

    #[test]
    fn a_missing_model_leaves_detections_without_pose_and_is_retried_later() {
        let (calls, loads) = (Rc::default(), Rc::default());
        let mut p = stage(Rc::clone(&calls), Rc::clone(&loads), false)
            .with_timing(DEFAULT_REFRESH, Duration::from_secs(3600));
        for _ in 0..3 {
            let mut frames = vec![frame(0, &[0.0])];
            assert!(!p.attach("posed", &[image(1)], &mut frames));
            assert!(frames[0].detections[0].keypoints.is_empty());
        }
        assert_eq!(*loads.borrow(), 1, "not reloaded within the retry interval");
        // Retried at every batch once the interval is over (zero here).
        let loads = Rc::default();
        let mut p = stage(Rc::clone(&calls), Rc::clone(&loads), false)
            .with_timing(DEFAULT_REFRESH, Duration::ZERO);
        p.attach("posed", &[image(1)], &mut [frame(0, &[0.0])]);
        p.attach("posed", &[image(1)], &mut [frame(0, &[0.0])]);
        assert_eq!(*loads.borrow(), 2);
        assert!(calls.borrow().is_empty());
    }

    #[test]
    fn the_stream_lookup_is_cached_until_refresh() {
        let asked = Rc::new(RefCell::new(0u32));
        let a = Rc::clone(&asked);
        let mut p = PoseStage::new(
            Box::new(move |_| {
                *a.borrow_mut() += 1;
                None
            }),
            Box::new(|_| Err("unused".into())),
        )
        .with_timing(Duration::from_secs(3600), DEFAULT_RETRY);
        for _ in 0..3 {
            p.attach("s", &[image(1)], &mut [frame(0, &[0.0])]);
        }
        assert_eq!(*asked.borrow(), 1);
        p.refresh = Duration::ZERO;
        p.attach("s", &[image(1)], &mut [frame(0, &[0.0])]);
        assert_eq!(*asked.borrow(), 2);
    }

    #[test]
    fn implausible_poses_are_dropped_not_stored() {
        let k = |x: f32, score: f32| Keypoint { x, y: 1.0, score };
        assert!(plausible(&[k(1.0, 0.5), k(-3.0, 2.0)]));
        assert!(!plausible(&[k(f32::NAN, 0.5)]));
        assert!(!plausible(&[k(1.0, f32::INFINITY)]));
        assert!(!plausible(&[k(MAX_KEYPOINT_COORD * 2.0, 0.5)]));
        assert!(!plausible(&vec![k(1.0, 0.5); MAX_KEYPOINTS + 1]));
    }
}
