//! A function cached in a persistent store (`bcache`, `fcache` on disk, `rcache` on
//! Redis): a native callable that binds the call, derives its stable key, and loads or
//! computes and stores the value. Within a process, concurrent misses of one key
//! compute once (single flight); across processes, the store keeps entries whole, and
//! a store with leases (Redis) makes the processes compute a key once too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use twat_cache::{Claim, Counter, Flights, KeyDigest, KeyHasher, Lead, Lease};

use crate::async_slot::{miss_coroutine, DiskSlot, MissPath};
use crate::canonical::call_digest;
use crate::counters::disk_stats;
use crate::errors::to_py_err;
use crate::fresh::Freshness;
use crate::holder::Guarded;
use crate::key::{KeyBuilder, ParamSpec};
use crate::local::{Fill, LocalTier};
use crate::options::{serializer_identity, Place, SerializerSpec, StoreSpec};
use crate::refresh::{Recall, StoreRefresh};
use crate::store_engine::StoreEngine;
use crate::store_engine::{Backing, Claimed, Served};

type Outcome = Result<Py<PyAny>, PyErr>;

/// A function cached in a persistent store. Made by `twat_cache.bcache`,
/// `twat_cache.fcache` and `twat_cache.rcache`.
#[pyclass(frozen, dict, weakref, module = "twat_cache._core")]
pub struct PersistentFunction {
    func: Py<PyAny>,
    keys: KeyBuilder,
    /// `module.qualname` and version: the first things every key hashes.
    identity: String,
    secure: bool,
    engine: StoreEngine,
    flights: Guarded<Flights<KeyDigest, Outcome>>,
    /// Flights finished in this process: a leader re-reads the store only if one ended
    /// since its own lookup (then another thread may have just stored the value).
    finished: AtomicU64,
    kind: &'static str,
    disabled: bool,
    /// An `async def` function: its I/O runs in the event loop's executor.
    is_async: bool,
    /// Its store is one Redis server without TLS: async hits use the loop's own
    /// connection (`wire.rs`).
    wired: bool,
    /// `local=`: copies of recent values in this process (`local.rs`).
    local: Option<LocalTier>,
}

#[pymethods]
impl PersistentFunction {
    #[new]
    #[pyo3(signature = (func, params, *, kind, folder=None, name, version, maxsize, ttl, policy, compress, mmap, secret, typed, key, secure, disabled, durable=false, is_async=false, jitter=None, url=None, namespace=None, timeout=None, lock_wait=None, serializer=None, stale_ttl=None, stale_if_error=None, ttl_of=None, cache_if=None, local=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        params: Vec<ParamSpec>,
        kind: &str,
        folder: Option<PathBuf>,
        name: String,
        version: String,
        maxsize: Option<u64>,
        ttl: Option<f64>,
        policy: &str,
        compress: &str,
        mmap: bool,
        secret: Option<Vec<u8>>,
        typed: bool,
        key: Option<Py<PyAny>>,
        secure: bool,
        disabled: bool,
        durable: bool,
        is_async: bool,
        jitter: Option<f64>,
        url: Option<String>,
        namespace: Option<String>,
        timeout: Option<f64>,
        lock_wait: Option<f64>,
        serializer: Option<SerializerSpec>,
        stale_ttl: Option<f64>,
        stale_if_error: Option<f64>,
        ttl_of: Option<Py<PyAny>>,
        cache_if: Option<Py<PyAny>>,
        local: Option<usize>,
    ) -> PyResult<Self> {
        let kind = StoreSpec::kind(py, kind)?;
        if local == Some(0) {
            return Err(crate::options::bad_config(
                py,
                "local",
                "0".into(),
                "True, a positive number of entries, or None/False",
            ));
        }
        let identity = format!("{name}\0{version}{}", serializer_identity(&serializer));
        let engine = StoreSpec {
            kind,
            place: place(py, folder, url, timeout)?,
            ns: namespace.unwrap_or_else(|| name.clone()),
            maxsize,
            ttl,
            jitter,
            policy: policy.to_owned(),
            compress: compress.to_owned(),
            mmap,
            secret,
            durable,
            lock_wait,
            serializer,
            fresh: Freshness::new(py, stale_ttl, stale_if_error, ttl_of, cache_if)?,
            version: Some(version.to_string()),
        }
        .open(py)?;
        // The hasher's first use pays one-time CPU setup (tens of microseconds for the
        // SIMD unit BLAKE3 uses): at decoration time, not in the first call.
        KeyHasher::new(secure).finish();
        // A local tier fills from the executor's lookups (the loop's wire bypasses it).
        let wired = is_async && engine_is_wired(&engine) && local.is_none();
        let local = local.map(|size| LocalTier::open(py, size, &engine));
        Ok(PersistentFunction {
            func,
            keys: KeyBuilder::new(params, typed, key),
            identity,
            secure,
            engine,
            flights: Guarded::new(Flights::default()),
            finished: AtomicU64::new(0),
            kind,
            disabled,
            is_async,
            wired,
            local,
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = args.py();
        let this = slf.get();
        if this.disabled {
            return Ok(this.func.bind(py).call(args, kwargs)?.unbind());
        }
        let local_key = match &this.local {
            Some(tier) => tier.key(&this.keys, args, kwargs)?,
            None => None,
        };
        if let (Some(tier), Some((k, hash))) = (&this.local, &local_key) {
            if let Some(value) = tier.get(k, *hash) {
                this.engine.count(true);
                return if this.is_async {
                    crate::ready::Ready::wrap(py, value)
                } else {
                    Ok(value)
                };
            }
        }
        let Some(key) = this.digest(args, kwargs)? else {
            // The call does not bind: let the function raise its own TypeError.
            return Ok(this.func.bind(py).call(args, kwargs)?.unbind());
        };
        // Stamped before the store is read: a copy of its answer may be kept.
        let fill = match (&this.local, local_key) {
            (Some(tier), Some((k, hash))) => tier.fill(&this.engine, &k, hash, key),
            _ => None,
        };
        if this.is_async {
            // Hashing the arguments is CPU work and stays here; every lookup and store
            // runs in the loop's executor (see `twat_cache._async`).
            let slot = Bound::new(py, DiskSlot::new(slf.clone().unbind(), key, fill))?;
            // Redis on one server: hits wait on the event loop, not in a thread.
            let path = if this.wired {
                MissPath::Wire
            } else {
                MissPath::Executor
            };
            return miss_coroutine(py, path, slot.into_any(), &this.func, args.clone(), kwargs);
        }
        this.sync_call(slf, key, fill, args, kwargs)
    }

    /// On an instance: a bound method whose calls pass the instance first (it is keyed
    /// by value, or left out with `ignore=("self",)`).
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = owner;
        let py = slf.py();
        match instance.filter(|i| !i.is_none()) {
            None => Ok(slf.clone().into_any().unbind()),
            Some(instance) => {
                let method_type = py.import("types")?.getattr("MethodType")?;
                Ok(method_type.call1((slf, instance))?.unbind())
            }
        }
    }

    /// `(hits, misses, maxsize, currsize)`: `maxsize` is the folder's byte limit (`None`
    /// on Redis, whose server sets its own).
    fn cache_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let usage = self
            .engine
            .usage_if_reachable(py)
            .map_err(|e| to_py_err(py, e))?;
        let entries = usage.map(|(entries, _)| entries);
        let class = py.import("twat_cache._types")?.getattr("CacheInfo")?;
        let e = &self.engine;
        let maxsize = match e.backing() {
            Backing::Disk { config, .. } => Some(config.max_bytes),
            Backing::Redis(_) => None,
        };
        let counts = e.counts();
        Ok(class
            .call1((
                counts[Counter::Hits],
                counts[Counter::Misses],
                maxsize,
                entries,
            ))?
            .unbind())
    }

    /// Removes this function's entries from its folder and resets the counters.
    fn cache_clear(&self, py: Python<'_>) -> PyResult<u64> {
        if let Some(tier) = &self.local {
            tier.clear(py);
        }
        self.engine.clear(py).map_err(|e| to_py_err(py, e))
    }

    /// Counters as a dict: this process's (hits, misses, hit_ratio, ...), the cache's
    /// entries and bytes, and `all_processes`, the totals of every process that used it.
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = disk_stats(py, &self.engine)?;
        if let Some(tier) = &self.local {
            // Counted in `hits` too.
            d.set_item("local_hits", tier.hits.load(Ordering::Relaxed))?;
            d.set_item("local_entries", tier.len(py))?;
        }
        Ok(d)
    }

    /// The options this cache was built with.
    fn cache_parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(
            "engine",
            match self.kind {
                "fcache" => "file",
                "rcache" => "redis",
                _ => "disk",
            },
        )?;
        match self.engine.backing() {
            Backing::Disk { folder, config: c } => {
                d.set_item("folder", folder)?;
                d.set_item("maxsize", c.max_bytes)?;
                d.set_item("policy", c.policy.name())?;
                d.set_item("durable", c.durable)?;
            }
            Backing::Redis(c) => {
                // The URL as shown: never its password.
                d.set_item("url", &c.url.shown)?;
                d.set_item("namespace", self.engine.namespace())?;
                d.set_item("timeout", c.timeout.as_secs_f64())?;
            }
        }
        d.set_item("ttl", self.engine.backing().ttl().map(|t| t.as_secs_f64()))?;
        d.set_item("jitter", self.engine.jitter().map(|t| t.as_secs_f64()))?;
        d.set_item("typed", self.keys.typed())?;
        d.set_item("secure", self.secure)?;
        d.set_item("is_async", self.is_async)?;
        d.set_item("local", self.local.as_ref().map(LocalTier::size))?;
        crate::fresh::parameters(&d, self.engine.freshness())?;
        Ok(d)
    }

    /// The key a call with these arguments uses: 32 hex digits (128 bits).
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_key(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<String> {
        Ok(format!("{:032x}", self.bound_digest(args, kwargs)?))
    }

    /// Removes the entry of a call with these arguments; `True` if there was one.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_delete(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let key = self.bound_digest(args, kwargs)?;
        self.engine
            .delete(args.py(), key)
            .map_err(|e| to_py_err(args.py(), e))
    }

    /// Stores `value` as the result of a call with these arguments; `False` if it could
    /// not be stored (a warning says why).
    #[pyo3(signature = (value, /, *args, **kwargs))]
    fn cache_set(
        &self,
        value: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let key = self.bound_digest(args, kwargs)?;
        Ok(self.engine.save_given(value, key))
    }

    /// The owners of this cache's async flights (itself), for `cache_close`.
    fn _flight_owners(slf: &Bound<'_, Self>) -> Vec<usize> {
        vec![slf.as_ptr() as usize]
    }

    /// `cache_delete` under async-lru's name.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_invalidate(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        self.cache_delete(args, kwargs)
    }

    /// Whether a call with these arguments would find a live entry (not counted).
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_contains(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let key = self.bound_digest(args, kwargs)?;
        // The index only: the value is not read, nor unpickled.
        self.engine
            .contains(args.py(), key)
            .map_err(|e| to_py_err(args.py(), e))
    }

    /// Pickled by reference (`module.qualname`), as plain functions are; `copy` and
    /// `deepcopy` return the cached function itself.
    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Ok(slf
            .getattr(pyo3::intern!(slf.py(), "__qualname__"))?
            .unbind())
    }

    /// Removes every expired entry of the folder now; returns how many.
    fn purge_expired(&self, py: Python<'_>) -> PyResult<u64> {
        self.engine.purge_expired(py).map_err(|e| to_py_err(py, e))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("<{} {}>", self.kind, self.func.bind(py).repr()?))
    }
}

/// A Redis store on one server, reached without TLS: the loop can watch its socket.
fn engine_is_wired(engine: &crate::store_engine::StoreEngine) -> bool {
    match engine.backing() {
        Backing::Redis(c) => !c.url.cluster && !c.url.tls(),
        Backing::Disk { .. } => false,
    }
}

/// Where the entries go: a folder, or a Redis server for `url=`.
pub fn place(
    py: Python<'_>,
    folder: Option<PathBuf>,
    url: Option<String>,
    timeout: Option<f64>,
) -> PyResult<Place> {
    match (folder, url) {
        (Some(folder), None) => Ok(Place::Folder(folder)),
        (None, Some(url)) => Ok(Place::Redis { url, timeout }),
        _ => Err(crate::options::bad_config(
            py,
            "folder",
            "both or neither of folder and url".into(),
            "exactly one of folder= (a disk store) and url= (a Redis store)",
        )),
    }
}

impl PersistentFunction {
    pub fn engine(&self) -> &StoreEngine {
        &self.engine
    }

    /// A synchronous call: the stored value, or one computation per key in this
    /// process, then stored.
    fn sync_call(
        &self,
        slf: &Bound<'_, Self>,
        key: KeyDigest,
        fill: Option<Fill>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let seen = self.finished.load(Ordering::Acquire);
        let call = || Ok(self.func.bind(py).call(args, kwargs)?.unbind());
        if self.engine.freshness().is_none() && fill.is_none() {
            if let Some(value) = self.engine.load_counted(py, key) {
                return Ok(value);
            }
            return self.compute(py, key, Some(seen), call);
        }
        match self.engine.serve(py, key) {
            Some(Served {
                value,
                stale: false,
                left,
            }) => {
                if let (Some(tier), Some(fill)) = (&self.local, fill) {
                    tier.put(py, fill, key, &value, left);
                }
                Ok(value)
            }
            Some(Served { value, .. }) => {
                self.start_refresh(slf, key, seen, Recall::new(&self.func, args, kwargs));
                Ok(value)
            }
            None => self
                .compute(py, key, Some(seen), call)
                .or_else(|e| self.engine.fall_back(py, key, e)),
        }
    }

    /// The local tier, if the cache has one.
    pub fn local(&self) -> Option<&LocalTier> {
        self.local.as_ref()
    }

    /// Starts the refresh of a stale `key`, unless a computation of it is under way in
    /// this process or another one holds its lease. `seen`: the flights finished before
    /// the lookup that found it stale.
    fn start_refresh(&self, slf: &Bound<'_, Self>, key: KeyDigest, seen: u64, recall: Recall) {
        let py = slf.py();
        let Some(mut flights) = self.flights.lock(py) else {
            return;
        };
        let claim = flights
            .claim_by(
                key as u64,
                || key,
                |k| Ok::<_, std::convert::Infallible>(*k == key),
            )
            .unwrap_or_else(|never| match never {});
        drop(flights);
        let Claim::Leader(lead) = claim else {
            return; // being computed: the stale value is served meanwhile
        };
        // A refresh that ended after our lookup has stored a fresh value: not again.
        if self.finished.load(Ordering::Acquire) != seen && self.engine.load(py, key).is_some() {
            self.abandon(lead);
            return;
        }
        let Some(lease) = self.engine.refresh_lease(py, key) else {
            self.abandon(lead);
            return;
        };
        let job = StoreRefresh::new(slf.clone().unbind(), key, lead, lease, recall);
        if let Err(e) = Bound::new(py, job).and_then(|job| crate::fresh::submit(py, job.into_any()))
        {
            crate::errors::warn(py, &format!("twat_cache: a refresh could not start: {e}"));
        }
    }

    /// Ends a refresh: a value is stored (its lease given back with it) and handed to
    /// any caller that waited for it; a failure keeps the stale value, with a warning.
    pub fn finish_refresh(
        &self,
        py: Python<'_>,
        key: KeyDigest,
        lead: Lead,
        lease: Lease,
        outcome: &Outcome,
    ) {
        match outcome {
            Ok(v) => {
                self.engine.save_releasing(v.bind(py), key, lease);
            }
            Err(e) => {
                self.engine.release(py, lease);
                crate::errors::warn(
                    py,
                    &format!(
                        "twat_cache: {}: refreshing a stale entry raised {e}; the stale value \
                         stays",
                        self.engine.namespace()
                    ),
                );
            }
        }
        Leader {
            owner: self,
            lead: Some(lead),
        }
        .finish(py, outcome);
    }

    /// A refresh that will never run: its flight ends, and waiting callers look again.
    pub fn abandon(&self, lead: Lead) {
        drop(Leader {
            owner: self,
            lead: Some(lead),
        });
    }

    /// The 128-bit key of a call; `None` when the call does not bind.
    fn digest(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<KeyDigest>> {
        call_digest(&self.keys, &self.identity, self.secure, args, kwargs)
    }

    fn bound_digest(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<KeyDigest> {
        self.digest(args, kwargs)?.ok_or_else(|| {
            pyo3::exceptions::PyTypeError::new_err(
                "these arguments do not bind to the cached function's signature",
            )
        })
    }

    /// Computes a missing value once per key in this process; concurrent callers of the
    /// same key wait for it (with the GIL released) and share the value or exception.
    fn compute(
        &self,
        py: Python<'_>,
        key: KeyDigest,
        mut seen: Option<u64>,
        call: impl FnOnce() -> Outcome,
    ) -> Outcome {
        loop {
            // A flight lock held by a thread lost in a fork: compute here, without
            // single flight, as a reentrant call does.
            let claim = match self.flights.lock(py) {
                Some(mut flights) => flights
                    .claim_by(
                        key as u64,
                        || key,
                        |k| Ok::<_, std::convert::Infallible>(*k == key),
                    )
                    .unwrap_or_else(|never| match never {}),
                None => Claim::Reentrant,
            };
            match claim {
                Claim::Leader(lead) => {
                    let leader = Leader {
                        owner: self,
                        lead: Some(lead),
                    };
                    // A leader that finished here after our lookup may have stored it.
                    let quiet = seen == Some(self.finished.load(Ordering::Acquire));
                    let stored = if quiet {
                        None
                    } else {
                        self.engine.load(py, key)
                    };
                    let claimed = match stored {
                        Some(v) => Claimed::Found(v),
                        None => self.engine.claim(py, key)?,
                    };
                    let outcome = match claimed {
                        Claimed::Found(v) => {
                            self.engine.miss_was_shared();
                            Ok(v)
                        }
                        Claimed::Compute(lease) => {
                            let outcome = call();
                            match &outcome {
                                // Stored, then the lease goes: the processes waiting
                                // for it find the value.
                                Ok(v) => {
                                    self.engine.save_releasing(v.bind(py), key, lease);
                                }
                                Err(_) => self.engine.release(py, lease),
                            }
                            outcome
                        }
                    };
                    leader.finish(py, &outcome);
                    return outcome;
                }
                Claim::Reentrant => {
                    let value = call()?;
                    self.engine.save(value.bind(py), key);
                    return Ok(value);
                }
                Claim::Follower(flight) => {
                    // Interrupted (Ctrl-C): this caller leaves; the flight goes on.
                    let ready = crate::waiting::wait(py, &flight)?;
                    let shared = flight.with_result(|o| match o {
                        Ok(v) => Ok(v.clone_ref(py)),
                        Err(e) => Err(e.clone_ref(py)),
                    });
                    if let (true, Some(outcome)) = (ready, shared) {
                        if outcome.is_ok() {
                            // It did not run the function: a hit, as lru_cache counts it.
                            self.engine.miss_was_shared();
                        }
                        return outcome;
                    }
                    if let Some(v) = self.engine.load(py, key) {
                        return Ok(v);
                    }
                    seen = None; // the next leader re-reads the store first
                }
            }
        }
    }
}

/// Retires a flight: publishes the outcome, or wakes followers empty-handed if the
/// leader unwinds.
struct Leader<'a> {
    owner: &'a PersistentFunction,
    lead: Option<Lead>,
}

impl Leader<'_> {
    fn finish(mut self, py: Python<'_>, outcome: &Outcome) {
        let Some(lead) = self.lead.take() else { return };
        // After the value is stored and before the flight ends: a thread that missed
        // before this point and leads next re-reads the store.
        self.owner.finished.fetch_add(1, Ordering::Release);
        let finished = self.owner.flights.lock_waiting(py).remove(&lead);
        if let Some((_, Some(flight))) = finished {
            flight.complete(match outcome {
                Ok(v) => Ok(v.clone_ref(py)),
                Err(e) => Err(e.clone_ref(py)),
            });
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(lead) = self.lead.take() {
            if let Some((_, Some(flight))) = self.owner.flights.lock_unattached().remove(&lead) {
                flight.abandon();
            }
        }
    }
}
