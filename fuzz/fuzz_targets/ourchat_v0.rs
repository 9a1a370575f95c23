#![no_main]
//! Fuzz target `ourchat_v0`: the checks of [`natter_fuzz::ourchat_v0`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::ourchat_v0(data));
