//! `panics::exit_on_uncaught_panic` in a process of its own (this test binary run again as a
//! child): a panic inside `panics::catch` on a worker thread is an error and the process goes
//! on; a panic outside it ends the process with status 101 instead of leaving the threads
//! that wait for the dead one hanging.

use std::process::Command;
use std::time::Duration;

use horsestream_dataflow::panics;

const CHILD: &str = "HORSESTREAM_PANIC_EXIT_CHILD";

/// The child's part: a caught panic, then an uncaught one on a thread the main thread waits
/// for (as timely's workers wait for each other).
fn child() {
    panics::exit_on_uncaught_panic();
    let caught = std::thread::spawn(|| panics::catch(|| panic!("hostile frame")))
        .join()
        .unwrap();
    assert!(caught.is_err());
    println!("caught and still running");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _keep = tx;
        panic!("worker bug");
    });
    // Without the hook this waits for a message that never comes, forever.
    let _ = rx.recv();
    std::thread::sleep(Duration::from_secs(600));
    println!("still alive after the uncaught panic");
}

#[test]
fn an_uncaught_panic_ends_the_process_and_a_caught_one_does_not() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_uncaught_panic_ends_the_process_and_a_caught_one_does_not",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("caught and still running"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("still alive"), "{stdout}");
    assert_eq!(out.status.code(), Some(101), "{stdout}{stderr}");
    assert!(stderr.contains("worker bug"), "{stderr}");
}
