//! The same traces split at random byte positions, and with randomly duplicated events, give
//! identical records (a fixed seed loop, so failures reproduce).

mod fixtures_common;

use cti_core::TrackerConfig;
use fixtures_common::{run, run_chunks, traces};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn random_splits_give_identical_records() {
    for (file, bytes) in traces() {
        let whole = run(&bytes, TrackerConfig::default());
        for seed in 0..8u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut cuts: Vec<usize> = (0..rng.gen_range(1..200))
                .map(|_| rng.gen_range(0..=bytes.len()))
                .collect();
            if seed == 0 {
                // One byte at a time in places: the worst case for a framer.
                cuts.extend((0..bytes.len().min(4000)).step_by(1));
            }
            cuts.sort_unstable();
            cuts.dedup();
            let mut chunks = Vec::new();
            let mut last = 0;
            for cut in cuts {
                chunks.push(&bytes[last..cut]);
                last = cut;
            }
            chunks.push(&bytes[last..]);
            let split = run_chunks(chunks, TrackerConfig::default());
            assert_eq!(split, whole, "{file} seed {seed}");
        }
    }
}

#[test]
fn duplicated_events_give_identical_records() {
    for (file, bytes) in traces() {
        let whole = run(&bytes, TrackerConfig::default());
        let text = bytes.as_slice();
        // Split into frames at the blank line; keep the separators with each frame.
        let mut frames: Vec<&[u8]> = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + 4 <= text.len() {
            if &text[i..i + 4] == b"\r\n\r\n" {
                frames.push(&text[start..i + 4]);
                start = i + 4;
                i += 4;
            } else {
                i += 1;
            }
        }
        frames.push(&text[start..]);
        for seed in 0..8u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut out: Vec<u8> = Vec::with_capacity(text.len() * 2);
            let mut delayed: Vec<(usize, &[u8])> = Vec::new();
            for (idx, frame) in frames.iter().enumerate() {
                out.extend_from_slice(frame);
                // Copies due now (a retransmission or a second subscriber, up to 3 frames late).
                delayed.retain(|(due, copy)| {
                    if *due == idx {
                        out.extend_from_slice(copy);
                        false
                    } else {
                        true
                    }
                });
                if idx > 0 && rng.gen_bool(0.15) {
                    let lag = rng.gen_range(0..=3);
                    if lag == 0 {
                        out.extend_from_slice(frame);
                    } else {
                        delayed.push((idx + lag, frame));
                    }
                }
            }
            let duplicated = run(&out, TrackerConfig::default());
            assert_eq!(duplicated, whole, "{file} seed {seed}");
        }
    }
}
