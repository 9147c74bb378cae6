//! Arbitrary bytes as a message, through the whole scanning pipeline (every
//! built-in stage) and the header rewrite.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::check("", data));
