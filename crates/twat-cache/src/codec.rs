//! The byte layout of one persistent entry: a 64-byte header, then the body (the
//! payload, raw or compressed), checked by a checksum and optionally signed.
//!
//! A payload is what a serializer produced: one main stream (a pickle, for Python)
//! and any number of large side buffers (pickle protocol 5's out-of-band buffers, such
//! as numpy arrays). Buffers are written raw at 64-byte aligned offsets, never copied
//! into the stream, so an uncompressed entry can be memory-mapped and each buffer used
//! in place.
//!
//! ```text
//! header (64 bytes)
//!   0..4   magic "TWC1"           4  codec (0 raw, 1 zstd, 2 lz4)    5  flags (1 = signed)
//!   8..16  payload length         16..24 body length                 24..32 checksum of the body
//!   32..64 HMAC-SHA256 of bytes 0..32 and the body (zero when unsigned)
//! payload (the body, before compression)
//!   n_buffers u32, flags u32 (1 = a freshness deadline follows), stream length u64,
//!   [fresh until u64, Unix microseconds], buffer lengths u64 * n, padding to 64
//!   stream, padding to 64, buffer 0, padding to 64, buffer 1, ...
//! ```
//!
//! ```
//! use std::io::Cursor;
//! use twat_cache::{read_frame, write_frame, Compression, Payload};
//!
//! let array = vec![1u8; 100_000];
//! let payload = Payload { stream: b"pickle", buffers: vec![&array] };
//! let mut file = Cursor::new(Vec::new());
//! write_frame(&mut file, &payload, Compression::Zstd, None)?;
//!
//! let bytes = file.into_inner();
//! let loaded = read_frame(&bytes[..], None)?;
//! assert_eq!(loaded.stream, b"pickle");
//! assert_eq!(loaded.buffers, vec![array]);
//! # Ok::<(), twat_cache::Error>(())
//! ```

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::checksum::ChunkSum;

use crate::Error;

pub(crate) const MAGIC: &[u8; 4] = b"TWC1";
/// Bytes before the body; also the alignment of every buffer in an uncompressed entry.
pub const HEADER_LEN: usize = 64;
pub(crate) const ALIGN: usize = 64;
pub(crate) const SIGNED: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Below this, compression is not tried: it cannot pay for itself.
const COMPRESS_MIN: usize = 512;
/// A sample that compresses to more than this fraction is "incompressible": stored raw.
const INCOMPRESSIBLE: f64 = 0.9;
const SAMPLE_LEN: usize = 128 * 1024;
/// Payloads this large are compressed by two zstd workers.
const MULTITHREAD_MIN: usize = 4 << 20;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// How a body is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Raw bytes: the fastest to write and read, and the only layout that can be mapped.
    #[default]
    None,
    /// zstd at level 3: a good ratio at hundreds of MB/s.
    Zstd,
    /// LZ4 frames: a lower ratio, several times faster than zstd.
    Lz4,
}

impl Compression {
    /// Every accepted spelling, for error messages.
    pub const ACCEPTED: &'static str = "False/None, True or \"zstd\", or \"lz4\"";

    /// The name used in configuration (`"none"`, `"zstd"`, `"lz4"`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
            Compression::Lz4 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::Lz4),
            _ => None,
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "raw" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            "lz4" => Ok(Compression::Lz4),
            _ => Err(Error::InvalidConfig {
                param: "compress",
                value: format!("{s:?}"),
                accepted: Compression::ACCEPTED,
            }),
        }
    }
}

/// What a serializer produced: the main stream and its out-of-band buffers.
#[derive(Clone, Debug, Default)]
pub struct Payload<'a> {
    /// The main stream (a pickle).
    pub stream: &'a [u8],
    /// Large buffers written raw beside it.
    pub buffers: Vec<&'a [u8]>,
}

/// The prefix's flag: a freshness deadline follows the stream length.
pub(crate) const FRESH_UNTIL: u32 = 1;

impl Payload<'_> {
    fn prefix_len(&self, fresh: bool) -> usize {
        align(16 + 8 * usize::from(fresh) + 8 * self.buffers.len())
    }

    /// The payload's length before compression.
    pub fn len(&self) -> usize {
        self.len_with(false)
    }

    fn len_with(&self, fresh: bool) -> usize {
        let mut n = self.prefix_len(fresh) + align(self.stream.len());
        for b in &self.buffers {
            n += align(b.len());
        }
        n
    }

    /// Whether the payload is empty (it never is: the prefix is always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write_to(&self, w: &mut impl Write, fresh_until: Option<u64>) -> io::Result<()> {
        let len = self.prefix_len(fresh_until.is_some());
        let mut prefix = Vec::with_capacity(len);
        prefix.extend_from_slice(&(self.buffers.len() as u32).to_le_bytes());
        let flags = if fresh_until.is_some() {
            FRESH_UNTIL
        } else {
            0
        };
        prefix.extend_from_slice(&flags.to_le_bytes());
        prefix.extend_from_slice(&(self.stream.len() as u64).to_le_bytes());
        if let Some(until) = fresh_until {
            prefix.extend_from_slice(&until.to_le_bytes());
        }
        for b in &self.buffers {
            prefix.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        prefix.resize(len, 0);
        w.write_all(&prefix)?;
        write_padded(w, self.stream)?;
        for b in &self.buffers {
            write_padded(w, b)?;
        }
        Ok(())
    }

    /// A sample of the payload for the compressibility test: the start of the stream
    /// and the middle of the largest buffer.
    fn sample(&self) -> Vec<u8> {
        let mut s = self.stream[..self.stream.len().min(SAMPLE_LEN / 4)].to_vec();
        if let Some(big) = self.buffers.iter().max_by_key(|b| b.len()) {
            let start = big.len().saturating_sub(SAMPLE_LEN) / 2;
            s.extend_from_slice(&big[start..(start + SAMPLE_LEN).min(big.len())]);
        }
        s
    }
}

pub(crate) fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

fn write_padded(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    let pad = align(bytes.len()) - bytes.len();
    w.write_all(&[0u8; ALIGN][..pad])
}

/// Signs and verifies entries with HMAC-SHA256 (`secret=` or `TWAT_CACHE_SECRET`).
#[derive(Clone)]
pub struct Signer {
    pub(crate) mac: HmacSha256,
}

impl Signer {
    /// A signer for this secret (any length).
    pub fn new(secret: &[u8]) -> Self {
        Signer {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)") // never print key material
    }
}

/// What has been seen of a body: its checksum, its signature and its length.
pub(crate) struct Sums {
    pub(crate) sum: ChunkSum,
    pub(crate) mac: Option<HmacSha256>,
    pub(crate) len: u64,
}

impl Sums {
    fn see(&mut self, bytes: &[u8]) {
        self.sum.update(bytes);
        if let Some(mac) = &mut self.mac {
            mac.update(bytes);
        }
        self.len += bytes.len() as u64;
    }
}

/// Hashes (and signs) the body bytes that pass through it, in either direction.
pub(crate) struct Checked<T> {
    pub(crate) inner: T,
    pub(crate) sums: Sums,
}

impl<T> Checked<T> {
    pub(crate) fn new(inner: T, mac: Option<HmacSha256>) -> Self {
        Checked {
            inner,
            sums: Sums {
                sum: ChunkSum::default(),
                mac,
                len: 0,
            },
        }
    }
}

impl<W: Write + Send> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sums.see(&buf[..n]);
        Ok(n)
    }

    /// A large buffer goes out in pieces, each checked on another core while the next is
    /// written (one write of 100 MB was also several times slower than pieces on the
    /// machines we measured).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.len() < 2 * PIPELINE_PIECE {
            // A failed write abandons the entry, so the bytes can be checked after.
            self.inner.write_all(buf)?;
            self.sums.see(buf);
            return Ok(());
        }
        let Checked { inner, sums } = self;
        crate::parallel::install(|parallel| {
            if !parallel {
                inner.write_all(buf)?;
                sums.see(buf);
                return Ok(());
            }
            let mut previous: Option<&[u8]> = None;
            let mut pieces = buf.chunks(PIPELINE_PIECE);
            loop {
                let next = pieces.next();
                let (written, ()) = rayon::join(
                    || next.map_or(Ok(()), |p| inner.write_all(p)),
                    || previous.map_or((), |p| sums.see(p)),
                );
                written?;
                match next {
                    Some(p) => previous = Some(p),
                    None => return Ok(()),
                }
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Large raw buffers are read in pieces of this size, each checked while the next is read.
pub(crate) const PIPELINE_PIECE: usize = 4 << 20;

impl<R: Read + Send> Checked<R> {
    /// Fills `out`, checking each piece on another core while the next one is read, so
    /// that a large load costs the read alone.
    pub(crate) fn read_pipelined(&mut self, out: &mut [u8]) -> io::Result<()> {
        let Checked { inner, sums } = self;
        crate::parallel::install(|parallel| {
            if !parallel {
                inner.read_exact(out)?;
                sums.see(out);
                return Ok(());
            }
            let mut pieces = out.chunks_mut(PIPELINE_PIECE);
            let mut previous: Option<&mut [u8]> = None;
            loop {
                let next = pieces.next();
                let done = next.is_none();
                let (read, ()) = rayon::join(
                    || next.map_or(Ok(None), |p| inner.read_exact(p).map(|()| Some(p))),
                    || previous.as_deref().map_or((), |p| sums.see(p)),
                );
                previous = read?;
                if done {
                    return Ok(());
                }
            }
        })
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sums.see(&buf[..n]);
        Ok(n)
    }
}

/// Chooses the codec: `Compression::None` when asked, when the payload is tiny, or
/// when a sample of it does not shrink by at least 10%.
fn choose(payload: &Payload<'_>, wanted: Compression) -> Compression {
    if wanted == Compression::None || payload.len() < COMPRESS_MIN {
        return Compression::None;
    }
    let sample = payload.sample();
    let packed = match wanted {
        Compression::Lz4 => lz4_flex::compress(&sample).len(),
        _ => zstd::bulk::compress(&sample, 1).map_or(usize::MAX, |c| c.len()),
    };
    if packed as f64 > sample.len() as f64 * INCOMPRESSIBLE {
        Compression::None
    } else {
        wanted
    }
}

/// Writes one entry at the writer's current position; returns its length in bytes.
/// The header is written last (the writer seeks back to it), so a reader can never
/// take a half-written entry for a whole one: its checksum would not match.
pub fn write_frame<W: Write + Seek + Send>(
    w: &mut W,
    payload: &Payload<'_>,
    compression: Compression,
    signer: Option<&Signer>,
) -> Result<u64, Error> {
    write_frame_until(w, payload, compression, signer, None)
}

/// [`write_frame`] of an entry that stops being fresh at `fresh_until` (Unix
/// microseconds; see [`crate::Lifetime`]), after which a reader finds it stale
/// ([`crate::Layout::fresh_until`]). The deadline is inside the checked (and signed)
/// body.
///
/// ```
/// use std::io::Cursor;
/// use twat_cache::{write_frame_until, small_entry, Compression, Payload};
///
/// let payload = Payload { stream: b"pickle", buffers: vec![] };
/// let mut frame = Cursor::new(Vec::new());
/// write_frame_until(&mut frame, &payload, Compression::None, None, Some(1_700_000_000_000_000))?;
/// let small = small_entry(frame.get_ref())?.expect("a small raw entry");
/// assert_eq!((small.stream, small.fresh_until), (&b"pickle"[..], Some(1_700_000_000_000_000)));
/// # Ok::<(), twat_cache::Error>(())
/// ```
pub fn write_frame_until<W: Write + Seek + Send>(
    w: &mut W,
    payload: &Payload<'_>,
    compression: Compression,
    signer: Option<&Signer>,
    fresh_until: Option<u64>,
) -> Result<u64, Error> {
    let start = w.stream_position()?;
    w.write_all(&[0u8; HEADER_LEN])?;
    let codec = choose(payload, compression);
    let mac = signer.map(|s| s.mac.clone());
    let mut body = Checked::new(&mut *w, mac);
    match codec {
        Compression::None => payload.write_to(&mut body, fresh_until)?,
        Compression::Zstd => {
            let mut z = zstd::Encoder::new(&mut body, ZSTD_LEVEL)?;
            if payload.len() >= MULTITHREAD_MIN {
                z.multithread(2)?;
            }
            payload.write_to(&mut z, fresh_until)?;
            z.finish()?;
        }
        Compression::Lz4 => {
            let mut z = lz4_flex::frame::FrameEncoder::new(&mut body);
            payload.write_to(&mut z, fresh_until)?;
            z.finish().map_err(|e| Error::io(io::Error::other(e)))?;
        }
    }
    let (sum, mac, body_len) = (body.sums.sum.digest(), body.sums.mac, body.sums.len);
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(MAGIC);
    header[4] = codec.code();
    header[5] = if mac.is_some() { SIGNED } else { 0 };
    let payload_len = payload.len_with(fresh_until.is_some());
    header[8..16].copy_from_slice(&(payload_len as u64).to_le_bytes());
    header[16..24].copy_from_slice(&body_len.to_le_bytes());
    header[24..32].copy_from_slice(&sum.to_le_bytes());
    if let Some(mut mac) = mac {
        mac.update(&header[..32]);
        header[32..].copy_from_slice(&mac.finalize().into_bytes());
    }
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(start))?;
    w.write_all(&header)?;
    w.seek(SeekFrom::Start(end))?;
    Ok(end - start)
}

/// The parsed header of an entry.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// How the body is stored.
    pub codec: Compression,
    /// Whether the entry carries an HMAC.
    pub signed: bool,
    pub(crate) payload_len: u64,
    pub(crate) body_len: u64,
    pub(crate) sum: u64,
    pub(crate) raw: [u8; HEADER_LEN],
}

impl Header {
    /// The entry's total length (header and body).
    pub fn entry_len(&self) -> u64 {
        HEADER_LEN as u64 + self.body_len
    }
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}
