#![no_main]
//! `cargo fuzz run chunk`: see `horsestream_fuzz::chunk`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    horsestream_fuzz::chunk(data);
});
