//! One inference call as every model of the crate makes it: a `[N, 3, H, W]` f32 batch into the
//! model's one input, then each f32 output read out and checked against the shape the manifest
//! parameters promise. Used by `Detector`, `Embedder` and `PoseEstimator`.

use ndarray::{ArrayView, ArrayView4, Dimension};
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use crate::ModelError;

/// Largest batch of one inference call; a longer batch runs as several calls.
pub const LARGEST_BATCH: usize = 64;

/// The calls a batch of `n` items runs as: ranges of `n` whose lengths are powers of two
/// (largest first, at most [`LARGEST_BATCH`]), e.g. 13 → 8 + 4 + 1. A model whose batch
/// dimension is fixed ([`fixed_batch`]) takes the batch whole instead (`calls`).
///
/// A session keeps memory for every input shape it has run (ONNX Runtime's CPU arena grows to
/// the largest request and fragments over many different ones; memory patterns are cached per
/// shape). Batches whose size follows the number of horses in view would make that grow in
/// steps over hours; powers of two bound a session to a handful of shapes, without padding.
pub fn pieces(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let left = n - at;
        if left == 0 {
            return None;
        }
        let len = if left >= LARGEST_BATCH {
            LARGEST_BATCH
        } else {
            1 << (usize::BITS - 1 - left.leading_zeros())
        };
        at += len;
        Some(at - len..at)
    })
}

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

/// The batch size a model's first input fixes (an engine or export built for one batch), or
/// `None` when it is dynamic.
pub fn fixed_batch(entry: &crate::manifest::ModelEntry) -> Option<usize> {
    match entry.inputs.first()?.shape.first()? {
        crate::manifest::Dim::Fixed(n) => usize::try_from(*n).ok(),
        crate::manifest::Dim::Symbolic(_) => None,
    }
}

/// How a model's inputs are split into calls: [`pieces`] for a dynamic batch; one call of the
/// whole batch for a fixed one (ONNX Runtime then refuses any other size, which the caller
/// reports as the model failing).
pub(crate) fn calls(
    n: usize,
    fixed: Option<usize>,
) -> Box<dyn Iterator<Item = std::ops::Range<usize>>> {
    match fixed {
        Some(_) if n > 0 => Box::new(std::iter::once(0..n)),
        Some(_) => Box::new(std::iter::empty()),
        None => Box::new(pieces(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_powers_of_two_covering_the_batch_in_order() {
        let lens = |n| pieces(n).map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(0), Vec::<usize>::new());
        assert_eq!(lens(1), [1]);
        assert_eq!(lens(8), [8]);
        assert_eq!(lens(13), [8, 4, 1]);
        assert_eq!(lens(7), [4, 2, 1]);
        assert_eq!(
            lens(LARGEST_BATCH * 2 + 3),
            [LARGEST_BATCH, LARGEST_BATCH, 2, 1]
        );
        let whole: Vec<_> = calls(13, Some(50)).collect();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0], 0..13);
        assert_eq!(calls(0, Some(50)).count(), 0);
        assert_eq!(
            calls(13, None).map(|r| r.len()).collect::<Vec<_>>(),
            [8, 4, 1]
        );
        for n in 0..300 {
            let ranges: Vec<_> = pieces(n).collect();
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next, "{n}: contiguous");
                assert!(r.len().is_power_of_two() && r.len() <= LARGEST_BATCH);
                next = r.end;
            }
            assert_eq!(next, n);
        }
    }
}
