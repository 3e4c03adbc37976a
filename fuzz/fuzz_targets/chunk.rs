#![no_main]
//! `cargo fuzz run chunk`: see `horsestream_fuzz::chunk`.

libfuzzer_sys::fuzz_target!(
    init: {
        // libFuzzer aborts on every panic, caught or not. The dataflow catches the JPEG
        // decoder's (zune-jpeg) panics in `frame_image`, so only those may unwind here.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("zune-jpeg")) {
                abort(info);
            }
        }));
    },
    |data: &[u8]| {
        horsestream_fuzz::chunk(data);
    }
);
