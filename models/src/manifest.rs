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
    /// Lower-case hex sha256 of the file.
    pub sha256: String,
    pub source: ModelSource,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// Present (and required) for `task = "detection"`.
    #[serde(default)]
    pub yolox: Option<YoloxParams>,
    /// Present (and required) for `task = "reid"`.
    #[serde(default)]
    pub reid: Option<ReidParams>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detection,
    Reid,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Detection => "detection",
            Task::Reid => "reid",
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

/// Pre- and post-processing parameters of a YOLOX detector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoloxParams {
    /// Square network input side in pixels.
    pub input_size: u32,
    pub channel_order: ChannelOrder,
    /// Value range the 0–255 pixels are mapped to (`[0, 255]` = unchanged).
    pub pixel_range: [f32; 2],
    /// Letterbox padding value, in 0–255 pixel units.
    pub pad_value: u8,
    pub num_classes: u32,
    pub strides: Vec<u32>,
    pub horse_class_id: u32,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

impl YoloxParams {
    /// Anchor points per image: sum over strides of (input_size / stride)².
    pub fn num_anchors(&self) -> usize {
        self.strides
            .iter()
            .map(|s| (self.input_size / s) as usize)
            .map(|g| g * g)
            .sum()
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
            if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "model {:?}: sha256 must be 64 hex digits",
                    m.name
                )));
            }
            if m.inputs.is_empty() || m.outputs.is_empty() {
                return Err(invalid(format!(
                    "model {:?}: inputs and outputs must not be empty",
                    m.name
                )));
            }
            match m.task {
                Task::Detection => {
                    let p = m.yolox.as_ref().ok_or_else(|| {
                        invalid(format!(
                            "detection model {:?} needs a [model.yolox] table",
                            m.name
                        ))
                    })?;
                    if p.strides.is_empty()
                        || p.strides.iter().any(|s| *s == 0 || p.input_size % s != 0)
                    {
                        return Err(invalid(format!(
                            "model {:?}: every stride must divide input_size {}",
                            m.name, p.input_size
                        )));
                    }
                    if p.horse_class_id >= p.num_classes {
                        return Err(invalid(format!(
                            "model {:?}: horse_class_id {} >= num_classes {}",
                            m.name, p.horse_class_id, p.num_classes
                        )));
                    }
                    let side = Dim::Fixed(u64::from(p.input_size));
                    let out_ok = m.outputs[0].shape.len() == 3
                        && m.outputs[0].shape[1] == Dim::Fixed(p.num_anchors() as u64)
                        && m.outputs[0].shape[2] == Dim::Fixed(u64::from(p.num_classes) + 5);
                    let in_ok = m.inputs[0].shape.len() == 4
                        && m.inputs[0].shape[1] == Dim::Fixed(3)
                        && m.inputs[0].shape[2] == side
                        && m.inputs[0].shape[3] == side;
                    if !(in_ok && out_ok) {
                        return Err(invalid(format!(
                            "model {:?}: signature {} does not fit the yolox parameters \
                             (input [N,3,{s},{s}], output [N,{a},{c}])",
                            m.name,
                            signature_string(&m.inputs, &m.outputs),
                            s = p.input_size,
                            a = p.num_anchors(),
                            c = p.num_classes + 5
                        )));
                    }
                }
                Task::Reid => {
                    if m.reid.is_none() {
                        return Err(invalid(format!(
                            "reid model {:?} needs a [model.reid] table",
                            m.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }
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
        let p = y.yolox.as_ref().unwrap();
        assert_eq!(p.num_anchors(), 3549);
        assert_eq!(p.horse_class_id, 17);
        assert_eq!(p.channel_order, ChannelOrder::Bgr);
        let r = m.get("reid_mobilenetv2").unwrap();
        assert_eq!(
            r.signature(),
            "images:f32[N,3,224,224] -> embedding:f32[N,1280]"
        );
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
    fn yolox_params_must_match_the_signature() {
        let text = DEFAULT_MANIFEST.replacen("input_size = 416", "input_size = 640", 1);
        let err = Manifest::parse(&text, "t").unwrap_err();
        assert!(matches!(err, ModelError::ManifestInvalid { .. }), "{err:?}");
    }
}
