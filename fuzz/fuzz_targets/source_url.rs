#![no_main]
//! `cargo fuzz run source_url`: see `horsestream_fuzz::source_url`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    horsestream_fuzz::source_url(data);
});
