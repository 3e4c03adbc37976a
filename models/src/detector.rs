//! The detector: letterbox a batch of frames, one batched ort call, decode with the manifest's
//! head (YOLOX, YOLOv5 or YOLOv8), NMS, and map boxes back to source pixels. The three steps
//! are public so a bench can time them apart.

use std::fmt;
use std::path::PathBuf;

use horsestream_proto::BoundingBox;
use image::RgbImage;
use ndarray::{Array3, Array4, ArrayView3, ArrayView4, Axis};
use ort::session::Session;

use crate::ModelError;
use crate::heads::{ClassFilter, decode_output};
use crate::inference;
use crate::letterbox::{Letterbox, LetterboxSpec, letterbox_into};
use crate::manifest::{DetectionParams, Task};
use crate::nms::nms;
use crate::parallel::map_slots;
use crate::registry::{ExecutionProviderKind, LoadedModel};

/// One detection in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detected {
    pub class_id: u32,
    pub score: f32,
    /// Top-left `x, y` and `w, h`, clipped to the image.
    pub bbox: BoundingBox,
    /// Scored below the model's threshold but at least its `low_score_threshold`: only
    /// returned by a detector made [`Detector::with_candidates`].
    pub candidate: bool,
}

pub struct Detector {
    name: String,
    path: PathBuf,
    session: Session,
    execution_provider: ExecutionProviderKind,
    params: DetectionParams,
    spec: LetterboxSpec,
    input_name: String,
    output_name: String,
    /// The batch size the model fixes, if it does: batches then run whole.
    fixed_batch: Option<usize>,
    classes: ClassFilter,
    score_threshold: f32,
    /// Candidates down to this score are returned too (flagged), when set.
    candidate_threshold: Option<f32>,
    nms_iou: f32,
    /// Threads that letterbox a batch (as many as the session's).
    threads: usize,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("execution_provider", &self.execution_provider)
            .field("head", &self.params.head)
            .field("classes", &self.classes)
            .field("score_threshold", &self.score_threshold)
            .field("candidate_threshold", &self.candidate_threshold)
            .field("nms_iou", &self.nms_iou)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Wraps a loaded detection model; decodes its output with the manifest's `head` and
    /// reports the manifest's horse class with that model's score threshold and NMS IoU.
    pub fn new(model: LoadedModel) -> Result<Detector, ModelError> {
        let params = model.task_params(Task::Detection, |e| e.detection.as_ref())?;
        let entry = model.entry;
        Ok(Detector {
            spec: LetterboxSpec::from_detection(&params),
            classes: ClassFilter::Only(vec![params.horse_class_id]),
            score_threshold: params.score_threshold,
            candidate_threshold: None,
            nms_iou: params.nms_iou,
            input_name: entry.inputs[0].name.clone(),
            output_name: entry.outputs[0].name.clone(),
            fixed_batch: inference::fixed_batch(&entry),
            name: entry.name,
            path: model.path,
            session: model.session,
            execution_provider: model.execution_provider,
            threads: model.threads,
            params,
        })
    }

    pub fn with_classes(mut self, classes: ClassFilter) -> Detector {
        self.classes = classes;
        self
    }

    pub fn with_score_threshold(mut self, threshold: f32) -> Detector {
        self.score_threshold = threshold;
        self
    }

    /// Also returns the boxes between the manifest's `low_score_threshold` and the score
    /// threshold, flagged [`Detected::candidate`] (no change when the manifest sets none). They
    /// take part in NMS with the others, so a candidate never duplicates a detection.
    pub fn with_candidates(mut self) -> Detector {
        self.candidate_threshold = self
            .params
            .low_score_threshold
            .map(|low| low.min(self.score_threshold));
        self
    }

    pub fn with_nms_iou(mut self, iou: f32) -> Detector {
        self.nms_iou = iou;
        self
    }

    pub fn params(&self) -> &DetectionParams {
        &self.params
    }

    pub fn letterbox_spec(&self) -> &LetterboxSpec {
        &self.spec
    }

    /// The execution provider the session really runs on.
    pub fn execution_provider(&self) -> ExecutionProviderKind {
        self.execution_provider
    }

    /// Detections of the configured classes for each frame, from batched inference calls
    /// whose sizes are powers of two (one call for a batch of 8; [`pieces`](crate::pieces)).
    pub fn detect(&mut self, frames: &[RgbImage]) -> Result<Vec<Vec<Detected>>, ModelError> {
        let mut detected = Vec::with_capacity(frames.len());
        for piece in inference::calls(frames.len(), self.fixed_batch) {
            let (input, letterboxes) = self.preprocess(&frames[piece]);
            let raw = self.detect_tensor(input.view())?;
            detected.extend(self.postprocess(raw.view(), &letterboxes));
        }
        Ok(detected)
    }

    /// Letterboxes the frames into one `[N, 3, size, size]` batch, on the session's threads.
    pub fn preprocess(&self, frames: &[RgbImage]) -> (Array4<f32>, Vec<Letterbox>) {
        let s = self.spec.size as usize;
        let mut batch = Array4::<f32>::zeros((frames.len(), 3, s, s));
        let data = batch.as_slice_mut().expect("a fresh array is contiguous");
        let letterboxes = map_slots(
            self.threads,
            frames,
            data,
            self.spec.tensor_len(),
            |frame, slot| letterbox_into(frame, &self.spec, slot),
        );
        (batch, letterboxes)
    }

    /// Bare inference: `[N, 3, size, size]` letterboxed input → the raw output, shaped as the
    /// head lays it out ([`DetectionParams::output_shape`]).
    pub fn detect_tensor(&mut self, input: ArrayView4<'_, f32>) -> Result<Array3<f32>, ModelError> {
        let s = self.spec.size as usize;
        let expected = self.params.output_shape(input.shape()[0]);
        let outputs = inference::run(
            &mut self.session,
            &self.name,
            &self.input_name,
            input,
            [3, s, s],
        )?;
        Ok(inference::output(&outputs, &self.name, &self.output_name, &expected)?.to_owned())
    }

    /// Decodes raw output rows (one per letterbox), runs NMS, maps boxes to source pixels.
    pub fn postprocess(
        &self,
        raw: ArrayView3<'_, f32>,
        letterboxes: &[Letterbox],
    ) -> Vec<Vec<Detected>> {
        raw.axis_iter(Axis(0))
            .zip(letterboxes)
            .map(|(rows, lb)| {
                let rows = rows.as_standard_layout();
                let data = rows.as_slice().expect("standard layout is contiguous");
                let floor = self.candidate_threshold.unwrap_or(self.score_threshold);
                let candidates = decode_output(data, &self.params, &self.classes, floor);
                nms(candidates, self.nms_iou)
                    .into_iter()
                    .map(|c| Detected {
                        class_id: c.class_id,
                        score: c.score,
                        bbox: lb.to_source(c.x1, c.y1, c.x2, c.y2),
                        candidate: c.score < self.score_threshold,
                    })
                    .filter(|d| d.bbox.w > 0.0 && d.bbox.h > 0.0)
                    .collect()
            })
            .collect()
    }
}
