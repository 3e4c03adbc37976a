//! The re-identification embedder: crops of detected horses → L2-normalised appearance
//! vectors, for DeepSORT's appearance matching and the per-horse gallery.

use std::fmt;

use horsestream_proto::BoundingBox;
use image::RgbImage;
use ndarray::{Array2, Array4, ArrayView2, ArrayView4};
use ort::session::Session;

use crate::ModelError;
use crate::inference;
use crate::manifest::{ReidParams, Task};
use crate::normalize::PixelNorm;
use crate::parallel::map_slots;
use crate::registry::LoadedModel;
use crate::resample::{Region, resize_region};

pub struct Embedder {
    name: String,
    session: Session,
    params: ReidParams,
    norm: PixelNorm,
    input_name: String,
    output_name: String,
    /// The batch size the model fixes, if it does: crops then run in one call.
    fixed_batch: Option<usize>,
    /// Threads that resize a batch's crops (as many as the session's).
    threads: usize,
}

impl fmt::Debug for Embedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedder")
            .field("name", &self.name)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    pub fn new(model: LoadedModel) -> Result<Embedder, ModelError> {
        let params = model.task_params(Task::Reid, |e| e.reid.as_ref())?;
        let entry = model.entry;
        Ok(Embedder {
            norm: PixelNorm::new(
                params.channel_order,
                params.pixel_range,
                params.mean,
                params.std,
            ),
            input_name: entry.inputs[0].name.clone(),
            output_name: entry.outputs[0].name.clone(),
            fixed_batch: inference::fixed_batch(&entry),
            name: entry.name,
            session: model.session,
            threads: model.threads,
            params,
        })
    }

    pub fn dim(&self) -> usize {
        self.params.embedding_dim as usize
    }

    /// `[N, 3, H, W]` input for the crops: plain resize (antialiased bilinear), channel order,
    /// range, mean and std.
    pub fn preprocess(&self, crops: &[RgbImage]) -> Array4<f32> {
        let whole: Vec<(&RgbImage, Region)> = crops.iter().map(|c| (c, Region::whole(c))).collect();
        self.preprocess_regions(&whole)
    }

    /// [`Self::preprocess`] of each box's part of its frame (clamped as [`crop`] clamps),
    /// resized straight out of the frame.
    pub fn preprocess_boxes(&self, boxes: &[(&RgbImage, BoundingBox)]) -> Array4<f32> {
        let regions: Vec<(&RgbImage, Region)> = boxes
            .iter()
            .map(|&(frame, b)| (frame, region_of(frame, &b)))
            .collect();
        self.preprocess_regions(&regions)
    }

    fn preprocess_regions(&self, crops: &[(&RgbImage, Region)]) -> Array4<f32> {
        let (w, h) = (self.params.input_width, self.params.input_height);
        let plane_len = w as usize * h as usize;
        let mut batch = Array4::<f32>::zeros((crops.len(), 3, h as usize, w as usize));
        let data = batch.as_slice_mut().expect("a fresh array is contiguous");
        map_slots(
            self.threads,
            crops,
            data,
            3 * plane_len,
            |&(frame, region), slot| {
                resize_region(frame, region, w, h, |y, x, rgb| {
                    self.norm.store(slot, plane_len, y * w as usize + x, rgb);
                });
            },
        );
        batch
    }

    /// One embedding per crop, L2-normalised when the manifest says so; the crops run as a
    /// few batched calls whose sizes are powers of two ([`pieces`](crate::pieces)).
    pub fn embed(&mut self, crops: &[RgbImage]) -> Result<Vec<Vec<f32>>, ModelError> {
        let whole: Vec<(&RgbImage, Region)> = crops.iter().map(|c| (c, Region::whole(c))).collect();
        self.embed_regions(&whole)
    }

    /// [`Self::embed`] of each box's part of its frame, without copying the crops.
    pub fn embed_boxes(
        &mut self,
        boxes: &[(&RgbImage, BoundingBox)],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let regions: Vec<(&RgbImage, Region)> = boxes
            .iter()
            .map(|&(frame, b)| (frame, region_of(frame, &b)))
            .collect();
        self.embed_regions(&regions)
    }

    fn embed_regions(
        &mut self,
        crops: &[(&RgbImage, Region)],
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut embeddings = Vec::with_capacity(crops.len());
        for piece in inference::calls(crops.len(), self.fixed_batch) {
            embeddings.extend(self.embed_batch(&crops[piece])?);
        }
        Ok(embeddings)
    }

    /// One embedding per crop from one inference call.
    fn embed_batch(&mut self, crops: &[(&RgbImage, Region)]) -> Result<Vec<Vec<f32>>, ModelError> {
        let input = self.preprocess_regions(crops);
        let raw = self.embed_tensor(input.view())?;
        let normalize = self.params.l2_normalize;
        Ok(raw
            .outer_iter()
            .map(|row| {
                let mut v = row.to_vec();
                if normalize {
                    l2_normalize(&mut v);
                }
                v
            })
            .collect())
    }

    /// Bare inference: a preprocessed `[N, 3, H, W]` batch → the raw `[N, dim]` output (not
    /// normalised).
    pub fn embed_tensor(&mut self, input: ArrayView4<'_, f32>) -> Result<Array2<f32>, ModelError> {
        let (w, h) = (self.params.input_width, self.params.input_height);
        let expected = [input.shape()[0], self.dim()];
        let outputs = inference::run(
            &mut self.session,
            &self.name,
            &self.input_name,
            input,
            [3, h as usize, w as usize],
        )?;
        let raw: ArrayView2<'_, f32> =
            inference::output(&outputs, &self.name, &self.output_name, &expected)?;
        Ok(raw.to_owned())
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The part of `frame` inside `bbox`, clamped to the frame (at least 1×1).
pub fn crop(frame: &RgbImage, bbox: &BoundingBox) -> RgbImage {
    let r = region_of(frame, bbox);
    image::imageops::crop_imm(frame, r.x, r.y, r.width, r.height).to_image()
}

/// The whole pixels of `frame` inside `bbox`, clamped to the frame (at least 1×1).
fn region_of(frame: &RgbImage, bbox: &BoundingBox) -> Region {
    let (fw, fh) = frame.dimensions();
    let x0 = (bbox.x.max(0.0) as u32).min(fw.saturating_sub(1));
    let y0 = (bbox.y.max(0.0) as u32).min(fh.saturating_sub(1));
    let x1 = ((bbox.x + bbox.w).ceil().max(0.0) as u32).clamp(x0 + 1, fw);
    let y1 = ((bbox.y + bbox.h).ceil().max(0.0) as u32).clamp(y0 + 1, fh);
    Region {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// Cosine distance of two L2-normalised vectors.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }

    #[test]
    fn crop_is_clamped_to_the_frame() {
        let frame = RgbImage::new(100, 50);
        let c = crop(
            &frame,
            &BoundingBox {
                x: -10.0,
                y: 40.0,
                w: 30.0,
                h: 30.0,
            },
        );
        assert_eq!(c.dimensions(), (20, 10));
        let c = crop(
            &frame,
            &BoundingBox {
                x: 200.0,
                y: 200.0,
                w: 5.0,
                h: 5.0,
            },
        );
        assert_eq!(c.dimensions(), (1, 1));
    }
}
