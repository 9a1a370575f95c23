#![no_main]
//! Fuzz target `ourchat_v1`: the checks of [`natter_fuzz::ourchat_v1`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::ourchat_v1(data));
