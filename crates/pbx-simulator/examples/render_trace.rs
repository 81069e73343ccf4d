//! Writes a large simulated AMI trace to a file, for benchmarks and for `kommutator replay`.
//!
//! `cargo run --release -p pbx-simulator --example render_trace -- OUT.ami [CALLS] [CONCURRENCY] [SEED] [full|filtered]`
//! (defaults: 20000 calls, 200 concurrent, seed 42, filtered captures).

use std::io::BufWriter;
use std::time::Instant;

use pbx_simulator::{render_trace_to, Mix, TraceOptions, Variant};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: render_trace OUT.ami [CALLS] [CONCURRENCY] [SEED] [full|filtered]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| {
                a.parse().unwrap_or_else(|_| {
                    eprintln!("not a number: {a}");
                    std::process::exit(2)
                })
            })
            .unwrap_or(default)
    };
    let mut opts = TraceOptions::new(
        Mix::standard(),
        number(1, 20_000) as usize,
        number(2, 200) as usize,
        number(3, 42),
    );
    if args.get(4).map(String::as_str) == Some("full") {
        opts.variant = Variant::Full;
    }
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let stats = render_trace_to(&mut out, &opts)?;
    drop(out);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{path}: {} calls, {} frames, {:.1} MiB, max {} concurrent, rendered in {secs:.2} s ({:.0} frames/s)",
        stats.calls,
        stats.frames,
        stats.bytes as f64 / 1048576.0,
        stats.max_concurrency,
        stats.frames as f64 / secs
    );
    Ok(())
}
