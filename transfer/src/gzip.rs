//! Gzip (RFC 1952) of bulk bodies, with one compressor per bulk worker reset between bodies.
//!
//! flate2's `GzEncoder` makes a compressor per body, whose tables (some 300 KiB, zeroed) came
//! from fresh pages every time: the kernel zeroing pages was a tenth of the transfer's CPU.
//! Its output is `GzEncoder`'s at level 1 but for where deflate blocks end (it compresses a
//! body in one call, not in 32 KiB pieces): as small, and read back the same (unit-tested).

use flate2::{Compress, CompressError, Compression, Crc, FlushCompress, Status};

/// The header `GzEncoder` writes at level 1: no flags, no time, XFL 4 (fastest), OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// A level-1 compressor and its output, both kept from one body to the next.
pub struct Gzip {
    deflate: Compress,
    out: Vec<u8>,
}

impl Default for Gzip {
    fn default() -> Gzip {
        Gzip {
            deflate: Compress::new(Compression::fast(), false),
            out: Vec::new(),
        }
    }
}

/// A clone compresses on its own: a new compressor, nothing in it yet.
impl Clone for Gzip {
    fn clone(&self) -> Gzip {
        Gzip::default()
    }
}

impl Gzip {
    /// `body` gzip-compressed, in the buffer of the last one.
    pub fn compress(&mut self, body: &[u8]) -> Result<&[u8], CompressError> {
        self.deflate.reset();
        self.out.clear();
        self.out.extend_from_slice(&HEADER);
        loop {
            // `compress_vec` writes into spare capacity only; `total_in` counts from the reset.
            self.out.reserve(body.len() / 4 + 1024);
            let rest = &body[self.deflate.total_in() as usize..];
            let status = self
                .deflate
                .compress_vec(rest, &mut self.out, FlushCompress::Finish)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(body);
        self.out.extend_from_slice(&crc.sum().to_le_bytes());
        self.out.extend_from_slice(&crc.amount().to_le_bytes());
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn gz_encoder(body: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(body).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gzip_as_gz_encoder_writes_it_again_and_again() {
        let mut bulk = Vec::new();
        for i in 0..20_000 {
            writeln!(bulk, "{{\"index\":{{\"_id\":\"{i:032x}\"}}}}").unwrap();
            writeln!(bulk, "{{\"message\":\"line {i} of {}\"}}", i * 7919 % 10007).unwrap();
        }
        let mut gzip = Gzip::default();
        // Large and small bodies, one after another, with the same compressor.
        for body in [&bulk[..], b"", b"{}\n", &bulk[..1000], &bulk[..]] {
            let got = gzip.compress(body).unwrap().to_vec();
            let want = gz_encoder(body);
            assert_eq!(got[..10], want[..10], "the header");
            let (n, m) = (got.len() as f64, want.len() as f64);
            assert!((n - m).abs() <= m / 100.0, "{n} bytes against {m}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&got[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, body);
        }
    }
}
