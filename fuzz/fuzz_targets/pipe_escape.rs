#![no_main]
//! Fuzz target `pipe_escape`: the checks of [`natter_fuzz::pipe_escape`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::pipe_escape(data));
