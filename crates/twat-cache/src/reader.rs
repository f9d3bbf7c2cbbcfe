//! Reading an entry written by [`crate::write_frame`]: the header, the payload's layout,
//! then each buffer into memory the caller owns, and last the checks (length, checksum,
//! signature) before anything read may be trusted.

use std::io::{self, Read};

use hmac::Mac;

use crate::codec::{
    align, corrupt, Checked, Compression, Header, Signer, ALIGN, FRESH_UNTIL, HEADER_LEN, MAGIC,
    PIPELINE_PIECE, SIGNED,
};
use crate::Error;

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
    /// When the entry stops being fresh (Unix microseconds), for an entry stored with
    /// a grace ([`crate::write_frame_until`]); `None`: it is fresh while it exists.
    pub fresh_until: Option<u64>,
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
    pub fn open(r: R, signer: Option<&Signer>) -> Result<Self, Error> {
        Self::open_checked(r, signer, true)
    }

    /// [`FrameReader::open`]; with `strict` false a signed entry is read without a
    /// signer too (its checksum is still checked, its signature is not).
    fn open_checked(mut r: R, signer: Option<&Signer>, strict: bool) -> Result<Self, Error> {
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
        // Not strict (a check by a tool): an entry is checked as it was written, signed
        // or not.
        let signer = signer.filter(|_| strict || header.signed);
        match (header.signed, signer) {
            (false, Some(_)) => return Err(corrupt("unsigned entry in a signed cache")),
            (true, None) if strict => {
                return Err(corrupt("signed entry, and no secret to verify it"))
            }
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

    /// Reads `len` bytes that only the entry claims are there, growing the buffer as
    /// they arrive: a forged length costs no more memory than the bytes really present.
    fn fill_claimed(&mut self, len: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(len.min(1 << 20));
        (&mut self.body)
            .take(len as u64)
            .read_to_end(&mut out)
            .map_err(read_err)?;
        if out.len() != len {
            return Err(corrupt("the entry is truncated"));
        }
        self.read += len as u64;
        Ok(out)
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
        let flags = u32::from_le_bytes(fixed[4..8].try_into().expect("4 bytes"));
        let stream_len = u64::from_le_bytes(fixed[8..].try_into().expect("8 bytes"));
        if flags & !FRESH_UNTIL != 0 {
            return Err(corrupt("the entry has flags this version does not know"));
        }
        let fresh = flags & FRESH_UNTIL != 0;
        let fixed_len = 16 + 8 * usize::from(fresh);
        // Lengths come from the file: bound them by the payload before allocating.
        let limit = self.header.payload_len;
        if limit > (isize::MAX as u64) / 2
            || (fixed_len as u64 + 8 * n as u64) > limit
            || stream_len > limit
        {
            return Err(corrupt("the entry's layout does not fit its length"));
        }
        let fresh_until = if fresh {
            let mut until = [0u8; 8];
            self.fill(&mut until)?;
            Some(u64::from_le_bytes(until))
        } else {
            None
        };
        let lens = self.fill_claimed(8 * n)?;
        let buffer_lens: Vec<usize> = lens
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
            .collect();
        self.skip_padding(fixed_len + 8 * n)?;
        // Every length is the file's word: summed with overflow checks, each bounded by
        // the payload first (a forged one could otherwise wrap the total round).
        let misfit = || corrupt("the entry's layout does not fit its length");
        if buffer_lens.iter().any(|&l| l as u64 > limit) {
            return Err(misfit());
        }
        let mut offset = self.read + align(stream_len as usize) as u64;
        let total = buffer_lens
            .iter()
            .try_fold(offset, |sum, &l| sum.checked_add(align(l) as u64))
            .ok_or_else(misfit)?;
        if total != limit {
            return Err(misfit());
        }
        let stream = self.fill_claimed(stream_len as usize)?;
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
            fresh_until,
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

    /// Reads the next buffer into memory of its own (grown as the bytes arrive).
    pub fn read_buffer_vec(&mut self) -> Result<Vec<u8>, Error> {
        let Some(len) = self.pending.pop_front() else {
            return Err(corrupt("buffer read out of order"));
        };
        let out = self.fill_claimed(len)?;
        self.skip_padding(len)?;
        Ok(out)
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
        if checked.sums.len != self.header.body_len {
            return Err(corrupt("the entry is truncated"));
        }
        if checked.sums.sum.digest() != self.header.sum {
            return Err(corrupt("checksum mismatch"));
        }
        if let Some(mut mac) = checked.sums.mac {
            mac.update(&self.header.raw[..32]);
            mac.verify_slice(&self.header.raw[32..]).map_err(|_| {
                corrupt("signature mismatch (wrong secret, or the entry was altered)")
            })?;
        }
        Ok(())
    }
}

/// The checked main stream of a small entry held whole in memory (see
/// [`small_entry`]).
pub fn small_stream(entry: &[u8]) -> Result<Option<&[u8]>, Error> {
    Ok(small_entry(entry)?.map(|s| s.stream))
}

/// A small entry read in place by [`small_entry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Small<'a> {
    /// The main stream.
    pub stream: &'a [u8],
    /// When the entry stops being fresh (see [`Layout::fresh_until`]).
    pub fresh_until: Option<u64>,
}

/// The checked main stream of a small entry held whole in memory: the fast path for
/// most values, with no reader, no buffers and no copies. `Ok(None)` when the entry
/// needs [`FrameReader`] (compressed, signed, or with out-of-band buffers); a signed
/// cache must always use `FrameReader`, which refuses unsigned entries.
pub fn small_entry(entry: &[u8]) -> Result<Option<Small<'_>>, Error> {
    if entry.len() < HEADER_LEN {
        return Err(corrupt("the entry is truncated"));
    }
    if &entry[..4] != MAGIC {
        return Err(corrupt("not a twat-cache entry (bad magic)"));
    }
    if entry[4] != 0 || entry[5] & SIGNED != 0 {
        return Ok(None);
    }
    let field = |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
    let (payload_len, body_len, sum) = (field(8), field(16), field(24));
    let body = &entry[HEADER_LEN..];
    if body.len() as u64 != body_len || payload_len != body_len || body.len() < 16 {
        return Err(corrupt("the entry's payload has the wrong length"));
    }
    if crate::checksum::checksum_of(body) != sum {
        return Err(corrupt("checksum mismatch"));
    }
    let word = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    if word(0) != 0 || word(4) & !FRESH_UNTIL != 0 {
        return Ok(None); // buffers, or flags FrameReader turns down
    }
    let fresh = word(4) & FRESH_UNTIL != 0;
    let stream_len = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let start = align(16 + 8 * usize::from(fresh));
    if stream_len > body_len || (start + align(stream_len as usize)) as u64 != body_len {
        return Err(corrupt("the entry's layout does not fit its length"));
    }
    let fresh_until = fresh.then(|| u64::from_le_bytes(body[16..24].try_into().expect("8 bytes")));
    Ok(Some(Small {
        stream: &body[start..start + stream_len as usize],
        fresh_until,
    }))
}

/// A whole entry read into memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The main stream.
    pub stream: Vec<u8>,
    /// The buffers, in order.
    pub buffers: Vec<Vec<u8>>,
    /// When the entry stops being fresh (see [`Layout::fresh_until`]).
    pub fresh_until: Option<u64>,
}

/// Reads and verifies a whole entry.
pub fn read_frame<R: Read + Send>(r: R, signer: Option<&Signer>) -> Result<Loaded, Error> {
    let mut reader = FrameReader::open(r, signer)?;
    let layout = reader.layout()?;
    let mut buffers = Vec::with_capacity(layout.buffer_lens.len());
    for _ in &layout.buffer_lens {
        buffers.push(reader.read_buffer_vec()?);
    }
    reader.finish()?;
    Ok(Loaded {
        stream: layout.stream,
        buffers,
        fresh_until: layout.fresh_until,
    })
}

/// Reads a whole entry only to check it, holding one buffer at a time: its lengths and
/// checksum, and with `signer` the signature of a signed entry. An unsigned entry, or a
/// signed one read without a signer, has its checksum checked.
/// Gives back whether the entry is signed.
pub fn check_frame<R: Read + Send>(r: R, signer: Option<&Signer>) -> Result<bool, Error> {
    let mut reader = FrameReader::open_checked(r, signer, false)?;
    let signed = reader.header().signed;
    let layout = reader.layout()?;
    for _ in &layout.buffer_lens {
        drop(reader.read_buffer_vec()?);
    }
    reader.finish()?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{write_frame, Payload};
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
    fn small_entries_read_the_same_on_the_fast_path() {
        let big = compressible();
        for (stream, buffers, c) in [
            (&b"tiny"[..], vec![], Compression::None),
            (&b""[..], vec![], Compression::None),
            (&big[..300], vec![], Compression::None),
            (&b"s"[..], vec![&big[..10]], Compression::None),
            (&big[..], vec![], Compression::Zstd),
        ] {
            let payload = Payload { stream, buffers };
            let bytes = entry(&payload, c, None);
            match small_stream(&bytes).unwrap() {
                Some(fast) => assert_eq!(fast, read_frame(&bytes[..], None).unwrap().stream),
                None => assert!(!payload.buffers.is_empty() || c != Compression::None),
            }
            for at in [0, 9, 17, 30, 70, bytes.len() - 1] {
                let mut bad = bytes.clone();
                bad[at] ^= 0x10;
                assert!(
                    small_stream(&bad).is_err() || read_frame(&bad[..], None).is_err(),
                    "flip at {at}"
                );
                if let Ok(Some(_)) = small_stream(&bad) {
                    panic!("a damaged entry passed the fast path (flip at {at})");
                }
            }
            if small_stream(&bytes).unwrap().is_some() {
                assert!(small_stream(&bytes[..bytes.len() - 1]).is_err());
            }
        }
        let key = Signer::new(b"k");
        let signed = entry(
            &Payload {
                stream: b"x",
                buffers: vec![],
            },
            Compression::None,
            Some(&key),
        );
        assert_eq!(
            small_stream(&signed).unwrap(),
            None,
            "signed entries take the full path"
        );
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
