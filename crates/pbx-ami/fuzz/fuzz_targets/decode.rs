//! Fuzz the AMI decoder: arbitrary bytes, pushed in arbitrary chunk splits.
//!
//! Properties checked on every input:
//! * no panic, whatever the bytes and the limits;
//! * after draining, the buffered bytes stay within the limits (nothing oversized is kept)
//!   and the allocation stays bounded;
//! * the split does not matter: frames and banners are identical to decoding the whole
//!   input at once, and errors are reported at the same stream offsets. (Which limit an
//!   oversized frame trips first may legitimately depend on the split, because the
//!   decoder refuses to buffer it; the offset and the resynchronisation point do not.)
//!
//! Input layout: byte 0 and 1 pick small limits (so the limit paths are hit often),
//! byte 2 seeds the chunk sizes, the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pbx_ami::codec::{Decoder, Item, Limits};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Banner(Vec<u8>),
    Frame(Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>),
    Error(u64),
}

fn drain(decoder: &mut Decoder, out: &mut Vec<Seen>) {
    while let Some(item) = decoder.next_item() {
        out.push(match item {
            Item::Banner(b) => Seen::Banner(b.to_vec()),
            Item::Frame(f) => {
                let owned = f.to_owned();
                assert_eq!(owned.raw(), f.raw());
                assert!(owned.headers().eq(f.headers()));
                Seen::Frame(
                    f.raw().to_vec(),
                    f.headers().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                )
            }
            Item::Error(e) => {
                // Display must not panic either.
                let _ = e.to_string();
                Seen::Error(e.offset())
            }
        });
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limits = Limits {
        max_line: 8 + usize::from(data[0]),
        max_frame: 32 + usize::from(data[1]) * 4,
        max_headers: 1 + usize::from(data[0] % 16),
    };
    let mut seed = u64::from(data[2]) | 1;
    let input = &data[3..];

    let mut whole = Decoder::new(limits);
    whole.push(input);
    let mut expected = Vec::new();
    drain(&mut whole, &mut expected);

    let mut chunked = Decoder::new(limits);
    let mut seen = Vec::new();
    let mut pos = 0;
    let bound = limits.max_frame.max(limits.max_line + 1);
    let mut max_chunk = 1;
    while pos < input.len() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (1 + (seed % 97) as usize).min(input.len() - pos);
        max_chunk = max_chunk.max(n);
        if seed & 0x100 == 0 {
            chunked.push(&input[pos..pos + n]);
        } else {
            let spare = chunked.spare(n);
            spare[..n].copy_from_slice(&input[pos..pos + n]);
            chunked.commit(n);
        }
        pos += n;
        drain(&mut chunked, &mut seen);
        assert!(
            chunked.buffered_len() <= bound,
            "buffered {} > bound {bound}",
            chunked.buffered_len()
        );
        assert!(
            chunked.capacity() <= 4 * (bound + max_chunk + 16 * 1024),
            "capacity {}",
            chunked.capacity()
        );
    }
    assert_eq!(expected, seen, "chunk split changed the result");
});
