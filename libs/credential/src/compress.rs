//! In-memory zlib and GZIP with bounded decompression.
//!
//! Compression writes into a `Vec`, which never fails; flate2 still returns `io::Result`
//! because its encoders are generic over writers. Rather than make `to_qr` and
//! `Bitstring::encode` fallible for an error that cannot happen, [`in_memory`] states the
//! invariant in one place. Decompression is always bounded: the output is read through
//! `take(max + 1)` so a zip bomb costs at most `max + 1` bytes before it is refused.

use std::cell::RefCell;
use std::io::{self, Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::GzEncoder;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Unwraps the result of an encoder writing into a `Vec<u8>`.
fn in_memory<T>(result: io::Result<T>) -> T {
    match result {
        Ok(v) => v,
        // A `Vec<u8>` writer never fails and deflate on a valid stream has no error path.
        Err(e) => unreachable!("in-memory compression failed: {e}"),
    }
}

thread_local! {
    /// Each thread's zlib compressor, reset before every use. A new one allocates and
    /// zeroes a few hundred kilobytes of tables, which cost more than compressing a
    /// credential; every answer of an issuing service carries a QR form.
    static ZLIB: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), true));
}

/// zlib (RFC 1950) at the fastest level.
///
/// QR capacity matters more than microseconds, and here the fastest level costs none:
/// flate2 runs on zlib-rs, whose level 1 codes a credential of a few hundred bytes with
/// fixed Huffman codes, as small as miniz_oxide's best level did (the bench's license:
/// 855 QR characters against 856) in a quarter of the time (5.7 µs against 22.9 µs,
/// `make bench`, `issue/to_qr`). A dynamic code pays for building its tables on every
/// credential; zlib-rs's best level saves 14 characters for three times the time.
pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
    ZLIB.with_borrow_mut(|z| {
        // Reset first, so a compression that panicked part way leaves nothing behind.
        z.reset();
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        loop {
            let read = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
            let rest = data.get(read..).unwrap_or_default();
            match in_memory(
                z.compress_vec(rest, &mut out, FlushCompress::Finish)
                    .map_err(io::Error::other),
            ) {
                Status::StreamEnd => return out,
                // The output is full: give it room and go on.
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
            }
        }
    })
}

/// GZIP (RFC 1952) at the default level, as W3C Bitstring Status List requires.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    in_memory(enc.write_all(data));
    in_memory(enc.finish())
}

/// What went wrong while inflating.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inflate {
    /// Not a valid stream.
    Invalid,
    /// More than the bound.
    TooLarge,
}

fn bounded(mut reader: impl Read, max: usize) -> Result<Vec<u8>, Inflate> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    (&mut reader)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| Inflate::Invalid)?;
    if out.len() > max {
        return Err(Inflate::TooLarge);
    }
    Ok(out)
}

/// Inflates a zlib stream of at most `max` bytes. Bytes after the end of the stream are
/// refused, so that every change to a QR text changes what it decodes to.
pub(crate) fn unzlib(data: &[u8], max: usize) -> Result<Vec<u8>, Inflate> {
    let mut decoder = ZlibDecoder::new(data);
    let out = bounded(&mut decoder, max)?;
    if usize::try_from(decoder.total_in()).ok() != Some(data.len()) {
        return Err(Inflate::Invalid);
    }
    Ok(out)
}

/// Inflates a GZIP stream of at most `max` bytes.
pub(crate) fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, Inflate> {
    bounded(GzDecoder::new(data), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zlib_and_gzip_round_trip() {
        let data = b"credmesh credmesh credmesh".repeat(50);
        assert_eq!(unzlib(&zlib(&data), data.len()).unwrap(), data);
        assert_eq!(gunzip(&gzip(&data), data.len()).unwrap(), data);
    }

    #[test]
    fn the_reused_compressor_answers_as_a_new_one_would() {
        // Inputs of different sizes one after another on one thread: each is what a new
        // compressor writes. The incompressible one needs the output grown part way.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let inputs = [
            b"credmesh ".repeat(200),
            noise,
            (0..=255u8).cycle().take(5000).collect(),
            vec![0u8; 1 << 20],
            b"x".to_vec(),
            Vec::new(),
        ];
        for data in &inputs {
            let mut fresh = Compress::new(Compression::fast(), true);
            let mut expected = Vec::with_capacity(data.len() * 2 + 64);
            let status = fresh
                .compress_vec(data, &mut expected, FlushCompress::Finish)
                .unwrap();
            assert_eq!(status, Status::StreamEnd);
            let reused = zlib(data);
            assert_eq!(reused, expected);
            assert_eq!(unzlib(&reused, data.len()).unwrap(), *data);
        }
    }

    #[test]
    fn inflating_past_the_bound_is_refused() {
        let bomb = zlib(&vec![0u8; 1 << 20]);
        // A mebibyte from about ten kilobytes (fixed Huffman codes, the fastest level).
        assert!(bomb.len() * 64 < 1 << 20);
        assert_eq!(unzlib(&bomb, 65_536), Err(Inflate::TooLarge));
        assert_eq!(gunzip(&gzip(&[0u8; 100]), 99), Err(Inflate::TooLarge));
    }

    #[test]
    fn trailing_bytes_after_a_zlib_stream_are_refused() {
        let mut data = zlib(b"payload");
        data.push(0);
        assert_eq!(unzlib(&data, 100), Err(Inflate::Invalid));
    }

    #[test]
    fn a_corrupted_zlib_checksum_is_refused() {
        let mut data = zlib(b"payload payload");
        let last = data.len() - 1;
        data[last] ^= 1;
        assert_eq!(unzlib(&data, 100), Err(Inflate::Invalid));
        let truncated = &zlib(b"payload payload")[..6];
        assert_eq!(unzlib(truncated, 100), Err(Inflate::Invalid));
    }

    #[test]
    fn garbage_is_invalid() {
        assert_eq!(unzlib(b"not zlib", 100), Err(Inflate::Invalid));
        assert_eq!(gunzip(b"not gzip", 100), Err(Inflate::Invalid));
    }
}
