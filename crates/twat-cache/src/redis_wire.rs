//! A non-blocking connection to one Redis server for an event loop to drive (the
//! Python binding's async hit path): the loop waits for the socket to be readable, so
//! an async hit costs one round trip and no thread. Only lookups travel here; every
//! other command takes the pooled, blocking path of [`RedisStore`].
//!
//! Requests are built and replies parsed here (RESP2); the owner writes, waits for
//! readability, and reads.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};

use crate::redis_url::RedisUrl;
use crate::Error;

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(buf),
            Stream::Unix(s) => s.write_all(buf),
        }
    }

    fn set_read_timeout(&self, t: std::time::Duration) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(t)),
            Stream::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn set_write_timeout(&self, t: std::time::Duration) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }
}

/// One reply of the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A missing value.
    Nil,
    /// A bulk string.
    Bulk(Vec<u8>),
    /// A simple string (`+OK`).
    Simple(String),
    /// An integer.
    Int(i64),
    /// An error reply (`-ERR ...`).
    Error(String),
}

/// A connection for an event loop. Made with blocking I/O (bounded by the store's
/// timeout), then switched to non-blocking.
pub struct Wire {
    stream: Stream,
    input: Vec<u8>,
    pid: u32,
    /// Bytes of a request that could not be written at once: the wire is then broken
    /// (a request is ~100 bytes; a full send buffer means a server that stopped reading).
    broken: bool,
    /// The socket's read timeout as last set: set again only when a deadline needs a
    /// shorter one (each setting is a system call on the hit path).
    read_timeout: Option<Duration>,
}

/// Values at least this large are read straight into their own buffer.
const LARGE: usize = 256 * 1024;

/// `(header length, body length)` when `buf` starts with the header of a bulk string of
/// [`LARGE`] bytes or more whose body has not all arrived.
fn large_bulk(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&buf[1..end]).ok()?.parse().ok()?;
    (len >= LARGE && buf.len() < end + 2 + len + 2).then_some((end + 2, len))
}

/// One RESP2 reply at the start of `buf`, and its length; `None` if incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, Error> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let bad = || Error::Remote("a reply that is not RESP".into());
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| bad())?;
    let next = end + 2;
    let reply = match buf.first() {
        Some(b'+') => Reply::Simple(line.to_owned()),
        Some(b'-') => Reply::Error(line.to_owned()),
        Some(b':') => Reply::Int(line.parse().map_err(|_| bad())?),
        Some(b'$') => {
            let len: i64 = line.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let len = len as usize;
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            return Ok(Some((
                Reply::Bulk(buf[next..next + len].to_vec()),
                next + len + 2,
            )));
        }
        Some(b'_') => Reply::Nil,
        _ => return Err(bad()),
    };
    Ok(Some((reply, next)))
}

/// A command in RESP.
pub(crate) fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Wire {
    /// The socket, for the loop to watch.
    pub fn fd(&self) -> RawFd {
        match &self.stream {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Whether the wire can no longer be used (a write that would block, an error, a
    /// closed socket, or a fork since it was made).
    pub fn broken(&self) -> bool {
        self.broken || self.pid != std::process::id()
    }

    /// Writes `bytes` whole, without waiting; `false` (and the wire broken) if it
    /// cannot.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        if self.broken() {
            return false;
        }
        match self.stream.write(bytes) {
            Ok(n) if n == bytes.len() => true,
            _ => {
                self.broken = true;
                false
            }
        }
    }

    /// Reads what has arrived and returns the whole replies in it, in order. A closed
    /// socket or a damaged reply is an error (the wire is then broken).
    pub fn receive(&mut self) -> Result<Vec<Reply>, Error> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.broken = true;
                    return Err(Error::Remote("the server closed the connection".into()));
                }
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.broken = true;
                    return Err(Error::Remote(e.to_string()));
                }
            }
        }
        let mut replies = Vec::new();
        let mut at = 0;
        loop {
            match parse(&self.input[at..]) {
                Ok(Some((reply, used))) => {
                    replies.push(reply);
                    at += used;
                }
                Ok(None) => break,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            }
        }
        self.input.drain(..at);
        Ok(replies)
    }
}

impl Wire {
    /// Sends a request, given in parts (a large value is written from where it is,
    /// not copied into one buffer), and reads `replies` replies, blocking, all before
    /// `deadline`: one timeout for the whole exchange, however many reads it takes.
    pub(crate) fn round_trip(
        &mut self,
        parts: &[&[u8]],
        replies: usize,
        deadline: Instant,
    ) -> Result<Vec<Reply>, Error> {
        let left = |what: &str| {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| Error::Remote(format!("{what} timed out")))
        };
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let sent = if total <= 64 * 1024 {
            // Small: one write, one packet, into a send buffer with room for it (the
            // write timeout set at connection time is never reached).
            let _ = left("a request")?;
            self.stream.write_all(&parts.concat())
        } else {
            self.stream.set_write_timeout(left("a request")?)?;
            parts.iter().try_for_each(|p| self.stream.write_all(p))
        };
        if sent.is_err() {
            self.broken = true;
            return Err(Error::Remote(
                "a request could not be sent (or timed out)".into(),
            ));
        }
        let mut out = Vec::with_capacity(replies);
        let mut chunk = [0u8; 64 * 1024];
        while out.len() < replies {
            while let Some((reply, used)) = parse(&self.input)? {
                self.input.drain(..used);
                out.push(reply);
                if out.len() == replies {
                    return Ok(out);
                }
            }
            self.read_before(left("a reply")?)?;
            if let Some(body) = large_bulk(&self.input) {
                // A large value: read straight into a buffer of its size.
                let reply = self.read_bulk(body, &left)?;
                out.push(reply);
                continue;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.broken = true;
                    return Err(Error::Remote("the server closed the connection".into()));
                }
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = true;
                    let what = if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                        format!("a reply timed out ({e})")
                    } else {
                        e.to_string()
                    };
                    return Err(Error::Remote(what));
                }
            }
        }
        Ok(out)
    }
}

impl Wire {
    /// A wire in blocking mode to the one server of `url`, connected and
    /// authenticated (AUTH, SELECT as the URL says) within `timeout` per step; `None`
    /// for a cluster or TLS, which have no wire.
    pub(crate) fn connect(url: &RedisUrl, timeout: Duration) -> Result<Option<Wire>, Error> {
        if url.cluster {
            return Ok(None);
        }
        let info = url.nodes[0]
            .as_str()
            .into_connection_info()
            .map_err(|e| Error::Remote(e.to_string()))?;
        // Plain messages: the store that called says which server (redis_store.rs).
        let failed = |e: std::io::Error| Error::Remote(e.to_string());
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
                    .map_err(failed)?
                    .next()
                    .ok_or_else(|| Error::Remote("the host does not resolve".into()))?;
                let s = TcpStream::connect_timeout(&addr, timeout).map_err(failed)?;
                s.set_nodelay(true).map_err(failed)?;
                s.set_read_timeout(Some(timeout)).map_err(failed)?;
                s.set_write_timeout(Some(timeout)).map_err(failed)?;
                Stream::Tcp(s)
            }
            ConnectionAddr::Unix(path) => {
                let s = UnixStream::connect(path).map_err(failed)?;
                s.set_read_timeout(Some(timeout)).map_err(failed)?;
                s.set_write_timeout(Some(timeout)).map_err(failed)?;
                Stream::Unix(s)
            }
            _ => return Ok(None),
        };
        let mut wire = Wire {
            stream,
            input: Vec::new(),
            pid: std::process::id(),
            broken: false,
            read_timeout: Some(timeout),
        };
        // The handshake, blocking: AUTH and SELECT as the URL says.
        let settings = info.redis_settings();
        let mut hello = Vec::new();
        let mut expected = 0;
        if let Some(password) = settings.password() {
            let mut parts: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = settings.username() {
                parts.push(user.as_bytes());
            }
            parts.push(password.as_bytes());
            hello.extend(command(&parts));
            expected += 1;
        }
        let db = settings.db().to_string();
        if settings.db() != 0 {
            hello.extend(command(&[b"SELECT", db.as_bytes()]));
            expected += 1;
        }
        if expected > 0 {
            wire.stream.write(&hello).map_err(failed)?;
            let mut got = Vec::new();
            while got.len() < expected {
                let mut chunk = [0u8; 4096];
                let n = wire.stream.read(&mut chunk).map_err(failed)?;
                if n == 0 {
                    return Err(Error::Remote("the server closed the connection".into()));
                }
                wire.input.extend_from_slice(&chunk[..n]);
                while let Some((reply, used)) = parse(&wire.input)? {
                    wire.input.drain(..used);
                    got.push(reply);
                }
            }
            if let Some(Reply::Error(e)) = got.iter().find(|r| matches!(r, Reply::Error(_))) {
                return Err(Error::Remote(e.clone()));
            }
        }
        Ok(Some(wire))
    }

    /// Switches to non-blocking mode, for an event loop to drive.
    pub fn into_nonblocking(mut self) -> Result<Wire, Error> {
        self.read_timeout = None;
        self.stream
            .set_nonblocking(true)
            .map_err(|e| Error::Remote(e.to_string()))?;
        Ok(self)
    }
}

impl Wire {
    /// Makes the next read give up after about `left`: at the latest within a
    /// millisecond of it, at the earliest at four fifths of it.
    fn read_before(&mut self, left: Duration) -> Result<(), Error> {
        let stale = self
            .read_timeout
            .is_none_or(|set| set > left + Duration::from_millis(1) || set < left * 4 / 5);
        if stale {
            self.stream.set_read_timeout(left)?;
            self.read_timeout = Some(left);
        }
        Ok(())
    }

    /// Reads the rest of a large bulk string whose header (and maybe some of its body)
    /// is in `input`, into one buffer of its size.
    fn read_bulk(
        &mut self,
        (header, len): (usize, usize),
        left: &dyn Fn(&str) -> Result<Duration, Error>,
    ) -> Result<Reply, Error> {
        let mut body = vec![0u8; len + 2];
        let have = (self.input.len() - header).min(len + 2);
        body[..have].copy_from_slice(&self.input[header..header + have]);
        self.input.drain(..header + have);
        let mut at = have;
        while at < body.len() {
            self.read_before(left("a reply")?)?;
            match self.stream.read(&mut body[at..]) {
                Ok(0) => {
                    self.broken = true;
                    return Err(Error::Remote("the server closed the connection".into()));
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Error::Remote(format!("a reply timed out ({e})")));
                }
            }
        }
        body.truncate(len);
        Ok(Reply::Bulk(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        assert_eq!(
            parse(b"$3\r\nabc\r\n").unwrap(),
            Some((Reply::Bulk(b"abc".to_vec()), 9))
        );
        assert_eq!(parse(b"$3\r\nab").unwrap(), None);
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Reply::Nil, 5)));
        assert_eq!(
            parse(b"+OK\r\n").unwrap(),
            Some((Reply::Simple("OK".into()), 5))
        );
        assert_eq!(parse(b":42\r\n").unwrap(), Some((Reply::Int(42), 5)));
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Some((Reply::Error("ERR no".into()), 9))
        );
        assert_eq!(parse(b"+OK").unwrap(), None);
        assert!(parse(b"?what\r\n").is_err());
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(command(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
