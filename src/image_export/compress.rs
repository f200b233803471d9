//! Deterministic gzip: the same layer tar gives the same bytes, hence the same blob digest, on
//! every run and machine, so a rebuilt layer finds the blob the repository already holds.
//! The header carries no time, no file name and a fixed OS byte (RFC 1952 section 2.3), and the
//! level is fixed. A layer is compressed on a second thread while the export is read.

use std::io::{self, Read, Write};

use flate2::{Compression, GzBuilder};
use sha2::{Digest as _, Sha256};

use super::CHUNK;
use crate::oci::Digest;

/// The gzip level. zlib-rs at 3 gives blobs about 3 % larger than at zlib's default 6 and
/// compresses 1.5 to 1.9 times as fast (measured here on 256 MiB: `seq` text 69.28 vs 69.24 MB
/// in 1.6 vs 2.4 s; /usr/lib binaries 97.3 vs 94.1 MB in 2.7 vs 5.2 s). Compression is what a
/// push waits for (every blob's digest is needed before its one PUT), so speed wins; level 1
/// in zlib-rs is a different, much weaker algorithm (120 MB for the same text).
const LEVEL: u32 = 3;
/// "Unknown" operating system in the gzip header (Go's `compress/gzip` writes the same).
const OS_UNKNOWN: u8 = 255;

/// A writer that hashes and counts what passes through it.
pub struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The digest and size of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.bytes, self.inner)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What compressing one layer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The digest of the gzip stream.
    pub digest: Digest,
    /// Size of the gzip stream, bytes.
    pub size: u64,
    /// Size of the uncompressed tar, bytes.
    pub uncompressed_size: u64,
}

/// A gzip stream with a fixed header and level into `out`, hashing what it writes: the blob's
/// digest and size. (The uncompressed side is hashed by whoever feeds it, on another thread.)
pub struct DeterministicGzip<W: Write> {
    encoder: flate2::write::GzEncoder<Hashing<W>>,
}

impl<W: Write> DeterministicGzip<W> {
    /// A compressor writing the gzip stream into `out`.
    pub fn new(out: W) -> DeterministicGzip<W> {
        DeterministicGzip {
            encoder: GzBuilder::new()
                .mtime(0)
                .operating_system(OS_UNKNOWN)
                .write(Hashing::new(out), Compression::new(LEVEL)),
        }
    }

    /// Ends the gzip stream: its digest and size, and the inner writer.
    pub fn finish(self) -> io::Result<(Digest, u64, W)> {
        Ok(self.encoder.finish()?.finish())
    }
}

impl<W: Write> Write for DeterministicGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// Compresses `head` and the rest of `reader` into `out` on a second thread while this one
/// reads: reading the Engine's export and compressing overlap, so a layer costs about the
/// longer of the two, not their sum. Chunks in flight are bounded (a few MiB).
pub(super) fn compress_alongside<W: Write + Send>(
    head: Vec<u8>,
    reader: &mut impl Read,
    out: W,
) -> io::Result<(Compressed, W)> {
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|scope| {
        let compressor = scope.spawn(move || {
            let mut gzip = DeterministicGzip::new(out);
            for chunk in received {
                gzip.write_all(&chunk)?;
            }
            gzip.finish()
        });
        // The diff_id is hashed here, so that the compressor thread only compresses.
        let mut diff_id = Sha256::new();
        let mut uncompressed_size = 0_u64;
        let read = (|| -> io::Result<()> {
            let stopped = || io::Error::other("the layer compressor stopped");
            diff_id.update(&head);
            uncompressed_size += head.len() as u64;
            chunks.send(head).map_err(|_| stopped())?;
            loop {
                let mut chunk = vec![0; CHUNK];
                let n = reader.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                chunk.truncate(n);
                diff_id.update(&chunk);
                uncompressed_size += n as u64;
                chunks.send(chunk).map_err(|_| stopped())?;
            }
        })();
        drop(chunks);
        let compressed = compressor
            .join()
            .map_err(|_| io::Error::other("the layer compressor panicked"))?;
        // The compressor's own failure (a full disk) explains a stopped send best.
        let (digest, size, out) = compressed?;
        read?;
        Ok((
            Compressed {
                diff_id: Digest::from_hasher(diff_id),
                digest,
                size,
                uncompressed_size,
            },
            out,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8]) -> (Digest, u64, Vec<u8>) {
        let mut compressor = DeterministicGzip::new(Vec::new());
        for chunk in data.chunks(7) {
            compressor.write_all(chunk).expect("write");
        }
        compressor.finish().expect("finish")
    }

    #[test]
    fn the_same_layer_gives_the_same_blob() {
        let data = b"a layer tar, more or less".repeat(1000);
        let (digest, size, bytes) = compress(&data);
        let (digest_again, _, again) = compress(&data);
        assert_eq!(digest, digest_again);
        assert_eq!(bytes, again);
        // No time and no name in the header: bytes 4..8 (MTIME) are zero, FLG has no FNAME.
        assert_eq!(&bytes[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(bytes[9], OS_UNKNOWN);
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(digest, Digest::of(&bytes));
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut decoded)
            .expect("gunzip");
        assert_eq!(decoded, data);
    }
}
