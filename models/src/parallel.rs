//! Preprocessing split over threads: a batch's frames letterboxed, or its crops resized, in
//! parallel, each into its own slot of the batch tensor.
//!
//! Between two inference calls the worker's thread prepares the next input alone while the
//! session's other threads wait; with one stream on a 2-core machine that was a quarter of the
//! dataflow's wall time. A model's preprocessing uses as many threads as its session
//! ([`crate::ModelsConfig::intra_threads`]).

/// `f(input, slot)` for each input and its `per_item`-long slot of `out`, in order, on up to
/// `threads` threads (the caller's among them); the results in input order. A panic in `f`
/// is raised again on the caller's thread.
///
/// # Panics
/// If `out` does not hold `per_item` values per input.
pub(crate) fn map_slots<I, R>(
    threads: usize,
    inputs: &[I],
    out: &mut [f32],
    per_item: usize,
    f: impl Fn(&I, &mut [f32]) -> R + Sync,
) -> Vec<R>
where
    I: Sync,
    R: Send,
{
    assert_eq!(
        out.len(),
        inputs.len() * per_item,
        "one slot per input expected"
    );
    let parts = threads.clamp(1, inputs.len().max(1));
    let run = |ins: &[I], outs: &mut [f32]| -> Vec<R> {
        ins.iter()
            .zip(outs.chunks_exact_mut(per_item))
            .map(|(i, slot)| f(i, slot))
            .collect()
    };
    if parts == 1 || per_item == 0 {
        return run(inputs, out);
    }
    let per_part = inputs.len().div_ceil(parts);
    std::thread::scope(|scope| {
        let mut work = inputs
            .chunks(per_part)
            .zip(out.chunks_mut(per_part * per_item));
        let (first_in, first_out) = work.next().expect("at least one input");
        let others: Vec<_> = work
            .map(|(ins, outs)| scope.spawn(|| run(ins, outs)))
            .collect();
        let mut results = run(first_in, first_out);
        for handle in others {
            match handle.join() {
                Ok(part) => results.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each slot gets its own input's values, and the results come back in input order, for
    /// any number of threads (more threads than inputs too).
    #[test]
    fn slots_and_results_follow_the_inputs_whatever_the_threads() {
        let inputs: Vec<usize> = (0..7).collect();
        for threads in [0, 1, 2, 3, 7, 16] {
            let mut out = vec![0f32; inputs.len() * 3];
            let results = map_slots(threads, &inputs, &mut out, 3, |&i, slot| {
                slot.fill(i as f32);
                i * 10
            });
            assert_eq!(results, [0, 10, 20, 30, 40, 50, 60], "{threads} threads");
            let expected: Vec<f32> = inputs.iter().flat_map(|&i| [i as f32; 3]).collect();
            assert_eq!(out, expected, "{threads} threads");
        }
    }

    #[test]
    fn no_inputs_no_results() {
        let results = map_slots(4, &[] as &[u8], &mut [], 5, |_, _| 1);
        assert!(results.is_empty());
    }

    #[test]
    #[should_panic(expected = "bad input 5")]
    fn a_panic_in_a_helper_thread_reaches_the_caller() {
        let inputs: Vec<usize> = (0..6).collect();
        let mut out = vec![0f32; 6];
        map_slots(2, &inputs, &mut out, 1, |&i, _| {
            assert!(i != 5, "bad input {i}");
        });
    }
}
