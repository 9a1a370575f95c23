#![no_main]
//! Fuzz target `tus_headers`: the checks of [`natter_fuzz::tus_headers`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::tus_headers(data));
