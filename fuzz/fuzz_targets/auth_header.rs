#![no_main]
//! `cargo fuzz run auth_header`: see `horsestream_fuzz::auth_header`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    horsestream_fuzz::auth_header(data);
});
