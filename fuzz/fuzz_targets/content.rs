//! Arbitrary bytes as a message, through the content stages (attachment,
//! phishing, heuristics), the parser limits and the header rewrite: the
//! `pipeline` target without DNS, so it runs about a hundred times faster.

#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check("stages = [\"attachment\", \"phishing\", \"heuristics\"]", data)
});
