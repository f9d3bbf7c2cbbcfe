//! The async hit path of `rcache` on one server: a [`Wire`] per event loop, which the
//! loop watches (`loop.add_reader`), so an awaited lookup costs one round trip and no
//! executor thread. `python/twat_cache/_wire.py` makes one per loop and cached
//! function, and falls back to the executor path (`cached_call`) for misses, for a
//! cluster or TLS, and whenever the wire cannot be used.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use twat_cache::{Error, HitRequest, KeyDigest, Reply, Wire};

use crate::errors::to_py_err;
use crate::persistent::PersistentFunction;

struct Pending {
    future: Py<PyAny>,
    key: KeyDigest,
    request: HitRequest,
    sent: Instant,
}

struct State {
    wire: Wire,
    pending: VecDeque<Pending>,
    /// The first reply of a lookup whose second has not arrived yet.
    half: Option<Reply>,
    /// A `call_later(expire)` is pending.
    timer: bool,
}

/// One event loop's connection for one cached function's lookups.
#[pyclass(frozen, module = "twat_cache._core")]
pub struct LoopWire {
    owner: Py<PersistentFunction>,
    /// A weak reference: `_wire.py` keeps wires per loop in a `WeakKeyDictionary`,
    /// whose values must not keep their loop alive.
    event_loop: Py<PyAny>,
    timeout: Duration,
    state: Mutex<State>,
}

/// A finished lookup, resolved after the state lock is let go (unpickling runs Python
/// code, which may look up again).
type Done = (Py<PyAny>, KeyDigest, Result<Option<Vec<u8>>, Error>);

#[pymethods]
impl LoopWire {
    /// Connects (blocking, with the GIL released: run it in an executor). `None` when
    /// this store has no wire to make (a cluster, TLS); an error when the server
    /// cannot be reached.
    #[staticmethod]
    fn connect(
        py: Python<'_>,
        owner: Py<PersistentFunction>,
        event_loop: Py<PyAny>,
    ) -> PyResult<Option<LoopWire>> {
        let engine = owner.get().engine();
        let Some(redis) = engine.redis(py) else {
            return Ok(None);
        };
        let timeout = redis.config().timeout;
        let wire = py.detach(|| redis.wire()).map_err(|e| to_py_err(py, e))?;
        let event_loop = py
            .import("weakref")?
            .getattr("ref")?
            .call1((event_loop,))?
            .unbind();
        Ok(wire.map(|wire| LoopWire {
            owner,
            event_loop,
            timeout,
            state: Mutex::new(State {
                wire,
                pending: VecDeque::new(),
                half: None,
                timer: false,
            }),
        }))
    }

    #[getter]
    fn fd(&self) -> i32 {
        self.state.lock().wire.fd()
    }

    #[getter]
    fn broken(&self) -> bool {
        self.state.lock().wire.broken()
    }

    /// Sends the lookup of `key`: a future of `(found, value)`, or `None` when the wire
    /// (or the breaker) says to take the executor path.
    fn fetch(slf: &Bound<'_, Self>, key: KeyDigest) -> PyResult<Option<Py<PyAny>>> {
        let py = slf.py();
        let this = slf.get();
        let engine = this.owner.get().engine();
        let Some(redis) = engine.redis(py) else {
            return Ok(None);
        };
        let Some((bytes, request)) = redis.hit_request(engine.namespace(), key) else {
            return Ok(None);
        };
        let arm = {
            let mut state = this.state.lock();
            if !state.wire.send(&bytes) {
                return Ok(None);
            }
            let future = this.event_loop(py)?.call_method0("create_future")?;
            state.pending.push_back(Pending {
                future: future.clone().unbind(),
                key,
                request,
                sent: Instant::now(),
            });
            let arm = !state.timer;
            state.timer = true;
            (future, arm)
        };
        let (future, arm) = arm;
        if arm {
            this.arm(slf, this.timeout)?;
        }
        Ok(Some(future.unbind()))
    }

    /// The loop says the socket is readable: resolves the lookups whose replies came.
    fn on_readable(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (done, failed) = {
            let mut state = this.state.lock();
            match state.wire.receive() {
                Ok(replies) => (this.pair(py, &mut state, replies), None),
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        this.resolve(py, done)?;
        if let Some(e) = failed {
            this.fail(py, e)?;
        }
        Ok(())
    }

    /// The timer: a lookup older than the timeout breaks the wire (its callers take the
    /// executor path); otherwise the timer is set for the oldest one.
    fn expire(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let next = {
            let mut state = this.state.lock();
            match state.pending.front() {
                None => {
                    state.timer = false;
                    return Ok(());
                }
                Some(p) => (p.sent + this.timeout).checked_duration_since(Instant::now()),
            }
        };
        match next {
            Some(left) if !left.is_zero() => this.arm(slf, left),
            _ => this.fail(py, Error::Remote("a lookup timed out".into())),
        }
    }
}

impl LoopWire {
    fn event_loop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let event_loop = self.event_loop.bind(py).call0()?;
        if event_loop.is_none() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the event loop of this connection is gone",
            ));
        }
        Ok(event_loop)
    }

    fn arm(&self, slf: &Bound<'_, Self>, after: Duration) -> PyResult<()> {
        let expire = slf.getattr("expire")?;
        self.event_loop(slf.py())?
            .call_method1("call_later", (after.as_secs_f64(), expire))?;
        Ok(())
    }

    /// Pairs replies with the lookups waiting for them, in order (two each).
    fn pair(&self, py: Python<'_>, state: &mut State, replies: Vec<Reply>) -> Vec<Done> {
        let redis = self.owner.get().engine().redis(py);
        let mut done = Vec::new();
        for reply in replies {
            let Some(first) = state.half.take() else {
                state.half = Some(reply);
                continue;
            };
            let Some(p) = state.pending.pop_front() else {
                continue;
            };
            let outcome = match redis {
                Some(redis) => redis.hit_outcome(&p.request, first, reply),
                None => Ok(None),
            };
            done.push((p.future, p.key, outcome));
        }
        done
    }

    fn resolve(&self, py: Python<'_>, done: Vec<Done>) -> PyResult<()> {
        let engine = self.owner.get().engine();
        for (future, key, outcome) in done {
            let found = match outcome {
                Ok(Some(bytes)) => engine.value_of_bytes(py, key, bytes),
                Ok(None) => None,
                Err(e) => {
                    engine.wire_failed(py, &e);
                    None
                }
            };
            settle(py, &future, found)?;
        }
        Ok(())
    }

    /// Breaks the wire: every waiting lookup takes the executor path, the loop stops
    /// watching the socket, the failure is counted and warned about (once per outage).
    fn fail(&self, py: Python<'_>, e: Error) -> PyResult<()> {
        let (pending, fd) = {
            let mut state = self.state.lock();
            state.half = None;
            state.timer = false;
            let fd = state.wire.fd();
            (std::mem::take(&mut state.pending), fd)
        };
        let engine = self.owner.get().engine();
        if let Some(redis) = engine.redis(py) {
            let _ = redis.wire_failed::<()>(e.clone());
        }
        engine.wire_failed(py, &e);
        let event_loop = self.event_loop(py)?;
        if !event_loop.call_method0("is_closed")?.is_truthy()? {
            event_loop.call_method1("remove_reader", (fd,))?;
        }
        for p in pending {
            settle(py, &p.future, None)?;
        }
        Ok(())
    }
}

/// `(found, value)` into a future that its caller may have cancelled meanwhile.
fn settle(py: Python<'_>, future: &Py<PyAny>, found: Option<Py<PyAny>>) -> PyResult<()> {
    let future = future.bind(py);
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    let result = match found {
        Some(v) => (true, v).into_pyobject(py)?,
        None => (false, py.None()).into_pyobject(py)?,
    };
    future.call_method1("set_result", (result,))?;
    Ok(())
}
