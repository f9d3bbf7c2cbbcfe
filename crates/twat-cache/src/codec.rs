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
//!   n_buffers u32, 0u32, stream length u64, buffer lengths u64 * n, padding to 64
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

const MAGIC: &[u8; 4] = b"TWC1";
/// Bytes before the body; also the alignment of every buffer in an uncompressed entry.
pub const HEADER_LEN: usize = 64;
const ALIGN: usize = 64;
const SIGNED: u8 = 1;
const ZSTD_LEVEL: i32 = 3;
/// Below this, compression is not tried: it cannot pay for itself.
const COMPRESS_MIN: usize = 512;
/// A sample that compresses to more than this fraction is "incompressible": stored raw.
const INCOMPRESSIBLE: f64 = 0.9;
const SAMPLE_LEN: usize = 128 * 1024;
/// Payloads this large are compressed by two zstd workers.
const MULTITHREAD_MIN: usize = 4 << 20;

type HmacSha256 = Hmac<Sha256>;

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

    fn from_code(code: u8) -> Option<Self> {
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

impl Payload<'_> {
    fn prefix_len(&self) -> usize {
        align(16 + 8 * self.buffers.len())
    }

    /// The payload's length before compression.
    pub fn len(&self) -> usize {
        let mut n = self.prefix_len() + align(self.stream.len());
        for b in &self.buffers {
            n += align(b.len());
        }
        n
    }

    /// Whether the payload is empty (it never is: the prefix is always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut prefix = Vec::with_capacity(self.prefix_len());
        prefix.extend_from_slice(&(self.buffers.len() as u32).to_le_bytes());
        prefix.extend_from_slice(&0u32.to_le_bytes());
        prefix.extend_from_slice(&(self.stream.len() as u64).to_le_bytes());
        for b in &self.buffers {
            prefix.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        prefix.resize(self.prefix_len(), 0);
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

fn align(n: usize) -> usize {
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
    mac: HmacSha256,
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

/// Hashes (and signs) the body bytes that pass through it, in either direction.
struct Checked<T> {
    inner: T,
    sum: ChunkSum,
    mac: Option<HmacSha256>,
    len: u64,
}

impl<T> Checked<T> {
    fn new(inner: T, mac: Option<HmacSha256>) -> Self {
        Checked {
            inner,
            sum: ChunkSum::default(),
            mac,
            len: 0,
        }
    }

    fn see(&mut self, bytes: &[u8]) {
        self.sum.update(bytes);
        if let Some(mac) = &mut self.mac {
            mac.update(bytes);
        }
        self.len += bytes.len() as u64;
    }
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.see(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Large raw buffers are read in pieces of this size, each checked while the next is read.
const PIPELINE_PIECE: usize = 8 << 20;

impl<R: Read + Send> Checked<R> {
    /// Fills `out`, checking each piece on another core while the next one is read, so
    /// that a large load costs the read alone.
    fn read_pipelined(&mut self, out: &mut [u8]) -> io::Result<()> {
        let Checked {
            inner,
            sum,
            mac,
            len,
        } = self;
        let mut pieces = out.chunks_mut(PIPELINE_PIECE);
        let mut previous: Option<&mut [u8]> = None;
        loop {
            let next = pieces.next();
            let done = next.is_none();
            let (read, ()) = rayon::join(
                || next.map_or(Ok(None), |p| inner.read_exact(p).map(|()| Some(p))),
                || {
                    if let Some(p) = previous.as_deref() {
                        sum.update(p);
                        if let Some(mac) = mac.as_mut() {
                            mac.update(p);
                        }
                    }
                },
            );
            if let Some(p) = previous.take() {
                *len += p.len() as u64;
            }
            previous = read?;
            if done {
                return Ok(());
            }
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.see(&buf[..n]);
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
pub fn write_frame<W: Write + Seek>(
    w: &mut W,
    payload: &Payload<'_>,
    compression: Compression,
    signer: Option<&Signer>,
) -> Result<u64, Error> {
    let start = w.stream_position()?;
    w.write_all(&[0u8; HEADER_LEN])?;
    let codec = choose(payload, compression);
    let mac = signer.map(|s| s.mac.clone());
    let mut body = Checked::new(&mut *w, mac);
    match codec {
        Compression::None => payload.write_to(&mut body)?,
        Compression::Zstd => {
            let mut z = zstd::Encoder::new(&mut body, ZSTD_LEVEL)?;
            if payload.len() >= MULTITHREAD_MIN {
                z.multithread(2)?;
            }
            payload.write_to(&mut z)?;
            z.finish()?;
        }
        Compression::Lz4 => {
            let mut z = lz4_flex::frame::FrameEncoder::new(&mut body);
            payload.write_to(&mut z)?;
            z.finish().map_err(|e| Error::io(io::Error::other(e)))?;
        }
    }
    let (sum, mac, body_len) = (body.sum.digest(), body.mac, body.len);
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(MAGIC);
    header[4] = codec.code();
    header[5] = if mac.is_some() { SIGNED } else { 0 };
    header[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
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
    payload_len: u64,
    body_len: u64,
    sum: u64,
    raw: [u8; HEADER_LEN],
}

impl Header {
    /// The entry's total length (header and body).
    pub fn entry_len(&self) -> u64 {
        HEADER_LEN as u64 + self.body_len
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(what.to_string())
}

/// What an entry's payload holds, read before its buffers.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The main stream.
    pub stream: Vec<u8>,
    /// The length of each buffer.
    pub buffer_lens: Vec<usize>,
    /// Where each buffer starts in the entry; meaningful when the codec is
    /// [`Compression::None`] (then each is 64-byte aligned and can be mapped).
    pub buffer_offsets: Vec<u64>,
}

enum Body<R: Read> {
    Raw(Box<Checked<io::Take<R>>>),
    Zstd(Box<zstd::Decoder<'static, io::BufReader<Checked<io::Take<R>>>>>),
    Lz4(Box<lz4_flex::frame::FrameDecoder<Checked<io::Take<R>>>>),
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Raw(r) => r.read(buf),
            Body::Zstd(r) => r.read(buf),
            Body::Lz4(r) => r.read(buf),
        }
    }
}

/// Reads an entry's payload step by step, so a caller can put each buffer straight
/// into memory it owns (one copy from the file). Nothing read is to be trusted until
/// [`FrameReader::finish`] has checked the length, the checksum and the signature.
pub struct FrameReader<R: Read> {
    header: Header,
    body: Body<R>,
    /// Payload bytes consumed so far.
    read: u64,
    /// Buffers still to read.
    pending: std::collections::VecDeque<usize>,
}

fn read_err(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        corrupt("the entry is truncated")
    } else {
        Error::Corrupt(format!("the entry cannot be decoded: {e}"))
    }
}

impl<R: Read + Send> FrameReader<R> {
    /// Reads and checks the header. With a `signer`, an unsigned entry is refused; a
    /// signed entry without one is refused too (it cannot be verified).
    pub fn open(mut r: R, signer: Option<&Signer>) -> Result<Self, Error> {
        let mut raw = [0u8; HEADER_LEN];
        r.read_exact(&mut raw).map_err(read_err)?;
        if &raw[..4] != MAGIC {
            return Err(corrupt("not a twat-cache entry (bad magic)"));
        }
        let field = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        let header = Header {
            codec: Compression::from_code(raw[4]).ok_or_else(|| corrupt("unknown codec"))?,
            signed: raw[5] & SIGNED != 0,
            payload_len: field(8),
            body_len: field(16),
            sum: field(24),
            raw,
        };
        match (header.signed, signer) {
            (false, Some(_)) => return Err(corrupt("unsigned entry in a signed cache")),
            (true, None) => return Err(corrupt("signed entry, and no secret to verify it")),
            _ => {}
        }
        let checked = Checked::new(r.take(header.body_len), signer.map(|s| s.mac.clone()));
        let body = match header.codec {
            Compression::None => Body::Raw(Box::new(checked)),
            Compression::Zstd => Body::Zstd(Box::new(zstd::Decoder::new(checked)?)),
            Compression::Lz4 => Body::Lz4(Box::new(lz4_flex::frame::FrameDecoder::new(checked))),
        };
        Ok(FrameReader {
            header,
            body,
            read: 0,
            pending: Default::default(),
        })
    }

    /// The entry's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        self.body.read_exact(out).map_err(read_err)?;
        self.read += out.len() as u64;
        Ok(())
    }

    fn skip_padding(&mut self, len: usize) -> Result<(), Error> {
        let pad = align(len) - len;
        self.fill(&mut [0u8; ALIGN][..pad])
    }

    /// Reads the payload's prefix and its main stream.
    pub fn layout(&mut self) -> Result<Layout, Error> {
        let mut fixed = [0u8; 16];
        self.fill(&mut fixed)?;
        let n = u32::from_le_bytes(fixed[..4].try_into().expect("4 bytes")) as usize;
        let stream_len = u64::from_le_bytes(fixed[8..].try_into().expect("8 bytes"));
        // Lengths come from the file: bound them by the payload before allocating.
        let limit = self.header.payload_len;
        if (16 + 8 * n as u64) > limit || stream_len > limit {
            return Err(corrupt("the entry's layout does not fit its length"));
        }
        let mut lens = vec![0u8; 8 * n];
        self.fill(&mut lens)?;
        let buffer_lens: Vec<usize> = lens
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        self.skip_padding(16 + 8 * n)?;
        let mut offset = self.read + align(stream_len as usize) as u64;
        let total: u64 = buffer_lens.iter().map(|&l| align(l) as u64).sum::<u64>() + offset;
        if total != limit {
            return Err(corrupt("the entry's layout does not fit its length"));
        }
        let mut stream = vec![0u8; stream_len as usize];
        self.fill(&mut stream)?;
        self.skip_padding(stream.len())?;
        let mut buffer_offsets = Vec::with_capacity(n);
        for &len in &buffer_lens {
            buffer_offsets.push(HEADER_LEN as u64 + offset);
            offset += align(len) as u64;
        }
        self.pending = buffer_lens.iter().copied().collect();
        Ok(Layout {
            stream,
            buffer_lens,
            buffer_offsets,
        })
    }

    /// Reads the next buffer into `out`, which must have that buffer's length.
    pub fn read_buffer(&mut self, out: &mut [u8]) -> Result<(), Error> {
        match self.pending.pop_front() {
            Some(len) if len == out.len() => {}
            _ => return Err(corrupt("buffer read out of order")),
        }
        match &mut self.body {
            Body::Raw(checked) if out.len() >= 2 * PIPELINE_PIECE => {
                checked.read_pipelined(out).map_err(read_err)?;
                self.read += out.len() as u64;
            }
            _ => self.fill(out)?,
        }
        self.skip_padding(out.len())
    }

    /// Reads what is left (for a caller that maps the buffers instead) and checks the
    /// whole entry: payload length, body length, checksum and signature.
    pub fn finish(mut self) -> Result<(), Error> {
        let mut scratch = [0u8; 4096];
        loop {
            let n = self.body.read(&mut scratch).map_err(read_err)?;
            if n == 0 {
                break;
            }
            self.read += n as u64;
        }
        if self.read != self.header.payload_len {
            return Err(corrupt("the entry's payload has the wrong length"));
        }
        let mut checked = match self.body {
            Body::Raw(c) => *c,
            Body::Zstd(z) => z.finish().into_inner(),
            Body::Lz4(z) => z.into_inner(),
        };
        // A decompressor may stop before the end of the body: whatever follows is
        // checked too, so a stray tail is caught.
        io::copy(&mut checked, &mut io::sink()).map_err(read_err)?;
        if checked.len != self.header.body_len {
            return Err(corrupt("the entry is truncated"));
        }
        if checked.sum.digest() != self.header.sum {
            return Err(corrupt("checksum mismatch"));
        }
        if let Some(mut mac) = checked.mac {
            mac.update(&self.header.raw[..32]);
            mac.verify_slice(&self.header.raw[32..]).map_err(|_| {
                corrupt("signature mismatch (wrong secret, or the entry was altered)")
            })?;
        }
        Ok(())
    }
}

/// A whole entry read into memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The main stream.
    pub stream: Vec<u8>,
    /// The buffers, in order.
    pub buffers: Vec<Vec<u8>>,
}

/// Reads and verifies a whole entry.
pub fn read_frame<R: Read + Send>(r: R, signer: Option<&Signer>) -> Result<Loaded, Error> {
    let mut reader = FrameReader::open(r, signer)?;
    let layout = reader.layout()?;
    let mut buffers = Vec::with_capacity(layout.buffer_lens.len());
    for &len in &layout.buffer_lens {
        let mut b = vec![0u8; len];
        reader.read_buffer(&mut b)?;
        buffers.push(b);
    }
    reader.finish()?;
    Ok(Loaded {
        stream: layout.stream,
        buffers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn entry(payload: &Payload<'_>, c: Compression, signer: Option<&Signer>) -> Vec<u8> {
        let mut w = Cursor::new(Vec::new());
        let n = write_frame(&mut w, payload, c, signer).unwrap();
        let bytes = w.into_inner();
        assert_eq!(n as usize, bytes.len());
        bytes
    }

    fn compressible() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect()
    }

    #[test]
    fn round_trips_every_codec() {
        let big = compressible();
        let small = b"tiny".to_vec();
        let payload = Payload {
            stream: b"stream bytes",
            buffers: vec![&big, &small, &[]],
        };
        for c in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let bytes = entry(&payload, c, None);
            let r = FrameReader::open(&bytes[..], None).unwrap();
            assert_eq!(r.header().codec, c, "compressible data is compressed");
            let loaded = read_frame(&bytes[..], None).unwrap();
            assert_eq!(loaded.stream, b"stream bytes");
            assert_eq!(loaded.buffers, vec![big.clone(), small.clone(), vec![]]);
        }
    }

    #[test]
    fn raw_buffers_sit_at_aligned_offsets() {
        let big = compressible();
        let payload = Payload {
            stream: b"s",
            buffers: vec![b"abc", &big],
        };
        let bytes = entry(&payload, Compression::None, None);
        let mut r = FrameReader::open(&bytes[..], None).unwrap();
        let layout = r.layout().unwrap();
        for (&off, &len) in layout.buffer_offsets.iter().zip(&layout.buffer_lens) {
            assert_eq!(off % 64, 0);
            let off = off as usize;
            assert_eq!(
                &bytes[off..off + len],
                payload.buffers[layout
                    .buffer_offsets
                    .iter()
                    .position(|&o| o as usize == off)
                    .unwrap()]
            );
        }
        r.finish().unwrap();
    }

    #[test]
    fn incompressible_data_is_stored_raw() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let payload = Payload {
            stream: b"",
            buffers: vec![&noise],
        };
        let bytes = entry(&payload, Compression::Zstd, None);
        assert_eq!(
            FrameReader::open(&bytes[..], None).unwrap().header().codec,
            Compression::None
        );
        assert_eq!(read_frame(&bytes[..], None).unwrap().buffers[0], noise);
    }

    #[test]
    fn any_flipped_or_missing_byte_is_caught() {
        let big = compressible();
        let payload = Payload {
            stream: b"stream",
            buffers: vec![&big[..5000]],
        };
        for c in [Compression::None, Compression::Zstd] {
            let bytes = entry(&payload, c, None);
            for at in [0, 4, 9, 17, 25, 70, bytes.len() / 2, bytes.len() - 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 0x40;
                assert!(
                    read_frame(&bad[..], None).is_err(),
                    "flip at {at} with {c:?}"
                );
            }
            for cut in [10, 64, 100, bytes.len() - 1] {
                assert!(read_frame(&bytes[..cut], None).is_err(), "cut at {cut}");
            }
        }
    }

    #[test]
    fn large_buffers_are_read_in_checked_pieces() {
        let big: Vec<u8> = (0..(2 * PIPELINE_PIECE + 12_345))
            .map(|i| (i % 253) as u8)
            .collect();
        let payload = Payload {
            stream: b"s",
            buffers: vec![&big],
        };
        let key = Signer::new(b"k");
        for signer in [None, Some(&key)] {
            let bytes = entry(&payload, Compression::None, signer);
            assert_eq!(read_frame(&bytes[..], signer).unwrap().buffers[0], big);
            for at in [200, PIPELINE_PIECE + 100, bytes.len() - 20] {
                let mut bad = bytes.clone();
                bad[at] ^= 1;
                assert!(read_frame(&bad[..], signer).is_err(), "flip at {at}");
            }
        }
    }

    #[test]
    fn signatures_are_checked() {
        let payload = Payload {
            stream: b"pickled",
            buffers: vec![],
        };
        let key = Signer::new(b"secret");
        let signed = entry(&payload, Compression::None, Some(&key));
        assert!(read_frame(&signed[..], Some(&key)).is_ok());
        assert!(read_frame(&signed[..], Some(&Signer::new(b"other"))).is_err());
        assert!(read_frame(&signed[..], None).is_err());
        let unsigned = entry(&payload, Compression::None, None);
        assert!(read_frame(&unsigned[..], Some(&key)).is_err());
    }
}
