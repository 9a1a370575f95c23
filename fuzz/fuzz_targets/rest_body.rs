#![no_main]
//! Fuzz target `rest_body`: the checks of [`natter_fuzz::rest_body`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::rest_body(data));
