#![no_main]
//! Fuzz target `json_fields`: the checks of [`natter_fuzz::json_fields`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::json_fields(data));
