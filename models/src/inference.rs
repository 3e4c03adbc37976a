//! One inference call as every model of the crate makes it: a `[N, 3, H, W]` f32 batch into the
//! model's one input, then each f32 output read out and checked against the shape the manifest
//! parameters promise. Used by `Detector`, `Embedder` and `PoseEstimator`.

use ndarray::{ArrayView, ArrayView4, Dimension};
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use crate::ModelError;

/// Runs `session` (of model `model`) on `input`, each of whose `N` items must be `[3, H, W]` =
/// `item`.
pub(crate) fn run<'s>(
    session: &'s mut Session,
    model: &str,
    input_name: &str,
    input: ArrayView4<'_, f32>,
    item: [usize; 3],
) -> Result<SessionOutputs<'s>, ModelError> {
    let n = input.shape()[0];
    if input.shape()[1..] != item {
        return Err(ModelError::InputSize {
            batch: n,
            expected: n * item.iter().product::<usize>(),
            actual: input.len(),
        });
    }
    let input = input.as_standard_layout();
    let tensor =
        TensorRef::from_array_view(&input).map_err(ModelError::ort("wrapping the input tensor"))?;
    session
        .run(ort::inputs![input_name => tensor])
        .map_err(ModelError::ort(format!("running {model}")))
}

/// Output `name` of `model`, a view into the session's buffers; refused unless its shape is
/// `expected` (whose length is `D`'s rank).
pub(crate) fn output<'o, D: Dimension>(
    outputs: &'o SessionOutputs<'_>,
    model: &str,
    name: &str,
    expected: &[usize],
) -> Result<ArrayView<'o, f32, D>, ModelError> {
    let raw = outputs[name]
        .try_extract_array::<f32>()
        .map_err(ModelError::ort(format!(
            "reading output {name:?} of {model}"
        )))?;
    if raw.shape() != expected {
        return Err(ModelError::UnexpectedOutput {
            name: model.to_owned(),
            expected: format!("{name} {expected:?}"),
            actual: raw.shape().iter().map(|&d| d as i64).collect(),
        });
    }
    Ok(raw.into_dimensionality::<D>().expect("rank checked above"))
}
