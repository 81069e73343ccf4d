//! Rendering a whole load run straight to bytes: what one AMI client logged in to a busy
//! Asterisk would receive, without a socket or a clock.
//!
//! Calls arrive as a Poisson process sized so that about `concurrency` calls are in progress at
//! once, and their frames are interleaved by simulated time, as Asterisk interleaves the events
//! of concurrent calls. The output is deterministic for a given seed.
//!
//! This is for benchmarks and bulk tests; it does not model agents being busy with one call
//! while another rings them (each call is its capture, independently).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{CallParams, Direction, IdAllocator, Mix, Scenario, Variant};
use crate::template::{Bindings, FrameKind, Template};

/// How to render a trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub mix: Mix,
    pub n_calls: usize,
    /// Calls in progress at once, on average.
    pub concurrency: usize,
    pub seed: u64,
    pub variant: Variant,
    /// Simulated epoch microseconds of the first call.
    pub start_epoch_us: i64,
    /// Start with the banner, the Login response and FullyBooted, and end with
    /// `Response: Goodbye`, like a recorded session.
    pub session_frames: bool,
    /// External numbers to call from; empty = random `+1555xxxxxxx` numbers.
    pub callers: Vec<String>,
}

impl TraceOptions {
    pub fn new(mix: Mix, n_calls: usize, concurrency: usize, seed: u64) -> TraceOptions {
        TraceOptions {
            mix,
            n_calls,
            concurrency,
            seed,
            variant: Variant::Filtered,
            start_epoch_us: 1_800_000_000_000_000,
            session_frames: true,
            callers: Vec::new(),
        }
    }
}

/// What a rendered trace contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceStats {
    pub calls: usize,
    /// Frames written, session frames included.
    pub frames: usize,
    pub bytes: u64,
    /// The largest number of calls that were in progress at once.
    pub max_concurrency: usize,
    pub calls_by_scenario: HashMap<Scenario, usize>,
}

/// Renders `n_calls` calls of `mix`, about `concurrency` at a time, into one AMI byte stream
/// (filtered captures, i.e. without VarSet, and with session frames).
pub fn render_trace(mix: &Mix, n_calls: usize, concurrency: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let opts = TraceOptions::new(mix.clone(), n_calls, concurrency, seed);
    // Writing to a Vec cannot fail.
    let _ = render_trace_to(&mut out, &opts);
    out
}

struct ActiveCall {
    template: &'static Template,
    bindings: Bindings,
    next_frame: usize,
    action_id: Vec<u8>,
}

/// Renders a trace into a writer, frame by frame, holding only the calls in progress in memory.
pub fn render_trace_to(out: &mut impl Write, opts: &TraceOptions) -> io::Result<TraceStats> {
    let mut stats = TraceStats::default();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut ids = IdAllocator::new(1, 0);
    let boot_secs = opts.start_epoch_us.div_euclid(1_000_000) - 60;
    let mean_us = opts.mix.mean_duration(opts.variant).as_micros() as f64;
    let gap_mean_us = mean_us / opts.concurrency.max(1) as f64;
    let mut buf = Vec::with_capacity(64 * 1024);

    if opts.session_frames {
        buf.extend_from_slice(crate::server::BANNER);
        buf.extend_from_slice(
            b"Response: Success\r\nActionID: login-1\r\nMessage: Authentication accepted\r\n\r\n",
        );
        crate::server::write_fully_booted(&mut buf, 60);
        stats.frames += 2;
    }

    let mut calls: Vec<Option<ActiveCall>> = Vec::new();
    // (next frame time, call index); Reverse makes the max-heap a min-heap.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut next_arrival_us = opts.start_epoch_us;
    let mut started = 0usize;
    let mut in_progress = 0usize;
    loop {
        let next_frame_us = heap.peek().map(|Reverse((t, _))| *t);
        let arrival_due =
            started < opts.n_calls && next_frame_us.is_none_or(|t| next_arrival_us <= t);
        if arrival_due {
            let Some(scenario) = opts.mix.pick(&mut rng) else {
                break;
            };
            let template = scenario.template(opts.variant);
            let caller = if opts.callers.is_empty() {
                format!("+1555{:07}", rng.gen_range(0..10_000_000u32))
            } else {
                opts.callers[rng.gen_range(0..opts.callers.len())].clone()
            };
            let params = CallParams {
                caller: Some(caller),
                ..CallParams::default()
            };
            let bindings = ids
                .bind(
                    scenario,
                    opts.variant,
                    &params,
                    next_arrival_us,
                    boot_secs,
                    &mut rng,
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let action_id = match scenario.direction() {
                // Somebody (a CRM, another AMI app) originated the click-to-call; Asterisk
                // sends its OriginateResponse to every session.
                Direction::Outbound => format!("sim-originate-{started}").into_bytes(),
                Direction::Inbound => Vec::new(),
            };
            let idx = calls.len();
            calls.push(Some(ActiveCall {
                template,
                bindings,
                next_frame: 0,
                action_id,
            }));
            heap.push(Reverse((next_arrival_us, idx)));
            started += 1;
            in_progress += 1;
            stats.max_concurrency = stats.max_concurrency.max(in_progress);
            *stats.calls_by_scenario.entry(scenario).or_default() += 1;
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            next_arrival_us += (-u.ln() * gap_mean_us) as i64;
            continue;
        }
        let Some(Reverse((_, idx))) = heap.pop() else {
            break;
        };
        let Some(call) = calls[idx].as_mut() else {
            continue;
        };
        let frame_idx = call.next_frame;
        let frame = &call.template.frames[frame_idx];
        let emit = match frame.kind {
            FrameKind::Event => true,
            FrameKind::OriginateResponse => !call.action_id.is_empty(),
            FrameKind::ActionResponse => false,
        };
        if emit {
            call.template
                .render_frame(frame_idx, &call.bindings, 0, &call.action_id, &mut buf);
            stats.frames += 1;
        }
        call.next_frame += 1;
        if call.next_frame < call.template.frames.len() {
            let t = call.bindings.start_us + call.template.frames[call.next_frame].offset_us;
            heap.push(Reverse((t, idx)));
        } else {
            calls[idx] = None;
            in_progress -= 1;
            stats.calls += 1;
        }
        if buf.len() >= 60 * 1024 {
            out.write_all(&buf)?;
            stats.bytes += buf.len() as u64;
            buf.clear();
        }
    }
    if opts.session_frames {
        buf.extend_from_slice(
            b"Response: Goodbye\r\nActionID: logoff-2\r\nMessage: Thanks for all the fish.\r\n\r\n",
        );
        stats.frames += 1;
    }
    out.write_all(&buf)?;
    stats.bytes += buf.len() as u64;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_all_calls_finish() {
        let mix = Mix::standard();
        let a = render_trace(&mix, 40, 8, 42);
        let b = render_trace(&mix, 40, 8, 42);
        assert_eq!(a, b);
        assert_ne!(a, render_trace(&mix, 40, 8, 43));
        let mut sink = Vec::new();
        let stats = render_trace_to(&mut sink, &TraceOptions::new(mix, 40, 8, 42)).expect("vec");
        assert_eq!(sink, a);
        assert_eq!(stats.calls, 40);
        assert_eq!(stats.bytes, a.len() as u64);
        assert!(stats.max_concurrency > 1, "{stats:?}");
        assert!(a.starts_with(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n"));
        assert!(a.ends_with(b"Message: Thanks for all the fish.\r\n\r\n"));
    }
}
