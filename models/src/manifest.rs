//! The model manifest: which models exist, their files and digests, where they come from,
//! the tensor signature each must have, and the parameters of its task.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::ModelError;

/// The manifest shipped with the crate (`models/manifest.toml`).
pub const DEFAULT_MANIFEST: &str = include_str!("../manifest.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    pub task: Task,
    /// File name inside the model directory.
    pub file: String,
    /// Lower-case hex sha256 of the file. Required unless `optional`: a user-supplied model's
    /// digest is not known in advance; a deployment pins it in its override manifest.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Not shipped by `scripts/install-deps.sh` and needed only when a stream enables it (pose):
    /// its file may be absent until a user supplies it.
    #[serde(default)]
    pub optional: bool,
    pub source: ModelSource,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Present (and required) for `task = "detection"`.
    #[serde(default)]
    pub detection: Option<DetectionParams>,
    /// Present (and required) for `task = "reid"`.
    #[serde(default)]
    pub reid: Option<ReidParams>,
    /// Present (and required) for `task = "pose"`.
    #[serde(default)]
    pub pose: Option<PoseParams>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detection,
    Reid,
    Pose,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Detection => "detection",
            Task::Reid => "reid",
            Task::Pose => "pose",
        })
    }
}

/// Where a model comes from and under which licence; `obtain` tells users how to get the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    pub upstream: String,
    pub license: String,
    pub obtain: String,
}

/// One named input or output tensor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: ElementType,
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    F32,
    F16,
    F64,
    U8,
    I8,
    I32,
    I64,
    Bool,
}

impl ElementType {
    /// The name ort uses when it prints a `TensorElementType` (`f32`, `u8`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::F64 => "f64",
            ElementType::U8 => "u8",
            ElementType::I8 => "i8",
            ElementType::I32 => "i32",
            ElementType::I64 => "i64",
            ElementType::Bool => "bool",
        }
    }
}

/// A tensor dimension: a fixed size, or a symbol (`"N"`) for a dimension fixed only at run time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(u64),
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}[", self.name, self.dtype.as_str())?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// `a:f32[N,3] , b:i64[N] -> out:f32[N,5]`, the form used in signature errors.
pub(crate) fn signature_string(inputs: &[TensorSpec], outputs: &[TensorSpec]) -> String {
    let join = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("{} -> {}", join(inputs), join(outputs))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// The output layout of a detection model, which decides how its rows are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectionHead {
    /// `[N, A, 5 + C]`: per anchor point `x, y` offsets in grid cells, `log w, log h` in
    /// strides, objectness, class scores (sigmoid-ed). `A = Σ (size / stride)²`.
    Yolox,
    /// `[N, 3·A, 5 + C]`: per anchor box `cx, cy, w, h` in input pixels, objectness, class
    /// scores (sigmoid-ed); three anchor boxes per grid cell as in every YOLOv5 config.
    Yolov5,
    /// `[N, 4 + C, A]` (channels first): `cx, cy, w, h` in input pixels, then class scores;
    /// no objectness. `A = Σ (size / stride)²`.
    Yolov8,
}

impl fmt::Display for DetectionHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DetectionHead::Yolox => "yolox",
            DetectionHead::Yolov5 => "yolov5",
            DetectionHead::Yolov8 => "yolov8",
        })
    }
}

/// Where the resized image sits inside the letterbox square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LetterboxPlacement {
    /// At the top-left, padding right and below; resized size truncated (YOLOX).
    TopLeft,
    /// Centred, padding split between both sides; resized size rounded (Ultralytics
    /// YOLOv5/YOLOv8 `letterbox`).
    Center,
}

/// Pre- and post-processing parameters of a detector (`[model.detection]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionParams {
    /// Output layout: `"yolox"`, `"yolov5"` or `"yolov8"`.
    pub head: DetectionHead,
    /// Square network input side in pixels.
    pub input_size: u32,
    /// `"top-left"` (YOLOX) or `"center"` (Ultralytics).
    pub letterbox: LetterboxPlacement,
    pub channel_order: ChannelOrder,
    /// Value range the 0–255 pixels are mapped to (`[0, 255]` = unchanged).
    pub pixel_range: [f32; 2],
    /// Letterbox padding value, in 0–255 pixel units.
    pub pad_value: u8,
    pub num_classes: u32,
    /// Strides of the output levels, in the order the output lists them; they fix the number
    /// of output rows (and, for YOLOX, the grids).
    pub strides: Vec<u32>,
    pub horse_class_id: u32,
    /// This model's confidence threshold (objectness × class score; class score for YOLOv8).
    pub score_threshold: f32,
    pub nms_iou: f32,
    /// Boxes scoring between this and `score_threshold` are returned as *candidates* when the
    /// caller asks for them ([`crate::Detector::with_candidates`]): the tracker uses them only
    /// to continue a track it already has (ByteTrack's second association), never to start
    /// one. `None`: no candidates.
    #[serde(default)]
    pub low_score_threshold: Option<f32>,
}

impl DetectionParams {
    /// Grid cells per image: sum over strides of (input_size / stride)².
    pub fn num_cells(&self) -> usize {
        self.strides
            .iter()
            .map(|s| (self.input_size / s) as usize)
            .map(|g| g * g)
            .sum()
    }

    /// Output rows (candidate boxes) per image: one per grid cell, three for YOLOv5.
    pub fn num_anchors(&self) -> usize {
        match self.head {
            DetectionHead::Yolox | DetectionHead::Yolov8 => self.num_cells(),
            DetectionHead::Yolov5 => 3 * self.num_cells(),
        }
    }

    /// The output shape of a batch of `n` images.
    pub fn output_shape(&self, n: usize) -> [usize; 3] {
        let (a, c) = (self.num_anchors(), self.num_classes as usize);
        match self.head {
            DetectionHead::Yolox | DetectionHead::Yolov5 => [n, a, 5 + c],
            DetectionHead::Yolov8 => [n, 4 + c, a],
        }
    }
}

/// Pre-processing parameters of an appearance-embedding (re-identification) model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReidParams {
    pub input_width: u32,
    pub input_height: u32,
    pub channel_order: ChannelOrder,
    pub pixel_range: [f32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub embedding_dim: u32,
    pub l2_normalize: bool,
}

/// Pre- and post-processing parameters of an RTMPose-style SimCC pose model (`[model.pose]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoseParams {
    pub input_width: u32,
    pub input_height: u32,
    pub channel_order: ChannelOrder,
    /// Value range the 0–255 pixels are mapped to before `mean`/`std`.
    pub pixel_range: [f32; 2],
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The box is scaled by this factor (after being widened or heightened to the input's
    /// aspect ratio) before cropping.
    pub bbox_padding: f32,
    /// SimCC bins per input pixel.
    pub simcc_split_ratio: f32,
    /// Keypoint names in output order; their number is the model's `K`.
    pub keypoints: Vec<String>,
}

impl PoseParams {
    /// SimCC bins along x and y: input size × split ratio.
    pub fn simcc_bins(&self) -> (usize, usize) {
        let bins = |side: u32| (side as f32 * self.simcc_split_ratio).round() as usize;
        (bins(self.input_width), bins(self.input_height))
    }
}

impl Manifest {
    /// The manifest embedded in the crate.
    pub fn embedded() -> Manifest {
        Manifest::parse(DEFAULT_MANIFEST, "(embedded models/manifest.toml)")
            .expect("the embedded manifest is checked by a unit test")
    }

    /// Parses and validates manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ModelError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|source| ModelError::ManifestParse {
                origin: origin.to_owned(),
                source,
            })?;
        manifest.validate(origin)?;
        Ok(manifest)
    }

    /// Reads an override manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::ManifestRead {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// `path` if given, else the embedded manifest.
    pub fn load(path: Option<&Path>) -> Result<Manifest, ModelError> {
        match path {
            Some(p) => Manifest::from_file(p),
            None => Ok(Manifest::embedded()),
        }
    }

    pub fn get(&self, name: &str) -> Result<&ModelEntry, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Checks what serde cannot: unique names, well-formed digests, task parameters present and
    /// consistent with the declared signature.
    pub fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let invalid = |reason: String| ModelError::ManifestInvalid {
            origin: origin.to_owned(),
            reason,
        };
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return Err(invalid(format!("model {:?} is listed twice", m.name)));
            }
            match &m.sha256 {
                Some(d) if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    return Err(invalid(format!(
                        "model {:?}: sha256 must be 64 hex digits",
                        m.name
                    )));
                }
                None if !m.optional => {
                    return Err(invalid(format!(
                        "model {:?}: sha256 is required (only an `optional` model may leave it out)",
                        m.name
                    )));
                }
                _ => {}
            }
            if m.inputs.is_empty() || m.outputs.is_empty() {
                return Err(invalid(format!(
                    "model {:?}: inputs and outputs must not be empty",
                    m.name
                )));
            }
            match m.task {
                Task::Detection => validate_detection(m).map_err(invalid)?,
                Task::Reid => {
                    if m.reid.is_none() {
                        return Err(invalid(format!(
                            "reid model {:?} needs a [model.reid] table",
                            m.name
                        )));
                    }
                }
                Task::Pose => validate_pose(m).map_err(invalid)?,
            }
        }
        Ok(())
    }
}

fn validate_detection(m: &ModelEntry) -> Result<(), String> {
    let p = m.detection.as_ref().ok_or_else(|| {
        format!(
            "detection model {:?} needs a [model.detection] table",
            m.name
        )
    })?;
    if p.strides.is_empty() || p.strides.iter().any(|s| *s == 0 || p.input_size % s != 0) {
        return Err(format!(
            "model {:?}: every stride must divide input_size {}",
            m.name, p.input_size
        ));
    }
    if p.horse_class_id >= p.num_classes {
        return Err(format!(
            "model {:?}: horse_class_id {} >= num_classes {}",
            m.name, p.horse_class_id, p.num_classes
        ));
    }
    if let Some(low) = p.low_score_threshold
        && !(low.is_finite() && (0.0..=p.score_threshold).contains(&low))
    {
        return Err(format!(
            "model {:?}: low_score_threshold {low} must lie in 0..=score_threshold ({})",
            m.name, p.score_threshold
        ));
    }
    let [_, d1, d2] = p.output_shape(0);
    let out_ok = m.outputs.len() == 1 && batch_of(&m.outputs[0], &[d1, d2]);
    if !(image_input(m, p.input_size, p.input_size) && out_ok) {
        return Err(format!(
            "model {:?}: signature {} does not fit the {} detection parameters \
             (input [N,3,{s},{s}], output [N,{d1},{d2}])",
            m.name,
            signature_string(&m.inputs, &m.outputs),
            p.head,
            s = p.input_size,
        ));
    }
    Ok(())
}

fn validate_pose(m: &ModelEntry) -> Result<(), String> {
    let p = m
        .pose
        .as_ref()
        .ok_or_else(|| format!("pose model {:?} needs a [model.pose] table", m.name))?;
    if p.keypoints.is_empty() {
        return Err(format!("model {:?}: keypoints must not be empty", m.name));
    }
    if !(p.bbox_padding > 0.0 && p.simcc_split_ratio > 0.0 && p.std.iter().all(|s| *s != 0.0)) {
        return Err(format!(
            "model {:?}: bbox_padding, simcc_split_ratio and std must be positive",
            m.name
        ));
    }
    let k = p.keypoints.len();
    let (bx, by) = p.simcc_bins();
    let out_ok = m.outputs.len() == 2
        && batch_of(&m.outputs[0], &[k, bx])
        && batch_of(&m.outputs[1], &[k, by]);
    if !(image_input(m, p.input_height, p.input_width) && out_ok) {
        return Err(format!(
            "model {:?}: signature {} does not fit the pose parameters (input [N,3,{h},{w}], \
             outputs simcc_x [N,{k},{bx}] then simcc_y [N,{k},{by}])",
            m.name,
            signature_string(&m.inputs, &m.outputs),
            h = p.input_height,
            w = p.input_width,
        ));
    }
    Ok(())
}

/// Whether the model has one input and it is a batch of `[3, height, width]` images.
fn image_input(m: &ModelEntry, height: u32, width: u32) -> bool {
    let item = [3, height as usize, width as usize];
    m.inputs.len() == 1 && batch_of(&m.inputs[0], &item)
}

/// Whether `spec` is `[N, item...]`: any first (batch) dimension, then exactly `item`.
fn batch_of(spec: &TensorSpec, item: &[usize]) -> bool {
    spec.shape.len() == item.len() + 1
        && spec.shape[1..]
            .iter()
            .zip(item)
            .all(|(d, &n)| *d == Dim::Fixed(n as u64))
}

impl ModelEntry {
    /// `inputs -> outputs` as declared, e.g. `images:f32[N,3,416,416] -> output:f32[N,3549,85]`.
    pub fn signature(&self) -> String {
        signature_string(&self.inputs, &self.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_parses_and_validates() {
        let m = Manifest::parse(DEFAULT_MANIFEST, "embedded").unwrap();
        let y = m.get("yolox_nano").unwrap();
        assert_eq!(y.task, Task::Detection);
        assert_eq!(
            y.signature(),
            "images:f32[N,3,416,416] -> output:f32[N,3549,85]"
        );
        let p = y.detection.as_ref().unwrap();
        assert_eq!(p.head, DetectionHead::Yolox);
        assert_eq!(p.letterbox, LetterboxPlacement::TopLeft);
        assert_eq!(p.num_anchors(), 3549);
        assert_eq!(p.output_shape(2), [2, 3549, 85]);
        assert_eq!(p.horse_class_id, 17);
        assert_eq!(p.channel_order, ChannelOrder::Bgr);
        let r = m.get("reid_mobilenetv2").unwrap();
        assert_eq!(
            r.signature(),
            "images:f32[N,3,224,224] -> embedding:f32[N,1280]"
        );
        let pose = m.get("rtmpose_ap10k").unwrap();
        assert_eq!(pose.task, Task::Pose);
        assert!(pose.optional && pose.sha256.is_none());
        assert_eq!(
            pose.signature(),
            "input:f32[N,3,256,256] -> simcc_x:f32[N,17,512], simcc_y:f32[N,17,512]"
        );
    }

    /// The embedded YOLOX entry turned into a 640×640 model of `head` with `output` shape.
    fn detector_manifest(head: &str, output: &str) -> String {
        DEFAULT_MANIFEST
            .replacen("head = \"yolox\"", &format!("head = \"{head}\""), 1)
            .replacen("input_size = 416", "input_size = 640", 1)
            .replacen(
                "shape = [\"N\", 3, 416, 416]",
                "shape = [\"N\", 3, 640, 640]",
                1,
            )
            .replacen("shape = [\"N\", 3549, 85]", output, 1)
    }

    #[test]
    fn each_head_has_its_output_layout() {
        // YOLOv5 640: 3 × (80² + 40² + 20²) = 25200 rows of 85; YOLOv8 640: [84, 8400].
        let v5 = detector_manifest("yolov5", "shape = [\"N\", 25200, 85]");
        let m = Manifest::parse(&v5, "v5").unwrap();
        let p = m.get("yolox_nano").unwrap().detection.clone().unwrap();
        assert_eq!(
            (p.head, p.output_shape(1)),
            (DetectionHead::Yolov5, [1, 25200, 85])
        );
        let v8 = detector_manifest("yolov8", "shape = [\"N\", 84, 8400]");
        let m = Manifest::parse(&v8, "v8").unwrap();
        let p = m.get("yolox_nano").unwrap().detection.clone().unwrap();
        assert_eq!(
            (p.head, p.output_shape(1)),
            (DetectionHead::Yolov8, [1, 84, 8400])
        );
        // A YOLOv8 model declared with the YOLOv5 layout (and the reverse) is refused.
        for (head, out) in [
            ("yolov8", "shape = [\"N\", 25200, 85]"),
            ("yolov8", "shape = [\"N\", 8400, 84]"),
            ("yolov5", "shape = [\"N\", 84, 8400]"),
            ("yolox", "shape = [\"N\", 25200, 85]"),
        ] {
            let err = Manifest::parse(&detector_manifest(head, out), "t").unwrap_err();
            assert!(
                matches!(err, ModelError::ManifestInvalid { .. }),
                "{head} {out}: {err:?}"
            );
            assert!(err.to_string().contains(head), "{err}");
        }
        let bad = DEFAULT_MANIFEST.replacen("head = \"yolox\"", "head = \"yolov7\"", 1);
        assert!(matches!(
            Manifest::parse(&bad, "t").unwrap_err(),
            ModelError::ManifestParse { .. }
        ));
    }

    #[test]
    fn a_required_model_needs_its_digest_an_optional_one_may_omit_it() {
        let text = DEFAULT_MANIFEST.replacen(
            "sha256 = \"1c0f404d267fc5e0c173f160a61f599b80dade2be362aa45856b244e5f00c38e\"\n",
            "",
            1,
        );
        assert_ne!(text, DEFAULT_MANIFEST);
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("sha256 is required"), "{err}");
        let text = text.replacen(
            "task = \"detection\"",
            "task = \"detection\"\noptional = true",
            1,
        );
        Manifest::parse(&text, "t").unwrap();
    }

    #[test]
    fn pose_outputs_must_match_keypoints_and_bins() {
        // 17 names, but outputs declared with 16 keypoints.
        let text = DEFAULT_MANIFEST.replace("shape = [\"N\", 17, 512]", "shape = [\"N\", 16, 512]");
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("simcc_x [N,17,512]"), "{err}");
        // A split ratio of 3 needs 768 bins.
        let text =
            DEFAULT_MANIFEST.replacen("simcc_split_ratio = 2.0", "simcc_split_ratio = 3.0", 1);
        let err = Manifest::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("[N,17,768]"), "{err}");
        let text = DEFAULT_MANIFEST.replacen("bbox_padding = 1.25", "bbox_padding = 0.0", 1);
        assert!(Manifest::parse(&text, "t").is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = DEFAULT_MANIFEST.replacen(
            "task = \"detection\"",
            "task = \"detection\"\ncolour = 1",
            1,
        );
        let err = Manifest::parse(&text, "t").unwrap_err();
        assert!(matches!(err, ModelError::ManifestParse { .. }), "{err:?}");
    }

    #[test]
    fn unknown_model_names_the_known_ones() {
        let err = Manifest::embedded().get("yolov8").unwrap_err().to_string();
        assert!(
            err.contains("yolox_nano") && err.contains("reid_mobilenetv2"),
            "{err}"
        );
    }

    #[test]
    fn a_low_score_threshold_above_the_score_threshold_is_refused() {
        assert_eq!(
            Manifest::embedded()
                .get("yolox_nano")
                .unwrap()
                .detection
                .as_ref()
                .unwrap()
                .low_score_threshold,
            Some(0.1)
        );
        for bad in ["0.5", "-0.1", "nan"] {
            let text = DEFAULT_MANIFEST.replacen(
                "low_score_threshold = 0.1",
                &format!("low_score_threshold = {bad}"),
                1,
            );
            let err = Manifest::parse(&text, "t").unwrap_err().to_string();
            assert!(err.contains("low_score_threshold"), "{bad}: {err}");
        }
        let text = DEFAULT_MANIFEST.replacen("low_score_threshold = 0.1\n", "", 1);
        let m = Manifest::parse(&text, "t").unwrap();
        let params = m.get("yolox_nano").unwrap().detection.as_ref().unwrap();
        assert_eq!(params.low_score_threshold, None);
    }

    #[test]
    fn yolox_params_must_match_the_signature() {
        let text = DEFAULT_MANIFEST.replacen("input_size = 416", "input_size = 640", 1);
        let err = Manifest::parse(&text, "t").unwrap_err();
        assert!(matches!(err, ModelError::ManifestInvalid { .. }), "{err:?}");
    }
}
