//! A panic that nobody catches ends the process.
//!
//! Timely's workers run as threads of one process and wait for each other: when one panics,
//! the others wait for it forever (one spins at full CPU). A dataflow process must rather
//! exit, so that its supervisor restarts it; offsets are committed only after results are
//! stored, so the restart reads again what the dead process had not finished.
//!
//! Code that expects a library to panic on hostile input (a JPEG decoder) runs it under
//! [`catch`]: such a panic becomes an error there and does not end the process.

use std::cell::Cell;
use std::panic::UnwindSafe;

thread_local! {
    /// How many [`catch`] calls this thread is inside.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`; a panic in it is returned as `Err` with its message instead of unwinding, and
/// does not end the process under [`exit_on_uncaught_panic`].
pub fn catch<T>(f: impl FnOnce() -> T + UnwindSafe) -> Result<T, String> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(f);
    CATCHING.with(|c| c.set(c.get() - 1));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

/// Installs a panic hook for the whole process: after the usual report, a panic outside
/// [`catch`] exits the process with status 101 (what an unwinding main thread gives).
pub fn exit_on_uncaught_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if CATCHING.with(Cell::get) == 0 {
            tracing::error!(panic = %info, "a panic outside any catch: the process exits");
            std::process::exit(101);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_an_error_with_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| panic!("bad frame {}", 3)),
            Err::<(), _>("bad frame 3".to_owned())
        );
        assert_eq!(
            catch(|| std::panic::panic_any(5u8)),
            Err::<(), _>("a panic without a message".to_owned())
        );
        assert_eq!(CATCHING.with(Cell::get), 0);
    }
}
