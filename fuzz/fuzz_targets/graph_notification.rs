//! Arbitrary bytes as a body POSTed to calbridge's Graph notification endpoint (the one route
//! without an API key): the change-notification parser with its size limit, and each
//! notification's signal. Errors are fine; a panic, a hang or unbounded memory is a bug.
#![no_main]

use calbridge_graph::endpoints::notification;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = notification::parse(data) {
        for n in &batch.value {
            let _ = n.signal();
        }
    }
});
