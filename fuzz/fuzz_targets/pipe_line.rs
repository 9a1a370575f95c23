#![no_main]
//! Fuzz target `pipe_line`: the checks of [`natter_fuzz::pipe_line`] on every input.

libfuzzer_sys::fuzz_target!(|data: &[u8]| natter_fuzz::pipe_line(data));
