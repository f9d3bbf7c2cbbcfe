//! Invalidations for the local tiers in front of a Redis store: the server tells us
//! when a key of a namespace changes (server-assisted client-side caching,
//! `CLIENT TRACKING`), and we bump that key's counter in the namespace's generation
//! table ([`Generations`]), so copies of the old value are never served again.
//!
//! One connection per server (every primary, for a cluster) and namespace, in
//! broadcast mode on the namespace's key prefix, redirected to itself and subscribed
//! to `__redis__:invalidate`: RESP2 and Pub/Sub only, so Redis 6 and 7.0 serve it as
//! well as Valkey. A thread reads it. The table is *live* only while every connection
//! is subscribed; when one drops, every copy is stale at once and none is kept until
//! it is back (a write meanwhile would go unannounced).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::Value as RedisValue;

use crate::generations::Generations;

/// The Pub/Sub channel invalidations are redirected to.
const CHANNEL: &str = "__redis__:invalidate";
/// How long a read waits before the thread looks whether it is still wanted.
const POLL: Duration = Duration::from_millis(100);

/// Listener threads running in this process, and whether the process is exiting.
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);

/// Stops every listener of the process and waits (at most `wait`) for their threads
/// to end: called at interpreter exit, so that no thread is inside OpenSSL (a `rediss`
/// listener) while the process tears it down.
pub fn stop_listeners(wait: Duration) {
    EXITING.store(true, Ordering::Release);
    let deadline = std::time::Instant::now() + wait;
    while RUNNING.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// What the listener threads of one namespace share.
pub(crate) struct Tracking {
    pub(crate) generations: Arc<Generations>,
    /// Listeners subscribed now; the table is live when all of them are.
    subscribed: AtomicUsize,
    nodes: usize,
    /// Set when the store is gone or the process forked: the threads end.
    stop: AtomicBool,
}

impl Tracking {
    /// Starts a listener on each of `nodes` (URLs) for keys starting with `base`; the
    /// threads end when `alive` can no longer be upgraded (the store was dropped).
    pub(crate) fn start<T: Send + Sync + 'static>(
        nodes: Vec<String>,
        base: String,
        timeout: Duration,
        alive: Weak<T>,
    ) -> Arc<Tracking> {
        let generations = Arc::new(Generations::private());
        // Not live until every listener is subscribed.
        generations.set_live(false);
        let tracking = Arc::new(Tracking {
            generations,
            subscribed: AtomicUsize::new(0),
            nodes: nodes.len(),
            stop: AtomicBool::new(false),
        });
        let pid = std::process::id();
        for node in nodes {
            let t = Arc::clone(&tracking);
            let (base, alive) = (base.clone(), alive.clone());
            RUNNING.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name("twat-cache-invalidations".into())
                .spawn(move || {
                    t.listen(&node, &base, timeout, &alive, pid);
                    RUNNING.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                // No thread: the table never goes live, and no copy is ever kept.
                RUNNING.fetch_sub(1, Ordering::AcqRel);
                tracking.stop.store(true, Ordering::Relaxed);
            }
        }
        tracking
    }

    fn wanted<T>(&self, alive: &Weak<T>, pid: u32) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && !EXITING.load(Ordering::Acquire)
            && alive.strong_count() > 0
            && std::process::id() == pid
    }

    fn listen<T>(&self, node: &str, base: &str, timeout: Duration, alive: &Weak<T>, pid: u32) {
        let mut retry = FIRST_RETRY;
        while self.wanted(alive, pid) {
            match self.session(node, base, timeout, alive, pid) {
                // Ended because it is no longer wanted.
                Ok(()) => return,
                Err(_) => {
                    // In short naps, so that a stop is noticed at once.
                    let until = std::time::Instant::now() + retry;
                    while std::time::Instant::now() < until && self.wanted(alive, pid) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// One connection's life: subscribe, then bump counters until it fails.
    fn session<T>(
        &self,
        node: &str,
        base: &str,
        timeout: Duration,
        alive: &Weak<T>,
        pid: u32,
    ) -> redis::RedisResult<()> {
        let client = redis::Client::open(node)?;
        let mut conn = client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg("twat-cache-invalidations")
            .query::<()>(&mut conn)?;
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn)?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(id)
            .arg("BCAST")
            .arg("PREFIX")
            .arg(base)
            .query::<()>(&mut conn)?;
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe(CHANNEL)?;
        pubsub.set_read_timeout(Some(POLL))?;
        self.joined();
        let ended = loop {
            if !self.wanted(alive, pid) {
                break Ok(());
            }
            match pubsub.get_message() {
                Ok(msg) => match msg.get_payload::<RedisValue>() {
                    Ok(keys) => self.invalidate(base, &keys),
                    Err(_) => self.generations.bump_all(),
                },
                Err(e) if e.is_timeout() => continue,
                Err(e) => break Err(e),
            }
        };
        self.left();
        ended
    }

    fn joined(&self) {
        let now = self.subscribed.fetch_add(1, Ordering::AcqRel) + 1;
        if now == self.nodes {
            self.generations.set_live(true);
        }
    }

    fn left(&self) {
        self.subscribed.fetch_sub(1, Ordering::AcqRel);
        // Writes from here on are not announced: every copy is stale, none is kept.
        self.generations.set_live(false);
    }

    /// One invalidation message: a list of keys, or nil for a flush of everything.
    fn invalidate(&self, base: &str, keys: &RedisValue) {
        let RedisValue::Array(keys) = keys else {
            self.generations.bump_all();
            return;
        };
        for key in keys {
            let name: Option<String> = redis::from_redis_value(key.clone()).ok();
            match name.as_deref().and_then(|n| n.strip_prefix(base)) {
                Some(rest) => match entry_key(rest) {
                    Entry::Key(k) => self.generations.bump(k as u64),
                    Entry::Generation => self.generations.bump_all(),
                    Entry::Other => {}
                },
                None => self.generations.bump_all(),
            }
        }
    }

    /// The listeners end (a fork: the child starts its own when it needs them).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.generations.set_live(false);
    }
}

enum Entry {
    Key(u128),
    Generation,
    Other,
}

/// What a key after the namespace's base names: `<generation>:<key>` (an entry), `g`
/// (the generation: a clear), or something else (a lease).
fn entry_key(rest: &str) -> Entry {
    if rest == "g" {
        return Entry::Generation;
    }
    let Some((generation, id)) = rest.split_once(':') else {
        return Entry::Other;
    };
    if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_digit()) {
        return Entry::Other;
    }
    match key_of_text(id) {
        Some(k) => Entry::Key(k),
        None => Entry::Other,
    }
}

/// The inverse of the store's 22-character base64url key text.
pub(crate) fn key_of_text(text: &str) -> Option<u128> {
    if text.len() != 22 {
        return None;
    }
    let mut key: u128 = 0;
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u128;
        let shift = 128i32 - 6 * (i as i32 + 1);
        if shift >= 0 {
            key |= v << shift;
        } else {
            key |= v >> (-shift);
        }
    }
    Some(key)
}
