#![no_main]
//! `cargo fuzz run cursor`: see `horsestream_fuzz::cursor`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    horsestream_fuzz::cursor(data);
});
