#![no_main]
//! Fuzz target `svc_body`: the checks of [`natter_fuzz::svc_body`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::svc_body(data));
