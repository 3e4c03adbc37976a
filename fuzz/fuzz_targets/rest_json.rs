#![no_main]
//! `cargo fuzz run rest_json`: see `horsestream_fuzz::rest_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    horsestream_fuzz::rest_json(data);
});
