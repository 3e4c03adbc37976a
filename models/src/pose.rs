//! Top-down pose estimation with an RTMPose-style SimCC model: each box becomes an affine crop
//! of the model's input size (`pose/affine.rs`), all crops go through ONE batched ort call (in
//! chunks of at most `max_batch`), the SimCC vectors are decoded (`pose/simcc.rs`) and the
//! keypoints mapped back through the inverse affine to source pixels.

pub mod affine;
pub mod simcc;

use std::fmt;

use horsestream_proto::BoundingBox;
use image::RgbImage;
use ndarray::{Array3, Array4, ArrayView3, ArrayView4};
use ort::session::Session;

use crate::ModelError;
use crate::inference;
use crate::manifest::{PoseParams, Task};
use crate::normalize::PixelNorm;
use crate::registry::{ExecutionProviderKind, LoadedModel};
use affine::{Affine, crop_region, warp_bilinear, warp_matrix};

/// AP-10K's 17 keypoints in the order of its annotations (mmpose `ap10k.py`): the order of the
/// embedded manifest's `rtmpose_ap10k` outputs.
pub const AP10K_KEYPOINTS: [&str; 17] = [
    "left_eye",
    "right_eye",
    "nose",
    "neck",
    "root_of_tail",
    "left_shoulder",
    "left_elbow",
    "left_front_paw",
    "right_shoulder",
    "right_elbow",
    "right_front_paw",
    "left_hip",
    "left_knee",
    "left_back_paw",
    "right_hip",
    "right_knee",
    "right_back_paw",
];

/// Crops per inference call unless [`PoseEstimator::with_max_batch`] says otherwise.
pub const DEFAULT_MAX_BATCH: usize = 32;

/// One keypoint in source-image pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    /// The model's raw SimCC confidence, `min(max simcc_x, max simcc_y)`. Not a probability:
    /// RTMPose's are mostly in 0–1 but may exceed 1; `<= 0` means not located (mmpose).
    pub confidence: f32,
}

impl Keypoint {
    /// Whether the model located the keypoint at all (`confidence > 0`, as mmpose decides).
    pub fn is_located(&self) -> bool {
        self.confidence > 0.0
    }
}

/// The keypoints of one box, in the model's keypoint order ([`PoseEstimator::keypoint_names`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Pose {
    pub keypoints: Vec<Keypoint>,
}

/// A crop ready for the network and the map that brings its keypoints home.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropTransform {
    /// Network-input pixels → source pixels.
    pub to_source: Affine,
}

pub struct PoseEstimator {
    name: String,
    session: Session,
    execution_provider: ExecutionProviderKind,
    params: PoseParams,
    norm: PixelNorm,
    input_name: String,
    simcc_x_name: String,
    simcc_y_name: String,
    max_batch: usize,
    /// The batch size the model fixes, if it does: each `max_batch` chunk then runs whole.
    fixed_batch: Option<usize>,
}

impl fmt::Debug for PoseEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoseEstimator")
            .field("name", &self.name)
            .field("execution_provider", &self.execution_provider)
            .field("params", &self.params)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl PoseEstimator {
    /// Wraps a loaded pose model (manifest task `pose`). Its first output is `simcc_x`, its
    /// second `simcc_y` (the manifest signature, checked at load time, fixes their shapes).
    pub fn new(model: LoadedModel) -> Result<PoseEstimator, ModelError> {
        let params = model.task_params(Task::Pose, |e| e.pose.as_ref())?;
        let entry = model.entry;
        Ok(PoseEstimator {
            norm: PixelNorm::new(
                params.channel_order,
                params.pixel_range,
                params.mean,
                params.std,
            ),
            input_name: entry.inputs[0].name.clone(),
            fixed_batch: crate::inference::fixed_batch(&entry),
            simcc_x_name: entry.outputs[0].name.clone(),
            simcc_y_name: entry.outputs[1].name.clone(),
            name: entry.name,
            session: model.session,
            execution_provider: model.execution_provider,
            params,
            max_batch: DEFAULT_MAX_BATCH,
        })
    }

    /// At most `n` (>= 1) crops per inference call; more crops take several calls.
    pub fn with_max_batch(mut self, n: usize) -> PoseEstimator {
        self.max_batch = n.max(1);
        self
    }

    pub fn params(&self) -> &PoseParams {
        &self.params
    }

    /// Keypoint names in output order (AP-10K for the embedded `rtmpose_ap10k`).
    pub fn keypoint_names(&self) -> &[String] {
        &self.params.keypoints
    }

    /// The execution provider the session really runs on.
    pub fn execution_provider(&self) -> ExecutionProviderKind {
        self.execution_provider
    }

    /// One pose per box of `frame` (same order), boxes in source pixels (top-left `x, y, w, h`).
    pub fn estimate(
        &mut self,
        frame: &RgbImage,
        boxes: &[BoundingBox],
    ) -> Result<Vec<Pose>, ModelError> {
        let crops: Vec<(&RgbImage, BoundingBox)> = boxes.iter().map(|b| (frame, *b)).collect();
        self.estimate_crops(&crops)
    }

    /// One pose per `(frame, box)`, the crops of several frames batched together (what the
    /// dataflow's batching operator has in hand: a batch of frames and each frame's boxes).
    pub fn estimate_crops(
        &mut self,
        crops: &[(&RgbImage, BoundingBox)],
    ) -> Result<Vec<Pose>, ModelError> {
        let mut poses = Vec::with_capacity(crops.len());
        for chunk in crops.chunks(self.max_batch) {
            for piece in crate::inference::calls(chunk.len(), self.fixed_batch) {
                let (input, transforms) = self.preprocess(&chunk[piece]);
                let (sx, sy) = self.infer(input.view())?;
                poses.extend(self.postprocess(sx.view(), sy.view(), &transforms));
            }
        }
        Ok(poses)
    }

    /// Warps every crop into one `[N, 3, H, W]` batch, normalised as the manifest says.
    pub fn preprocess(
        &self,
        crops: &[(&RgbImage, BoundingBox)],
    ) -> (Array4<f32>, Vec<CropTransform>) {
        let p = &self.params;
        let (w, h) = (p.input_width as usize, p.input_height as usize);
        let mut batch = Array4::<f32>::zeros((crops.len(), 3, h, w));
        let data = batch.as_slice_mut().expect("a fresh array is contiguous");
        let plane_len = w * h;
        let transforms = crops
            .iter()
            .zip(data.chunks_exact_mut(3 * plane_len))
            .map(|((frame, bbox), slot)| {
                let region = crop_region(bbox, p.input_width, p.input_height, p.bbox_padding);
                let to_source = warp_matrix(&region, p.input_width, p.input_height)
                    .inverse()
                    .expect("a crop map scales by a positive finite factor");
                warp_bilinear(
                    frame,
                    &to_source,
                    p.input_width,
                    p.input_height,
                    |u, v, rgb| {
                        let rgb = rgb.map(|c| c as u8); // whole 0–255 values
                        self.norm.store(slot, plane_len, v * w + u, rgb);
                    },
                );
                CropTransform { to_source }
            })
            .collect();
        (batch, transforms)
    }

    /// Bare inference: `[N, 3, H, W]` → (`simcc_x [N, K, W·split]`, `simcc_y [N, K, H·split]`).
    pub fn infer(
        &mut self,
        input: ArrayView4<'_, f32>,
    ) -> Result<(Array3<f32>, Array3<f32>), ModelError> {
        let p = &self.params;
        let n = input.shape()[0];
        let k = p.keypoints.len();
        let (bx, by) = p.simcc_bins();
        let item = [3, p.input_height as usize, p.input_width as usize];
        let outputs = inference::run(&mut self.session, &self.name, &self.input_name, input, item)?;
        let sx = inference::output(&outputs, &self.name, &self.simcc_x_name, &[n, k, bx])?;
        let sy = inference::output(&outputs, &self.name, &self.simcc_y_name, &[n, k, by])?;
        Ok((sx.to_owned(), sy.to_owned()))
    }

    /// Decodes each crop's SimCC vectors and maps its keypoints back to source pixels.
    pub fn postprocess(
        &self,
        simcc_x: ArrayView3<'_, f32>,
        simcc_y: ArrayView3<'_, f32>,
        transforms: &[CropTransform],
    ) -> Vec<Pose> {
        let split = self.params.simcc_split_ratio;
        let (bx, by) = (simcc_x.shape()[2], simcc_y.shape()[2]);
        simcc_x
            .outer_iter()
            .zip(simcc_y.outer_iter())
            .zip(transforms)
            .map(|((x, y), t)| {
                let (x, y) = (x.as_standard_layout(), y.as_standard_layout());
                let peaks = simcc::decode(
                    x.as_slice().expect("standard layout is contiguous"),
                    y.as_slice().expect("standard layout is contiguous"),
                    bx,
                    by,
                    split,
                );
                Pose {
                    keypoints: peaks
                        .into_iter()
                        .map(|pk| {
                            let (sx, sy) = t.to_source.apply(f64::from(pk.x), f64::from(pk.y));
                            Keypoint {
                                x: sx as f32,
                                y: sy as f32,
                                confidence: pk.confidence,
                            }
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    #[test]
    fn the_embedded_pose_entry_lists_ap10k_in_order() {
        let m = Manifest::embedded();
        let p = m.get("rtmpose_ap10k").unwrap().pose.as_ref().unwrap();
        assert_eq!(p.keypoints, AP10K_KEYPOINTS);
        assert_eq!((p.input_width, p.input_height), (256, 256));
        assert_eq!(p.simcc_bins(), (512, 512));
        assert_eq!((p.bbox_padding, p.simcc_split_ratio), (1.25, 2.0));
    }
}
