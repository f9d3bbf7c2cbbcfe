//! The bodies of the fuzz targets (`crates/twat-cache/fuzz`, run by `make fuzz`), kept
//! here so that `cargo test` runs the same code on a deterministic sample of inputs
//! (`tests/fuzz_smoke.rs`). Each takes any bytes and must neither panic, hang, nor
//! read out of bounds: once a folder is shared, every byte of an entry and of an
//! index row is attacker-controlled.

use std::io::Cursor;

use crate::checksum::checksum_of;
use crate::codec::{HEADER_LEN, MAGIC, SIGNED};
use crate::{read_frame, small_stream, FrameReader, KeyHasher, Signer, Tag};

/// An entry as read from a file or an index row, as it is and with its header forged
/// to match its body (a checksum is no secret: an attacker can always fix it up), so
/// that the layout parsing behind the checksum is reached too.
pub fn frame(data: &[u8]) {
    let signer = Signer::new(b"fuzzing");
    read_whole(data, &signer);
    if data.len() >= HEADER_LEN {
        let mut forged = data.to_vec();
        forged[..4].copy_from_slice(MAGIC);
        forged[4] %= 3; // a known codec
        let body_len = (forged.len() - HEADER_LEN) as u64;
        if forged[6] & 1 == 0 {
            forged[16..24].copy_from_slice(&body_len.to_le_bytes());
        }
        if forged[6] & 2 == 0 && forged[4] == 0 {
            forged[8..16].copy_from_slice(&body_len.to_le_bytes());
        }
        let sum = checksum_of(&forged[HEADER_LEN..]);
        forged[24..32].copy_from_slice(&sum.to_le_bytes());
        forged[5] &= SIGNED;
        read_whole(&forged, &signer);
    }
}

fn read_whole(entry: &[u8], signer: &Signer) {
    let _ = small_stream(entry);
    let _ = read_frame(entry, None);
    let _ = read_frame(entry, Some(signer));
    // Step by step, as the Python binding reads (buffers into memory of its own).
    if let Ok(mut reader) = FrameReader::open(Cursor::new(entry), None) {
        if let Ok(layout) = reader.layout() {
            for &len in &layout.buffer_lens {
                if len > entry.len() * 4 + 4096 || reader.read_buffer(&mut vec![0; len]).is_err() {
                    return;
                }
            }
            let _ = reader.finish();
        }
    }
}

/// An index row: its file name and its inline value.
pub fn row(data: &[u8]) {
    let cut = data
        .first()
        .map_or(0, |&n| (n as usize).min(data.len().saturating_sub(1)));
    let (name, value) = data
        .get(1..)
        .unwrap_or_default()
        .split_at(cut.min(data.len().saturating_sub(1)));
    let name = String::from_utf8_lossy(name);
    if crate::entry::valid_data_name(&name) {
        // A name that passes stays inside data/: two parts, no separators or dots.
        assert!(!name.contains("..") && !name.starts_with('/') && name.matches('/').count() == 1);
    }
    frame(value);
}

/// A sequence of encoder operations: hashing it twice gives one digest, and the
/// digest never panics whatever the operations.
pub fn keyhash(data: &[u8]) {
    let a = encode(data, false);
    assert_eq!(a, encode(data, false));
    let b = encode(data, true);
    assert_eq!(b, encode(data, true));
}

fn encode(data: &[u8], secure: bool) -> crate::KeyDigest {
    let mut h = KeyHasher::new(secure);
    let mut digests = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let take = (op as usize >> 3).min(tail.len());
        let (arg, tail) = tail.split_at(take);
        rest = tail;
        let text = String::from_utf8_lossy(arg);
        match op & 7 {
            0 => h.none(),
            1 => h.int(i64::from_le_bytes(pad8(arg))),
            2 => h.float(f64::from_le_bytes(pad8(arg))),
            3 => h.str(&text),
            4 => h.bytes(arg),
            5 => h.begin(if op & 8 == 0 { Tag::Tuple } else { Tag::List }, arg.len()),
            6 => {
                let mut child = h.child();
                child.bytes(arg);
                digests.push(child.finish());
                h.unordered(Tag::Set, digests.clone());
            }
            _ => {
                let shape = [arg.len()];
                h.array("numpy.ndarray", &text, &shape, arg);
            }
        }
    }
    h.finish()
}

fn pad8(arg: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    let n = arg.len().min(8);
    out[..n].copy_from_slice(&arg[..n]);
    out
}
