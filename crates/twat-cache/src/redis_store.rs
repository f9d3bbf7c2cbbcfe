//! [`RedisStore`]: the persistent byte store on a Redis or Valkey server (or cluster).
//!
//! Keys are short: `<prefix>:<namespace>:<generation>:<key in base64url>`. Clearing a
//! namespace is O(1): its generation (`<prefix>:<namespace>:g`) is bumped with `INCR`,
//! so no reader finds the old entries any more, and a background thread unlinks them
//! with `SCAN` (never `KEYS`). Every command has a timeout; connections are pooled,
//! dropped when they fail, made anew on demand and after `fork()`; a [`Breaker`] makes
//! calls skip a failing server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::{ConnectionLike, RedisError, Value as RedisValue};

use crate::breaker::{Admit, Breaker};
use crate::byte_store::{
    lease_then_get, put_then_release, random_token, ByteStore, Health, Lease, Value,
};
use crate::disk::{Entry, EntrySource};
use crate::generations::Generations;
use crate::keyhash::KeyDigest;
use crate::redis_tracking::Tracking;
use crate::redis_url::RedisUrl;
use crate::redis_wire::{command, Reply, Wire};
use crate::Error;

/// The default timeout of every command.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// The default key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "twc";
/// Idle connections kept per store.
const POOL_MAX: usize = 16;

/// How to reach the server and name the keys.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Where to connect ([`RedisUrl::parse`]).
    pub url: RedisUrl,
    /// The first part of every key.
    pub prefix: String,
    /// The timeout of connecting and of every command.
    pub timeout: Duration,
    /// The TTL of entries stored without one of their own.
    pub ttl: Option<Duration>,
}

impl RedisConfig {
    /// A configuration for `url` with the default prefix and timeout and no TTL.
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self {
            url: RedisUrl::parse(url)?,
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            ttl: None,
        })
    }
}

enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// One call's use of a pooled wire: what the breaker admitted, the call's deadline,
/// and the wire, which goes back to the pool when the call is done (unless broken).
struct WireCall<'a> {
    inner: &'a Inner,
    admitted: Admit,
    deadline: std::time::Instant,
    wire: Option<Wire>,
}

impl WireCall<'_> {
    /// Sends a request (in parts) and reads its `N` replies before the deadline; a
    /// failure is counted by the breaker and names the server.
    fn round_trip<const N: usize>(&mut self, parts: &[&[u8]]) -> Result<[Reply; N], Error> {
        let wire = self
            .wire
            .as_mut()
            .expect("a call's wire is there until it is done");
        match wire.round_trip(parts, N, self.deadline) {
            Ok(replies) => Ok(replies
                .try_into()
                .unwrap_or_else(|_| unreachable!("round_trip returns the replies asked for"))),
            Err(e) => Err(self.inner.failed(&self.admitted, e)),
        }
    }
}

impl Drop for WireCall<'_> {
    fn drop(&mut self) {
        if let Some(wire) = self.wire.take() {
            self.inner.give_wire(wire);
        }
    }
}

/// A pooled connection.
enum Conn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> Result<(), RedisError> {
        match self {
            Conn::Single(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
            Conn::Cluster(c) => {
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))
            }
        }
    }
}

struct Pool {
    pid: u32,
    idle: Vec<Conn>,
}

pub(crate) struct Inner {
    config: RedisConfig,
    target: Target,
    pool: Mutex<Pool>,
    breaker: Breaker,
    /// Leases this process holds, extended by the keeper thread: name → token.
    held: Mutex<HashMap<String, u128>>,
    /// The process whose keeper thread is running.
    keeper_pid: Mutex<Option<u32>>,
    /// The generation last seen of each namespace (its key base): a hit reads it and
    /// the entry in one round trip.
    generations: Mutex<HashMap<String, String>>,
    /// Lookups on one server without TLS go over wires of our own (`redis_wire.rs`):
    /// one deadline per lookup, and fewer allocations than the general client.
    wired: bool,
    wires: Mutex<(u32, Vec<Wire>)>,
    /// Invalidation listeners of the namespaces that have local tiers, by key base (and
    /// the process that started them).
    tracking: Mutex<(u32, HashMap<String, Arc<Tracking>>)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tracking = self.tracking.get_mut().unwrap_or_else(|e| e.into_inner());
        for t in tracking.1.values() {
            t.stop();
        }
    }
}

/// A store on a Redis or Valkey server.
///
/// ```no_run
/// use twat_cache::{ByteStore, Payload, RedisConfig, RedisStore, Value};
///
/// let store = RedisStore::open(RedisConfig::new("redis://127.0.0.1:6379/0")?)?;
/// let payload = Payload { stream: b"value", buffers: Vec::new() };
/// store.put("demo", 42, &Value::new(&payload))?;
/// assert!(store.get("demo", 42)?.is_some());
/// store.clear("demo")?;
/// assert!(store.get("demo", 42)?.is_none());
/// # Ok::<(), twat_cache::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisStore({})", self.inner.config.url.shown)
    }
}

/// The 128 bits of a key in base64url without padding: 22 characters.
fn key_text(key: KeyDigest) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    // 128 bits = 21 groups of 6 bits and 2 left over.
    for i in 0..22u32 {
        let shift = 128i32 - 6 * (i as i32 + 1);
        let bits = if shift >= 0 {
            (key >> shift) & 0x3f
        } else {
            (key << (-shift)) & 0x3f
        };
        out.push(ALPHABET[bits as usize] as char);
    }
    out
}

/// A namespace as it appears in keys: `%`, `:` and the `SCAN` pattern characters
/// escaped, so that no namespace's keys match another's pattern.
pub(crate) fn ns_text(ns: &str) -> String {
    let mut out = String::with_capacity(ns.len());
    for c in ns.chars() {
        match c {
            '%' | ':' | '*' | '?' | '[' | ']' | '\\' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Every command here is idempotent or guarded: a failed one may be retried freely.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

// Leases are extended and released only by their holder (its token), atomically.
const EXTEND_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

fn script(code: &'static str) -> &'static redis::Script {
    use std::sync::OnceLock;
    static EXTEND: OnceLock<redis::Script> = OnceLock::new();
    static RELEASE: OnceLock<redis::Script> = OnceLock::new();
    let cell = match code {
        EXTEND_SCRIPT => &EXTEND,
        _ => &RELEASE,
    };
    cell.get_or_init(|| redis::Script::new(code))
}

impl RedisStore {
    /// A store for `config`. Nothing is connected yet: the first command connects.
    pub fn open(config: RedisConfig) -> Result<Self, Error> {
        if config.timeout.is_zero() {
            return Err(Error::InvalidConfig {
                param: "timeout",
                value: "0".into(),
                accepted: "a positive number of seconds",
            });
        }
        let url = &config.url;
        let invalid = |_| Error::InvalidConfig {
            param: "url",
            value: format!("{:?}", url.shown),
            accepted: "a redis://, rediss://, unix:// or redis+cluster:// URL",
        };
        let target = if url.cluster {
            redis::cluster::ClusterClient::builder(url.nodes.iter().map(String::as_str))
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .build()
                .map(Target::Cluster)
                .map_err(invalid)?
        } else {
            use redis::IntoConnectionInfo;
            // Requests are small writes: sent at once, not held back by Nagle. No
            // `CLIENT SETINFO` on connecting: one round trip less, one timeout less.
            let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
            url.nodes[0]
                .as_str()
                .into_connection_info()
                .and_then(|info| {
                    let settings = info.redis_settings().clone().set_skip_set_lib_name();
                    redis::Client::open(info.set_tcp_settings(tcp).set_redis_settings(settings))
                })
                .map(Target::Single)
                .map_err(invalid)?
        };
        let wired = matches!(&target, Target::Single(client) if matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::Tcp(..) | redis::ConnectionAddr::Unix(_)
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                target,
                pool: Mutex::new(Pool {
                    pid: std::process::id(),
                    idle: Vec::new(),
                }),
                breaker: Breaker::default(),
                held: Mutex::new(HashMap::new()),
                keeper_pid: Mutex::new(None),
                generations: Mutex::new(HashMap::new()),
                wired,
                wires: Mutex::new((std::process::id(), Vec::new())),
                tracking: Mutex::new((std::process::id(), HashMap::new())),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Runs `f` on a pooled connection, through the breaker.
    pub(crate) fn with_conn<T>(
        &self,
        mut f: impl FnMut(&mut dyn ConnectionLike, &Inner) -> Result<T, RedisError>,
    ) -> Result<T, Error> {
        let inner = &*self.inner;
        let admitted = inner.admit()?;
        // A call pays one timeout at most: connecting and its first command share it.
        let started = std::time::Instant::now();
        let timeout = inner.config.timeout;
        let result = match inner.take() {
            Some(conn) => Ok((conn, false)),
            None => inner.connect().map(|conn| (conn, true)),
        }
        .and_then(|(mut conn, fresh)| {
            if fresh {
                let left = timeout.saturating_sub(started.elapsed());
                conn.set_timeouts(left.max(Duration::from_millis(1)))?;
            }
            match f(conn.like(), inner) {
                Ok(v) => {
                    if !fresh || conn.set_timeouts(timeout).is_ok() {
                        inner.give_back(conn);
                    }
                    Ok(v)
                }
                Err(e) => {
                    if !is_broken(&e) && (!fresh || conn.set_timeouts(timeout).is_ok()) {
                        inner.give_back(conn);
                    }
                    Err(e)
                }
            }
        });
        match result {
            Ok(v) => {
                inner.breaker.success(&admitted);
                Ok(v)
            }
            Err(e) => {
                inner.breaker.failure(&admitted);
                Err(inner.error(e))
            }
        }
    }

    pub(crate) fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    pub(crate) fn seen_generation(&self, base: &str) -> String {
        self.inner.seen_generation(base)
    }

    pub(crate) fn saw_generation(&self, base: &str, generation: &str) {
        self.inner.saw_generation(base, generation);
    }

    /// A write of this process changed `key` of `ns` (every key: `None`): copies of it
    /// here are stale now, before the server's invalidation arrives.
    fn touched(&self, ns: &str, key: Option<KeyDigest>) {
        // Never waited for (a lock taken by a thread that a fork left behind would
        // never be given back): when it is busy, the server's invalidation still comes.
        let tracking = match self.inner.tracking.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if tracking.1.is_empty() {
            return;
        }
        if let Some(t) = tracking.1.get(&self.key_base(ns)) {
            match key {
                Some(k) => t.generations.bump(k as u64),
                None => t.generations.bump_all(),
            }
        }
    }

    pub(crate) fn key_base(&self, ns: &str) -> String {
        format!("{}:{}:", self.inner.config.prefix, ns_text(ns))
    }

    /// The entry keys of `ns` as they are now: `(base, generation)`.
    fn generation(conn: &mut dyn ConnectionLike, base: &str) -> Result<String, RedisError> {
        let g: Option<String> = redis::cmd("GET").arg(format!("{base}g")).query(conn)?;
        Ok(g.unwrap_or_else(|| "0".into()))
    }

    fn is_cluster(&self) -> bool {
        self.inner.config.url.cluster
    }

    /// The nodes to scan: every primary of a cluster, or the one server.
    fn scan_nodes(&self) -> Result<Vec<String>, Error> {
        if !self.is_cluster() {
            return Ok(self.inner.config.url.nodes.clone());
        }
        let url = &self.inner.config.url;
        self.with_conn(|conn, _| {
            let slots: RedisValue = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
            let mut nodes = Vec::new();
            if let RedisValue::Array(ranges) = slots {
                for range in ranges {
                    let RedisValue::Array(parts) = range else {
                        continue;
                    };
                    let Some(RedisValue::Array(primary)) = parts.get(2) else {
                        continue;
                    };
                    let host: Option<String> = primary
                        .first()
                        .and_then(|v| redis::from_redis_value(v.clone()).ok());
                    let port: Option<u16> = primary
                        .get(1)
                        .and_then(|v| redis::from_redis_value(v.clone()).ok());
                    if let (Some(host), Some(port)) = (host, port) {
                        let node = url.node(&host, port);
                        if !nodes.contains(&node) {
                            nodes.push(node);
                        }
                    }
                }
            }
            Ok(nodes)
        })
    }

    /// Calls `each` with every batch of keys matching `pattern`, on every node.
    pub(crate) fn scan(
        &self,
        pattern: &str,
        mut each: impl FnMut(&mut redis::Connection, Vec<String>) -> Result<(), RedisError>,
    ) -> Result<(), Error> {
        let timeout = self.inner.config.timeout;
        for node in self.scan_nodes()? {
            let mut run = || -> Result<(), RedisError> {
                let client = redis::Client::open(node.as_str())?;
                let mut conn = client.get_connection_with_timeout(timeout)?;
                conn.set_read_timeout(Some(timeout))?;
                conn.set_write_timeout(Some(timeout))?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query(&mut conn)?;
                    if !keys.is_empty() {
                        each(&mut conn, keys)?;
                    }
                    if next == 0 {
                        return Ok(());
                    }
                    cursor = next;
                }
            };
            run().map_err(|e| self.inner.error(e))?;
        }
        Ok(())
    }

    /// Unlinks the keys of `base` from generations before `current`.
    fn unlink_old(&self, base: &str, current: u64) -> Result<u64, Error> {
        let mut gone = 0u64;
        self.scan(&format!("{base}*"), |conn, keys| {
            let old: Vec<&String> = keys
                .iter()
                .filter(|k| {
                    k[base.len()..]
                        .split(':')
                        .next()
                        .and_then(|g| g.parse::<u64>().ok())
                        .is_some_and(|g| g < current)
                })
                .collect();
            if !old.is_empty() {
                let mut pipe = redis::pipe();
                for k in &old {
                    pipe.cmd("UNLINK").arg(k.as_str()).ignore();
                }
                pipe.query::<()>(conn)?;
                gone += old.len() as u64;
            }
            Ok(())
        })?;
        Ok(gone)
    }

    /// A wire for one call: admitted by the breaker, pooled or connected now, with
    /// the call's one deadline.
    fn wire_call(&self) -> Result<WireCall<'_>, Error> {
        let inner = &*self.inner;
        let admitted = inner.admit()?;
        let deadline = std::time::Instant::now() + inner.config.timeout;
        let wire = match inner.take_wire() {
            Some(w) => w,
            None => match self.wire_blocking() {
                Ok(Some(w)) => w,
                Ok(None) => unreachable!("a wired store makes wires"),
                Err(e) => return Err(inner.failed(&admitted, e)),
            },
        };
        Ok(WireCall {
            inner,
            admitted,
            deadline,
            wire: Some(wire),
        })
    }

    /// [`ByteStore::get`] over a pooled [`Wire`]: the generation and
    /// the entry in one round trip, within one timeout.
    fn get_on_wire(&self, ns: &str, key: KeyDigest) -> Result<Option<Entry>, Error> {
        let mut call = self.wire_call()?;
        for _ in 0..3 {
            let (bytes, request) = self.lookup_request(ns, key);
            let [g, entry] = call.round_trip(&[&bytes])?;
            let moved = match &g {
                Reply::Bulk(v) => v.as_slice() != request.guess().as_bytes(),
                Reply::Nil => request.guess() != "0",
                _ => false,
            };
            match self.outcome_of(&request, g, entry, &call.admitted) {
                Ok(None) if moved => continue, // cleared since we last looked: again
                Ok(bytes) => {
                    return Ok(bytes.map(|b| Entry {
                        len: b.len() as u64,
                        source: EntrySource::Inline(b),
                    }))
                }
                Err(e) => return Err(self.inner.remote(e)),
            }
        }
        Ok(None)
    }

    /// [`ByteStore::put`] over a pooled wire: the generation and the `SET` under the
    /// generation last seen, in one round trip; the value is written from the frame
    /// as it is. Stored under a generation that a clear has just retired, the entry is
    /// unlinked and stored again under the new one.
    fn put_on_wire(
        &self,
        ns: &str,
        key: KeyDigest,
        frame: &[u8],
        ttl: Option<Duration>,
        release: Option<(&str, u128)>,
    ) -> Result<u64, Error> {
        let inner = &*self.inner;
        let mut call = self.wire_call()?;
        let base = self.key_base(ns);
        let id = key_text(key);
        let ms = ttl.map(|t| ((t.as_millis() as u64).max(1)).to_string());
        for _ in 0..3 {
            let guess = inner.seen_generation(&base);
            let entry_key = format!("{base}{guess}:{id}");
            let mut head = command(&[b"GET", format!("{base}g").as_bytes()]);
            let argc = if ms.is_some() { 5 } else { 3 };
            head.extend(format!("*{argc}\r\n$3\r\nSET\r\n${}\r\n", entry_key.len()).as_bytes());
            head.extend(entry_key.as_bytes());
            head.extend(format!("\r\n${}\r\n", frame.len()).as_bytes());
            let mut tail = b"\r\n".to_vec();
            if let Some(ms) = &ms {
                tail.extend(format!("$2\r\nPX\r\n${}\r\n{ms}\r\n", ms.len()).as_bytes());
            }
            // The lease goes in the same round trip, after the value is in place.
            let token = release.map(|(_, token)| token.to_string());
            if let (Some((name, _)), Some(token)) = (release, &token) {
                tail.extend(command(&[
                    b"EVAL",
                    RELEASE_SCRIPT.as_bytes(),
                    b"1",
                    name.as_bytes(),
                    token.as_bytes(),
                ]));
            }
            let parts: [&[u8]; 3] = [&head, frame, &tail];
            let (generation, set) = if release.is_some() {
                let [g, set, _released] = call.round_trip(&parts)?;
                (g, set)
            } else {
                let [g, set] = call.round_trip(&parts)?;
                (g, set)
            };
            if let Reply::Error(e) = set {
                // OOM, READONLY, NOAUTH...: the server answered; the wire is fine.
                return Err(inner.failed(&call.admitted, Error::Remote(e)));
            }
            inner.breaker.success(&call.admitted);
            let generation = match generation {
                Reply::Bulk(g) => String::from_utf8_lossy(&g).into_owned(),
                _ => "0".to_owned(),
            };
            if generation == guess {
                return Ok(frame.len() as u64);
            }
            // Cleared since we last looked: take the entry out of the old generation.
            inner.saw_generation(&base, &generation);
            let [_unlinked] = call.round_trip(&[&command(&[b"UNLINK", entry_key.as_bytes()])])?;
        }
        Ok(0)
    }

    /// Starts (once per process) the thread that extends the leases this process holds.
    fn keep_leases(&self, lease: Duration) {
        let pid = std::process::id();
        let mut running = crate::fork::lock(&self.inner.keeper_pid);
        if *running == Some(pid) {
            return;
        }
        *running = Some(pid);
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = lease / 3;
        let spawned = std::thread::Builder::new()
            .name("twat-cache-leases".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(inner) = weak.upgrade() else { return };
                let store = RedisStore { inner };
                let held: Vec<(String, u128)> = crate::fork::lock(&store.inner.held)
                    .iter()
                    .map(|(k, t)| (k.clone(), *t))
                    .collect();
                for (name, token) in held {
                    let _ = store.with_conn(|conn, _| {
                        script(EXTEND_SCRIPT)
                            .key(&name)
                            .arg(token.to_string())
                            .arg(lease.as_millis() as u64)
                            .invoke::<i64>(conn)
                    });
                }
            });
        if spawned.is_err() {
            *running = None;
        }
    }
}

impl Inner {
    /// A lease this process gives back: the keeper stops extending it.
    fn forget_lease(&self, name: &str) {
        crate::fork::lock(&self.held).remove(name);
    }

    /// What the breaker lets this call do; an error (without a timeout paid) when it
    /// skips the server.
    fn admit(&self) -> Result<Admit, Error> {
        match self.breaker.admit() {
            Admit::Skip => Err(Error::Remote(format!(
                "{}: skipped, the server failed repeatedly (the circuit is open)",
                self.config.url.shown
            ))),
            admitted => Ok(admitted),
        }
    }

    fn take_wire(&self) -> Option<Wire> {
        let mut wires = crate::fork::lock(&self.wires);
        if wires.0 != std::process::id() {
            // The parent's sockets: not ours to read from (plain TCP: closing them here
            // sends nothing, the parent keeps its own descriptor).
            wires.1.clear();
            wires.0 = std::process::id();
        }
        wires.1.pop()
    }

    fn give_wire(&self, wire: Wire) {
        if wire.broken() {
            return;
        }
        let mut wires = crate::fork::lock(&self.wires);
        if wires.0 == std::process::id() && wires.1.len() < POOL_MAX {
            wires.1.push(wire);
        }
    }

    fn seen_generation(&self, base: &str) -> String {
        let seen = crate::fork::lock(&self.generations);
        seen.get(base).cloned().unwrap_or_else(|| "0".into())
    }

    fn saw_generation(&self, base: &str, generation: &str) {
        let mut seen = crate::fork::lock(&self.generations);
        seen.insert(base.to_owned(), generation.to_owned());
    }

    fn error(&self, e: RedisError) -> Error {
        self.remote(Error::Remote(e.to_string()))
    }

    /// A failure as the caller sees it: naming the server, never its password.
    fn remote(&self, e: Error) -> Error {
        let why = match e {
            Error::Remote(why) => why,
            other => other.to_string(),
        };
        let url = &self.config.url;
        Error::Remote(url.scrub(format!("{}: {why}", url.shown)))
    }

    /// A command that failed: the breaker counts it.
    fn failed(&self, admitted: &Admit, e: Error) -> Error {
        self.breaker.failure(admitted);
        self.remote(e)
    }

    /// An idle connection of this process, if there is one.
    fn take(&self) -> Option<Conn> {
        let mut pool = crate::fork::lock(&self.pool);
        let pid = std::process::id();
        if pool.pid != pid {
            // Inherited through fork(): the parent's sockets (and TLS sessions) are
            // its own; closing or using them here would disturb it.
            for conn in pool.idle.drain(..) {
                std::mem::forget(conn);
            }
            pool.pid = pid;
        }
        pool.idle.pop()
    }

    fn give_back(&self, conn: Conn) {
        let mut pool = crate::fork::lock(&self.pool);
        if pool.pid == std::process::id() && pool.idle.len() < POOL_MAX {
            pool.idle.push(conn);
        } else if pool.pid != std::process::id() {
            std::mem::forget(conn);
        }
    }

    fn connect(&self) -> Result<Conn, RedisError> {
        Ok(match &self.target {
            Target::Single(client) => {
                Conn::Single(client.get_connection_with_timeout(self.config.timeout)?)
            }
            Target::Cluster(client) => Conn::Cluster(Box::new(client.get_connection()?)),
        })
    }
}

impl ByteStore for RedisStore {
    /// One round trip, no script: the namespace's generation and the entry under the
    /// generation last seen, pipelined. When the generation moved on (a `clear`), the
    /// entry is read again under the new one. (A cluster takes two round trips.)
    fn get(&self, ns: &str, key: KeyDigest) -> Result<Option<Entry>, Error> {
        if self.inner.wired {
            return self.get_on_wire(ns, key);
        }
        let base = self.key_base(ns);
        let id = key_text(key);
        let mut guess = self.inner.seen_generation(&base);
        let cluster = self.is_cluster();
        let bytes: Option<Vec<u8>> = self.with_conn(|conn, inner| {
            if cluster {
                // The two keys live on different nodes: one after the other.
                let g = Self::generation(conn, &base)?;
                return redis::cmd("GET").arg(format!("{base}{g}:{id}")).query(conn);
            }
            for _ in 0..3 {
                let (g, bytes): (Option<String>, Option<Vec<u8>>) = redis::pipe()
                    .cmd("GET")
                    .arg(format!("{base}g"))
                    .cmd("GET")
                    .arg(format!("{base}{guess}:{id}"))
                    .query(conn)?;
                let g = g.unwrap_or_else(|| "0".into());
                if g == guess {
                    return Ok(bytes);
                }
                inner.saw_generation(&base, &g);
                guess = g;
            }
            // Cleared three times while we looked: the namespace is being emptied.
            Ok(None)
        })?;
        Ok(bytes.map(|b| Entry {
            len: b.len() as u64,
            source: EntrySource::Inline(b),
        }))
    }

    fn put(&self, ns: &str, key: KeyDigest, value: &Value<'_>) -> Result<u64, Error> {
        let life = value.lifetime(self.inner.config.ttl);
        let frame = value.frame(&life)?;
        let ttl = life.keep;
        if self.inner.wired {
            return self.put_on_wire(ns, key, &frame, ttl, None);
        }
        let base = self.key_base(ns);
        let id = key_text(key);
        self.with_conn(|conn, _| {
            // A clear between these two commands leaves the entry under the old
            // generation, where no reader looks and the background unlink finds it.
            let g = Self::generation(conn, &base)?;
            let mut set = redis::cmd("SET");
            set.arg(format!("{base}{g}:{id}")).arg(&frame[..]);
            if let Some(ttl) = ttl {
                set.arg("PX").arg((ttl.as_millis() as u64).max(1));
            }
            set.query::<()>(conn)
        })?;
        self.touched(ns, Some(key));
        Ok(frame.len() as u64)
    }

    fn remove(&self, ns: &str, key: KeyDigest) -> Result<bool, Error> {
        let base = self.key_base(ns);
        let id = key_text(key);
        self.with_conn(|conn, _| {
            let g = Self::generation(conn, &base)?;
            let n: i64 = redis::cmd("UNLINK")
                .arg(format!("{base}{g}:{id}"))
                .query(conn)?;
            Ok(n > 0)
        })
        .inspect(|_| self.touched(ns, Some(key)))
    }

    fn discard(&self, ns: &str, key: KeyDigest, _entry: &Entry) -> Result<(), Error> {
        self.remove(ns, key).map(|_| ())
    }

    /// Bumps the namespace's generation (no reader finds the old entries from here on)
    /// and unlinks the old entries on a background thread; returns 0.
    fn clear(&self, ns: &str) -> Result<u64, Error> {
        let base = self.key_base(ns);
        let current: u64 =
            self.with_conn(|conn, _| redis::cmd("INCR").arg(format!("{base}g")).query(conn))?;
        self.inner.saw_generation(&base, &current.to_string());
        self.touched(ns, None);
        let store = self.clone();
        let spawned = std::thread::Builder::new()
            .name("twat-cache-unlink".into())
            .spawn(move || {
                let _ = store.unlink_old(&base, current);
            });
        if spawned.is_err() {
            // No thread to spare: the old entries expire or are evicted by the server.
        }
        Ok(0)
    }

    fn usage(&self, ns: &str) -> Result<(u64, u64), Error> {
        let base = self.key_base(ns);
        let g = self.with_conn(|conn, _| Self::generation(conn, &base))?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        self.scan(&format!("{base}{g}:*"), |conn, keys| {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("STRLEN").arg(k.as_str());
            }
            let lens: Vec<u64> = pipe.query(conn)?;
            entries += lens.iter().filter(|&&l| l > 0).count() as u64;
            bytes += lens.iter().sum::<u64>();
            Ok(())
        })?;
        Ok((entries, bytes))
    }

    fn lease(&self, ns: &str, key: KeyDigest, lease: Duration) -> Result<Lease, Error> {
        let name = format!("{}l:{}", self.key_base(ns), key_text(key));
        let token: u128 = random_token();
        let ms = (lease.as_millis() as u64).max(1);
        let set: Option<String> = self.with_conn(|conn, _| {
            redis::cmd("SET")
                .arg(&name)
                .arg(token.to_string())
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .query(conn)
        })?;
        if set.is_none() {
            return Ok(Lease::Busy);
        }
        crate::fork::lock(&self.inner.held).insert(name.clone(), token);
        self.keep_leases(lease);
        Ok(Lease::Held { name, token })
    }

    fn release(&self, lease: Lease) {
        let Lease::Held { name, token } = lease else {
            return;
        };
        crate::fork::lock(&self.inner.held).remove(&name);
        let _ = self.with_conn(|conn, _| {
            script(RELEASE_SCRIPT)
                .key(&name)
                .arg(token.to_string())
                .invoke::<i64>(conn)
        });
    }

    fn put_and_release(
        &self,
        ns: &str,
        key: KeyDigest,
        value: &Value<'_>,
        lease: Lease,
    ) -> Result<u64, Error> {
        let Lease::Held { name, token } = &lease else {
            return self.put(ns, key, value);
        };
        if !self.inner.wired {
            return put_then_release(self, ns, key, value, lease);
        }
        self.inner.forget_lease(name);
        let life = value.lifetime(self.inner.config.ttl);
        let frame = value.frame(&life)?;
        let ttl = life.keep;
        // Unreachable, the lease is not given back (that would be a second timeout): no
        // longer extended, it expires within its lease time.
        let put = self.put_on_wire(ns, key, &frame, ttl, Some((name, *token)));
        self.touched(ns, Some(key));
        put
    }

    fn lease_and_get(
        &self,
        ns: &str,
        key: KeyDigest,
        lease: Duration,
    ) -> Result<(Lease, Option<Entry>), Error> {
        if !self.inner.wired {
            return lease_then_get(self, ns, key, lease);
        }
        // One round trip: the lease, and the entry in case its last holder stored it.
        let inner = &*self.inner;
        let mut call = self.wire_call()?;
        let name = format!("{}l:{}", self.key_base(ns), key_text(key));
        let token = random_token();
        let ms = (lease.as_millis() as u64).max(1).to_string();
        let (lookup, request) = self.lookup_request(ns, key);
        let mut bytes = command(&[
            b"SET",
            name.as_bytes(),
            token.to_string().as_bytes(),
            b"NX",
            b"PX",
            ms.as_bytes(),
        ]);
        bytes.extend(lookup);
        let [set, g, entry] = call.round_trip(&[&bytes])?;
        if let Reply::Error(e) = set {
            return Err(inner.failed(&call.admitted, Error::Remote(e)));
        }
        let bytes = self
            .outcome_of(&request, g, entry, &call.admitted)
            .map_err(|e| inner.remote(e))?;
        if set == Reply::Nil {
            return Ok((Lease::Busy, None));
        }
        crate::fork::lock(&inner.held).insert(name.clone(), token);
        self.keep_leases(lease);
        let entry = bytes.map(|b| Entry {
            len: b.len() as u64,
            source: EntrySource::Inline(b),
        });
        Ok((Lease::Held { name, token }, entry))
    }

    fn health(&self) -> Option<Health> {
        let b = &self.inner.breaker;
        Some(Health {
            breaker: b.state(),
            errors: b.errors(),
            failing: b.failing(),
        })
    }

    /// The namespace's table, kept current by the server's invalidations (a listener
    /// per server is started on the first call, and after a fork).
    fn track(&self, tally: &Arc<crate::Tally>) {
        RedisStore::track(self, tally);
    }

    fn shared_counts(&self, ns: &str) -> Result<Option<crate::Counts>, Error> {
        RedisStore::shared_counts(self, ns)
    }

    fn generations(&self, ns: &str) -> Option<Arc<Generations>> {
        let base = self.key_base(ns);
        // Not waited for either: a busy table makes this call keep no copy, nothing worse.
        let mut tracking = match self.inner.tracking.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let pid = std::process::id();
        if tracking.0 != pid {
            // The parent's listeners did not cross the fork.
            *tracking = (pid, HashMap::new());
        }
        if let Some(t) = tracking.1.get(&base) {
            return Some(Arc::clone(&t.generations));
        }
        let nodes = self.scan_nodes().ok()?;
        let started = Tracking::start(
            nodes,
            base.clone(),
            self.inner.config.timeout,
            Arc::downgrade(&self.inner),
        );
        let generations = Arc::clone(&started.generations);
        tracking.1.insert(base, started);
        Some(generations)
    }
}

/// A lookup sent on a [`Wire`]: what its two replies are checked against.
#[derive(Debug, Clone)]
pub struct HitRequest {
    base: String,
    guess: String,
}

impl HitRequest {
    /// The generation the lookup assumed.
    pub(crate) fn guess(&self) -> &str {
        &self.guess
    }
}

impl RedisStore {
    /// A [`Wire`] to this store's server, non-blocking, for an event loop; `None` where
    /// there is none to make: a cluster, or TLS (those lookups take the pooled path).
    pub fn wire(&self) -> Result<Option<Wire>, Error> {
        let wire = self.wire_blocking().map_err(|e| self.inner.remote(e))?;
        wire.map(Wire::into_nonblocking).transpose()
    }

    /// A [`Wire`] in blocking mode, for this store's own lookups and stores.
    fn wire_blocking(&self) -> Result<Option<Wire>, Error> {
        let config = self.config();
        Wire::connect(&config.url, config.timeout)
    }

    /// The bytes of a lookup of `key` in `ns` on a [`Wire`] (two commands, so two
    /// replies), and what to check them against; `None` when the breaker says to skip
    /// the server.
    pub fn hit_request(&self, ns: &str, key: KeyDigest) -> Option<(Vec<u8>, HitRequest)> {
        if self.breaker().admit() != Admit::Go {
            return None;
        }
        Some(self.lookup_request(ns, key))
    }

    pub(crate) fn lookup_request(&self, ns: &str, key: KeyDigest) -> (Vec<u8>, HitRequest) {
        let base = self.key_base(ns);
        let guess = self.seen_generation(&base);
        let gen_key = format!("{base}g");
        let entry_key = format!("{base}{guess}:{}", key_text(key));
        let mut bytes = command(&[b"GET", gen_key.as_bytes()]);
        bytes.extend(command(&[b"GET", entry_key.as_bytes()]));
        (bytes, HitRequest { base, guess })
    }

    /// The entry's bytes from the two replies of a [`RedisStore::hit_request`]:
    /// `Ok(None)` when it is missing, or when the namespace was cleared since the
    /// generation this process last saw (then the pooled path looks again).
    pub fn hit_outcome(
        &self,
        request: &HitRequest,
        generation: Reply,
        entry: Reply,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.outcome_of(request, generation, entry, &Admit::Go)
    }

    /// [`RedisStore::hit_outcome`] for a lookup the breaker admitted as `admitted`.
    pub(crate) fn outcome_of(
        &self,
        request: &HitRequest,
        generation: Reply,
        entry: Reply,
        admitted: &Admit,
    ) -> Result<Option<Vec<u8>>, Error> {
        let refused = |e: String| {
            self.breaker().failure(admitted);
            Err(Error::Remote(e))
        };
        let generation = match generation {
            Reply::Nil => "0".to_owned(),
            Reply::Bulk(g) => String::from_utf8_lossy(&g).into_owned(),
            Reply::Error(e) => return refused(e),
            other => return refused(format!("unexpected {other:?}")),
        };
        let bytes = match entry {
            Reply::Nil => None,
            Reply::Bulk(b) => Some(b),
            Reply::Error(e) => return refused(e),
            other => return refused(format!("unexpected {other:?}")),
        };
        self.breaker().success(admitted);
        if generation != request.guess {
            self.saw_generation(&request.base, &generation);
            return Ok(None);
        }
        Ok(bytes)
    }

    /// A wire failed (a timeout, a closed socket): the breaker counts it.
    pub fn wire_failed<T>(&self, e: Error) -> Result<T, Error> {
        self.breaker().failure(&Admit::Go);
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_22_characters_and_distinct() {
        assert_eq!(key_text(0), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(key_text(u128::MAX), "_____________________w");
        assert_ne!(key_text(1), key_text(2));
        assert_eq!(key_text(12345).len(), 22);
    }

    #[test]
    fn namespaces_cannot_reach_into_each_other() {
        assert_eq!(ns_text("a:3"), "a%3A3");
        assert_eq!(ns_text("x*"), "x%2A");
        assert_eq!(ns_text("plain.name"), "plain.name");
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let mut c = RedisConfig::new("redis://127.0.0.1:1").unwrap();
        c.timeout = Duration::ZERO;
        assert!(matches!(
            RedisStore::open(c),
            Err(Error::InvalidConfig {
                param: "timeout",
                ..
            })
        ));
    }

    #[test]
    fn a_dead_server_fails_fast_then_the_breaker_skips_it() {
        // A port nothing listens on (connections are refused at once).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let store =
            RedisStore::open(RedisConfig::new(&format!("redis://127.0.0.1:{port}")).unwrap())
                .unwrap();
        for _ in 0..crate::breaker::OPEN_AFTER {
            assert!(matches!(store.get("ns", 1), Err(Error::Remote(_))));
        }
        let health = store.health().unwrap();
        assert_eq!(health.breaker, "open");
        let e = store.get("ns", 1).unwrap_err();
        assert!(e.to_string().contains("circuit is open"), "{e}");
        assert_eq!(
            store.health().unwrap().errors,
            u64::from(crate::breaker::OPEN_AFTER)
        );
    }
}
