//! The cached function: a native callable whose hit path (key, lookup, return) runs in
//! Rust with no Python bytecode, and its bound-method form.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::async_slot::{miss_coroutine, MemorySlot, MissPath};
use crate::content::hashable;
use crate::counters::{cache_info, cache_stats};
use crate::engine::{EngineConfig, MemoryEngine, Serving};
use crate::fresh::Freshness;
use crate::instances::InstanceCaches;
use crate::key::{KeyBuilder, ParamSpec};
use crate::options;
use crate::ready::Ready;
use crate::refresh::{refresh_memory, Recall};

/// A function cached in memory. Made by `twat_cache.mcache`; see its documentation.
#[pyclass(frozen, dict, weakref, module = "twat_cache._core")]
pub struct CachedFunction {
    func: Py<PyAny>,
    keys: KeyBuilder,
    config: EngineConfig,
    engine: Arc<MemoryEngine>,
    instances: InstanceCaches,
    disabled: bool,
    /// An `async def` function: calls return awaitables (see `async_call`).
    is_async: bool,
    /// Always `vectorcall::entry`: CPython finds it here, at the offset
    /// `vectorcall::install` gives the type.
    vectorcall: pyo3::ffi::vectorcallfunc,
}

#[pymethods]
impl CachedFunction {
    #[new]
    #[pyo3(signature = (func, params, *, maxsize, ttl, policy, typed, key, disabled, is_async=false, jitter=None, stale_ttl=None, stale_if_error=None, ttl_of=None, cache_if=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        func: Py<PyAny>,
        params: Vec<ParamSpec>,
        maxsize: Option<usize>,
        ttl: Option<f64>,
        policy: &str,
        typed: bool,
        key: Option<Py<PyAny>>,
        disabled: bool,
        is_async: bool,
        jitter: Option<f64>,
        stale_ttl: Option<f64>,
        stale_if_error: Option<f64>,
        ttl_of: Option<Py<PyAny>>,
        cache_if: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let fresh = Freshness::new(py, stale_ttl, stale_if_error, ttl_of, cache_if)?.map(Arc::new);
        let policy = options::policy(py, policy)?;
        let ttl = options::ttl(py, ttl)?;
        let config = EngineConfig {
            max_size: maxsize,
            ttl,
            policy,
            jitter: options::jitter(py, jitter)?,
        };
        Ok(Self {
            func,
            keys: KeyBuilder::new(params, typed, key),
            config,
            engine: MemoryEngine::new(config, fresh.clone()),
            instances: InstanceCaches::new(config, fresh),
            disabled,
            is_async,
            vectorcall: crate::vectorcall::entry,
        })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if self.disabled {
            return invoke(&self.func, None, args, kwargs);
        }
        let call = self.call();
        if self.is_async {
            return async_call(&self.engine, &call, args, kwargs);
        }
        cached_call(&self.engine, &call, args, kwargs)
    }

    /// Binding to an instance gives a method whose cache is that instance's own.
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = owner;
        let py = slf.py();
        let Some(instance) = instance.filter(|i| !i.is_none()) else {
            return Ok(slf.clone().into_any().unbind());
        };
        let this = slf.get();
        // An instance that cannot be weakly referenced (an `int` subclass, `__slots__`
        // without `__weakref__`) shares the function's engine, with itself in the key
        // (by value, as `functools.lru_cache` keys `self`; the entry holds it).
        let (engine, self_in_key) = if this.disabled {
            (None, false)
        } else {
            match this.instances.engine_for(instance)? {
                Some(engine) => (Some(engine), false),
                None => (Some(Arc::clone(&this.engine)), true),
            }
        };
        let bound = BoundCachedFunction {
            owner: slf.clone().unbind(),
            instance: instance.clone().unbind(),
            engine,
            self_in_key,
        };
        Ok(Py::new(py, bound)?.into_any())
    }

    /// `(hits, misses, maxsize, currsize)`, like `functools.lru_cache`; for a method,
    /// summed over every live instance.
    fn cache_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        cache_info(py, &self.engines(py), self.config)
    }

    /// Removes every entry (of every instance, for a method) and resets the counters.
    fn cache_clear(&self, py: Python<'_>) {
        for engine in self.engines(py) {
            engine.clear(py);
        }
    }

    /// Counters as a dict: hits, misses, hit_ratio, evictions, expirations, entries,
    /// bytes, store_errors.
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        cache_stats(py, &self.engines(py))
    }

    /// The options this cache was built with.
    fn cache_parameters<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("engine", "memory")?;
        d.set_item("is_async", self.is_async)?;
        d.set_item("maxsize", self.config.max_size)?;
        d.set_item("ttl", self.config.ttl.map(|t| t.as_secs_f64()))?;
        d.set_item("jitter", self.config.jitter.map(|t| t.as_secs_f64()))?;
        d.set_item("policy", self.config.policy.name())?;
        d.set_item("typed", self.keys.typed())?;
        crate::fresh::parameters(&d, self.engine.freshness().map(|f| &**f))?;
        Ok(d)
    }

    /// The key a call with these arguments uses.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_key(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        key_of(&self.call(), args, kwargs)
    }

    /// Removes the entry of a call with these arguments; `True` if there was one.
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_delete(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        delete(&self.engine, &self.call(), args, kwargs)
    }

    /// Stores `value` as the result of a call with these arguments.
    #[pyo3(signature = (value, /, *args, **kwargs))]
    fn cache_set(
        &self,
        value: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        set(&self.engine, &self.call(), value, args, kwargs)
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

    /// Whether a call with these arguments would be a hit (not counted).
    #[pyo3(signature = (*args, **kwargs))]
    fn cache_contains(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let (key, hash) = bound_key(&self.call(), args, kwargs)?;
        Ok(self.engine.peek(&key, hash)?.is_some())
    }

    /// Pickled by reference, as plain functions are: `module.qualname`, found again
    /// on unpickling (so `ProcessPoolExecutor().map(cached, ...)` works); `copy` and
    /// `deepcopy` return the cached function itself.
    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Ok(slf
            .getattr(pyo3::intern!(slf.py(), "__qualname__"))?
            .unbind())
    }

    /// The owners of this cache's async flights (its engines), for `cache_close`.
    fn _flight_owners(&self, py: Python<'_>) -> Vec<usize> {
        self.engines(py)
            .iter()
            .map(|e| Arc::as_ptr(e) as usize)
            .collect()
    }

    /// Reclaims expired entries now; returns how many.
    fn purge_expired(&self, py: Python<'_>) -> usize {
        self.engines(py).iter().map(|e| e.purge_expired(py)).sum()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("<mcache {}>", self.func.bind(py).repr()?))
    }
}

impl CachedFunction {
    /// An instance to find the `vectorcall` field's offset by (see `vectorcall::install`).
    pub(crate) fn probe(py: Python<'_>) -> PyResult<Py<CachedFunction>> {
        let probe = Self::new(
            py,
            py.None(),
            Vec::new(),
            Some(1),
            None,
            "lru",
            false,
            None,
            true,
            false,
            None,
            None,
            None,
            None,
            None,
        )?;
        Py::new(py, probe)
    }

    /// Where this instance keeps its vectorcall entry.
    pub(crate) fn vectorcall_field(&self) -> *const pyo3::ffi::vectorcallfunc {
        &self.vectorcall
    }

    /// A call by vectorcall with positional arguments only: the hit path keys the
    /// arguments where they are; a tuple is made only to call the function.
    #[inline]
    pub(crate) fn call_positional(
        &self,
        py: Python<'_>,
        args: &[Bound<'_, PyAny>],
    ) -> PyResult<Py<PyAny>> {
        if !self.disabled && !self.is_async {
            if let Some(found) = self.keys.positional_key(py, args, None, 0) {
                let (key, hash) = found?;
                let tuple = || PyTuple::new(py, args);
                return serve(&self.engine, &self.call(), &key, hash, tuple, None);
            }
        }
        self.__call__(&PyTuple::new(py, args)?, None)
    }

    /// A call by vectorcall with keywords (or many arguments): as `tp_call` has it.
    pub(crate) fn call_general(
        &self,
        py: Python<'_>,
        args: &[Bound<'_, PyAny>],
        values: &[Bound<'_, PyAny>],
        names: Option<&Bound<'_, PyTuple>>,
    ) -> PyResult<Py<PyAny>> {
        let kwargs = match names {
            Some(names) => {
                let d = PyDict::new(py);
                for (name, value) in names.iter().zip(values) {
                    d.set_item(name, value)?;
                }
                Some(d)
            }
            None => None,
        };
        self.__call__(&PyTuple::new(py, args)?, kwargs.as_ref())
    }

    fn call(&self) -> Call<'_, '_> {
        Call {
            func: &self.func,
            keys: &self.keys,
            instance: None,
            self_in_key: false,
        }
    }

    fn engines(&self, py: Python<'_>) -> Vec<Arc<MemoryEngine>> {
        let mut all = vec![Arc::clone(&self.engine)];
        all.extend(self.instances.engines(py));
        all
    }
}

/// A cached method bound to one instance; its cache is that instance's alone.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct BoundCachedFunction {
    owner: Py<CachedFunction>,
    instance: Py<PyAny>,
    /// `None`: not cached (disabled).
    engine: Option<Arc<MemoryEngine>>,
    /// The engine is the function's own, shared by instances: `self` is in the key.
    self_in_key: bool,
}

#[pymethods]
impl BoundCachedFunction {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let owner = self.owner.get();
        let call = self.call(py);
        match &self.engine {
            Some(engine) if owner.is_async => async_call(engine, &call, args, kwargs),
            Some(engine) => cached_call(engine, &call, args, kwargs),
            None => invoke(&owner.func, call.instance, args, kwargs),
        }
    }

    #[getter]
    fn __self__(&self, py: Python<'_>) -> Py<PyAny> {
        self.instance.clone_ref(py)
    }

    #[getter]
    fn __func__(&self, py: Python<'_>) -> Py<CachedFunction> {
        self.owner.clone_ref(py)
    }

    /// Everything else (`__name__`, `__doc__`, `__wrapped__`, `cache_parameters`, ...)
    /// comes from the cached function.
    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.owner.bind(py).getattr(name)
    }

    fn cache_info(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        cache_info(py, &self.engines(), self.owner.get().config)
    }

    fn cache_clear(&self, py: Python<'_>) {
        for engine in self.engines() {
            engine.clear(py);
        }
    }

    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        cache_stats(py, &self.engines())
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn cache_key(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        key_of(&self.call(args.py()), args, kwargs)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn cache_delete(
        &self,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        match &self.engine {
            Some(engine) => delete(engine, &self.call(args.py()), args, kwargs),
            None => Ok(false),
        }
    }

    #[pyo3(signature = (value, /, *args, **kwargs))]
    fn cache_set(
        &self,
        value: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        match &self.engine {
            Some(engine) => set(engine, &self.call(args.py()), value, args, kwargs),
            None => Ok(()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<bound mcache {} of {}>",
            self.owner.get().func.bind(py).repr()?,
            self.instance.bind(py).repr()?
        ))
    }
}

impl BoundCachedFunction {
    fn call<'a, 'py>(&'a self, py: Python<'py>) -> Call<'a, 'py> {
        let owner = self.owner.get();
        Call {
            func: &owner.func,
            keys: &owner.keys,
            instance: Some(self.instance.bind(py)),
            self_in_key: self.self_in_key,
        }
    }

    fn engines(&self) -> Vec<Arc<MemoryEngine>> {
        self.engine.iter().cloned().collect()
    }
}

/// What a call needs besides its arguments.
struct Call<'a, 'py> {
    func: &'a Py<PyAny>,
    keys: &'a KeyBuilder,
    /// The instance of a bound method (it comes first in the function's arguments).
    instance: Option<&'a Bound<'py, PyAny>>,
    /// The instance is part of the key (see `CachedFunction::__get__`).
    self_in_key: bool,
}

impl<'py> Call<'_, 'py> {
    /// The key of a call and its hash; `None` when the call does not bind.
    #[inline]
    fn key(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<(Bound<'py, PyAny>, isize)>> {
        let offset = usize::from(self.instance.is_some());
        let built = self.keys.build(args, kwargs, offset)?;
        match (built, self.instance) {
            (Some((key, _)), Some(instance)) if self.self_in_key => {
                let me = hashable(instance, pyo3::intern!(args.py(), "self"), 0)?;
                let key = PyTuple::new(args.py(), [me, key])?.into_any();
                let hash = key.hash()?;
                Ok(Some((key, hash)))
            }
            (built, _) => Ok(built),
        }
    }
}

/// The hot path: key, lookup, and on a miss one single-flight execution.
#[inline]
fn cached_call(
    engine: &Arc<MemoryEngine>,
    call: &Call<'_, '_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let Some((key, hash)) = call.key(args, kwargs)? else {
        // The call does not fit the signature: let the function raise its own TypeError.
        return invoke(call.func, call.instance, args, kwargs);
    };
    serve(engine, call, &key, hash, || Ok(args.clone()), kwargs)
}

/// The lookup of a keyed call, and on a miss one single-flight execution; `args` gives
/// the arguments as a tuple, made only when the function is to be called (the vectorcall
/// entry has none on a hit).
#[inline]
fn serve<'py>(
    engine: &Arc<MemoryEngine>,
    call: &Call<'_, 'py>,
    key: &Bound<'py, PyAny>,
    hash: isize,
    args: impl Fn() -> PyResult<Bound<'py, PyTuple>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Py<PyAny>> {
    engine.get_or_call(
        key,
        hash,
        || invoke(call.func, call.instance, &args()?, kwargs),
        // A stale value is served: its refresh runs on a worker thread.
        |lead| match args().and_then(|a| with_instance(call.instance, &a)) {
            Ok(all) => refresh_memory(
                engine,
                key,
                hash,
                lead,
                Recall::new(call.func, &all, kwargs),
            ),
            Err(_) => engine.abandon(lead),
        },
    )
}

/// The async hit path: key, lookup, and an awaitable that is already done. A miss
/// returns the coroutine that computes the value once across tasks, threads and loops.
#[inline]
fn async_call(
    engine: &Arc<MemoryEngine>,
    call: &Call<'_, '_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let py = args.py();
    let Some((key, hash)) = call.key(args, kwargs)? else {
        return invoke(call.func, call.instance, args, kwargs);
    };
    if engine.freshness().is_none() {
        if let Some(value) = engine.get(&key, hash)? {
            return Ready::wrap(py, value);
        }
    }
    let serving = match engine.freshness() {
        Some(_) => engine.get_serving(&key, hash)?,
        None => None,
    };
    if let Some(Serving::Fresh(value)) = serving {
        return Ready::wrap(py, value);
    }
    let slot = Bound::new(py, MemorySlot::new(Arc::clone(engine), key.unbind(), hash))?;
    let args = with_instance(call.instance, args)?;
    if let Some(Serving::Stale(value)) = serving {
        // Served now; one refresh runs as a task of the running loop.
        crate::fresh::refresh_async(py, slot.as_any(), call.func, &args, kwargs, &value)?;
        return Ready::wrap(py, value);
    }
    miss_coroutine(
        py,
        MissPath::Executor,
        slot.into_any(),
        call.func,
        args,
        kwargs,
    )
}

/// The call's positional arguments, with the instance first for a bound method.
fn with_instance<'py>(
    instance: Option<&Bound<'py, PyAny>>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyTuple>> {
    match instance {
        None => Ok(args.clone()),
        Some(inst) => {
            let mut all = Vec::with_capacity(args.len() + 1);
            all.push(inst.clone());
            all.extend(args.iter());
            PyTuple::new(args.py(), all)
        }
    }
}

/// Calls the wrapped function, with the instance first for a bound method.
fn invoke(
    func: &Py<PyAny>,
    instance: Option<&Bound<'_, PyAny>>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    let py = args.py();
    let func = func.bind(py);
    let result = match instance {
        None => func.call(args, kwargs)?,
        Some(_) => func.call(with_instance(instance, args)?, kwargs)?,
    };
    Ok(result.unbind())
}

fn bound_key<'py>(
    call: &Call<'_, 'py>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<(Bound<'py, PyAny>, isize)> {
    call.key(args, kwargs)?.ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err(
            "these arguments do not bind to the cached function's signature",
        )
    })
}

fn key_of(
    call: &Call<'_, '_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    Ok(bound_key(call, args, kwargs)?.0.unbind())
}

fn delete(
    engine: &MemoryEngine,
    call: &Call<'_, '_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<bool> {
    let (key, hash) = bound_key(call, args, kwargs)?;
    engine.delete(&key, hash)
}

fn set(
    engine: &MemoryEngine,
    call: &Call<'_, '_>,
    value: Py<PyAny>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let (key, hash) = bound_key(call, args, kwargs)?;
    engine.set(&key, hash, value);
    Ok(())
}
