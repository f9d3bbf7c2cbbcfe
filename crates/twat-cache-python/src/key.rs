//! Memory-engine keys: binding a call's arguments to the function's parameters (the
//! content rules for unhashable arguments are in `content.rs`).
//!
//! Rules (docs/reference.md, "Keys"): calls that bind to the same arguments share an entry
//! (`f(1)`, `f(a=1)`, `f()` with default 1, any keyword order); values that compare equal
//! share an entry unless `typed=True`; unhashable arguments are keyed by content.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::content::{has_nan, hashable, is_plain_key, is_plain_scalar, tags, unhashable};

/// `inspect.Parameter.kind` values, as `python/twat_cache/_signature.py` sends them.
const POSITIONAL_ONLY: u8 = 0;
const VAR_POSITIONAL: u8 = 2;
const KEYWORD_ONLY: u8 = 3;
const VAR_KEYWORD: u8 = 4;

/// A key as the memory engine stores it (the store keeps its hash beside it).
pub struct PyKey {
    pub obj: Py<PyAny>,
}

impl PyKey {
    /// Python equality with the identity shortcut; an exception in `__eq__` is returned.
    #[inline]
    pub fn matches(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if self.obj.as_ptr() == other.as_ptr() {
            return Ok(true);
        }
        self.obj.bind(other.py()).eq(other)
    }
}

struct Param {
    name: Py<PyString>,
    default: Option<Py<PyAny>>,
    ignored: bool,
}

impl Param {
    /// The argument given for this parameter, else its default; `None` when neither
    /// exists (the call does not bind).
    fn value_or_default<'py>(
        &self,
        py: Python<'py>,
        given: Option<Bound<'py, PyAny>>,
    ) -> Option<Bound<'py, PyAny>> {
        given.or_else(|| self.default.as_ref().map(|d| d.bind(py).clone()))
    }
}

/// The parameters of the cached function, and how its calls become keys.
pub struct KeyBuilder {
    positional: Vec<Param>,
    n_posonly: usize,
    kwonly: Vec<Param>,
    varargs: Option<bool>,
    varkw: Option<bool>,
    typed: bool,
    key_fn: Option<Py<PyAny>>,
    /// Only plain positional parameters, nothing ignored, untyped, no `key=`: the key is
    /// the bound positional values with trailing defaults left out, so a positional call
    /// can use its argument (or argument tuple) as the key without building anything.
    simple: bool,
    /// How many positional parameters have no default.
    required: usize,
}

/// One parameter as sent by Python: (name, kind, has_default, default, ignored).
pub type ParamSpec = (Py<PyString>, u8, bool, Py<PyAny>, bool);

impl KeyBuilder {
    pub fn new(params: Vec<ParamSpec>, typed: bool, key_fn: Option<Py<PyAny>>) -> Self {
        let mut kb = KeyBuilder {
            positional: Vec::new(),
            n_posonly: 0,
            kwonly: Vec::new(),
            varargs: None,
            varkw: None,
            typed,
            key_fn,
            simple: false,
            required: 0,
        };
        for (name, kind, has_default, default, ignored) in params {
            let param = Param {
                name,
                default: has_default.then_some(default),
                ignored,
            };
            match kind {
                VAR_POSITIONAL => kb.varargs = Some(ignored),
                VAR_KEYWORD => kb.varkw = Some(ignored),
                KEYWORD_ONLY => kb.kwonly.push(param),
                _ => {
                    if kind == POSITIONAL_ONLY {
                        kb.n_posonly += 1;
                    }
                    kb.positional.push(param);
                }
            }
        }
        kb.required = kb.positional.iter().filter(|p| p.default.is_none()).count();
        kb.simple = !typed
            && kb.key_fn.is_none()
            && kb.kwonly.is_empty()
            && kb.varargs.is_none()
            && kb.varkw.is_none()
            && kb.positional.iter().all(|p| !p.ignored);
        kb
    }

    /// Whether `typed=True` was given.
    pub fn typed(&self) -> bool {
        self.typed
    }

    /// The key of a call, and its hash. `offset` parameters are already bound (1 for a
    /// method bound to an instance: `self` is not part of the key). `Ok(None)`: the call
    /// does not bind to the signature; the function itself will raise the `TypeError`.
    #[inline]
    pub fn build<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        offset: usize,
    ) -> PyResult<Option<(Bound<'py, PyAny>, isize)>> {
        let py = args.py();
        if kwargs.is_none_or(|k| k.is_empty()) {
            if let Some(found) = self.positional_key(py, args.as_slice(), Some(args), offset) {
                return found.map(Some);
            }
        }
        if self.simple {
            return match self.bind_simple(args, kwargs, offset)? {
                Some(values) if values.iter().all(is_plain_key) => {
                    // Nothing to normalize: the values become the key as they are.
                    finish(py, values, false).map(Some)
                }
                Some(values) => {
                    let parts = self.normalize(&values, offset)?;
                    finish(py, parts, false).map(Some)
                }
                None => Ok(None),
            };
        }
        if let Some(key_fn) = &self.key_fn {
            let raw = key_fn.bind(py).call(args, kwargs)?;
            let key = hashable(&raw, pyo3::intern!(py, "key()"), 0)?;
            let h = key.hash()?;
            return Ok(Some((key, h)));
        }
        match self.bind(args, kwargs, offset)? {
            Some(parts) => finish(py, parts, self.typed).map(Some),
            None => Ok(None),
        }
    }

    /// The fast path: the key of a call with positional arguments only, of a simple
    /// function, is the arguments as they are (less trailing defaults). `tuple` is the
    /// arguments as a tuple when the caller has one (a tuple key is made from `values`
    /// otherwise: equal to it, so both paths find the same entries). `None`: the call is
    /// not for this path.
    #[inline]
    pub fn positional_key<'py>(
        &self,
        py: Python<'py>,
        values: &[Bound<'py, PyAny>],
        tuple: Option<&Bound<'py, PyTuple>>,
        offset: usize,
    ) -> Option<PyResult<(Bound<'py, PyAny>, isize)>> {
        let given = values.len() + offset;
        if !(self.simple && given <= self.positional.len() && given >= self.required) {
            return None;
        }
        let n = self.keep_until_defaults(values, offset);
        if values[..n].iter().any(|v| has_nan(v, 0)) {
            return Some(
                self.normalize(&values[..n], offset)
                    .and_then(|parts| finish(py, parts, false)),
            );
        }
        let key = match (n, tuple) {
            (1, _) => values[0].clone(),
            (n, Some(t)) if n == values.len() => t.clone().into_any(),
            (n, Some(t)) => t.get_slice(0, n).into_any(),
            (n, None) => match PyTuple::new(py, &values[..n]) {
                Ok(t) => t.into_any(),
                Err(e) => return Some(Err(e)),
            },
        };
        Some(match key.hash() {
            Ok(h) => Ok((key, h)),
            Err(e) if unhashable(py, &e) => self
                .normalize(&values[..n], offset)
                .and_then(|parts| finish(py, parts, false)),
            Err(e) => Err(e),
        })
    }

    /// How many leading `values` (for the positional parameters from `offset` on) to keep:
    /// trailing values equal to their parameter's default are dropped, so `f(1)` and
    /// `f(1, 2)` share a key when `b=2` is the default.
    fn keep_until_defaults(&self, values: &[Bound<'_, PyAny>], offset: usize) -> usize {
        let mut n = values.len();
        while n > 0 {
            let value = &values[n - 1];
            match &self.positional[offset + n - 1].default {
                Some(d) if equals_default(value, d) => n -= 1,
                _ => break,
            }
        }
        n
    }

    /// Hashable forms of positional values (from parameter `offset` on).
    fn normalize<'py>(
        &self,
        values: &[Bound<'py, PyAny>],
        offset: usize,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let py = match values.first() {
            Some(v) => v.py(),
            None => return Ok(Vec::new()),
        };
        values
            .iter()
            .zip(&self.positional[offset..])
            .map(|(v, p)| hashable(v, p.name.bind(py), 0))
            .collect()
    }

    /// Binds a call of a simple function (see `simple`) to its positional parameters,
    /// fills defaults and drops trailing defaults, as the fast path keys them.
    fn bind_simple<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        offset: usize,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let py = args.py();
        let params = &self.positional[offset.min(self.positional.len())..];
        if args.len() > params.len() {
            return Ok(None);
        }
        // Up to eight parameters bind on the stack.
        let mut inline: [Option<Bound<'py, PyAny>>; 8] = Default::default();
        let mut heap = Vec::new();
        let slots: &mut [Option<Bound<'py, PyAny>>] = if params.len() <= inline.len() {
            &mut inline[..params.len()]
        } else {
            heap.resize(params.len(), None);
            &mut heap
        };
        for (slot, a) in slots.iter_mut().zip(args.iter()) {
            *slot = Some(a);
        }
        let first_keyword = self.n_posonly.saturating_sub(offset);
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                let k = k.cast_into::<PyString>()?;
                match params
                    .iter()
                    .skip(first_keyword)
                    .position(|p| same_name(&p.name, &k))
                {
                    Some(i) if slots[i + first_keyword].is_none() => {
                        slots[i + first_keyword] = Some(v)
                    }
                    _ => return Ok(None),
                }
            }
        }
        let mut values = Vec::with_capacity(params.len());
        for (slot, p) in slots.iter_mut().zip(params) {
            match p.value_or_default(py, slot.take()) {
                Some(v) => values.push(v),
                None => return Ok(None),
            }
        }
        let keep = self.keep_until_defaults(&values, offset);
        values.truncate(keep);
        Ok(Some(values))
    }

    /// Binds a call to the signature and returns the key parts in canonical order:
    /// positional parameters, the `*args` tuple, keyword-only parameters, then the extra
    /// `**kwargs` sorted by name. Ignored parameters are left out.
    fn bind<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        offset: usize,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let py = args.py();
        let Some(binding) = self.bind_all(args, kwargs, offset)? else {
            return Ok(None);
        };
        let mut parts = Vec::with_capacity(binding.named.len() + 2);
        let mut named = binding.named.into_iter();
        for (name, value) in named.by_ref().take(binding.n_positional) {
            parts.push(hashable(&value, &name, 0)?);
        }
        if let Some(extra) = binding.varargs {
            let name = PyString::new(py, "*args");
            let extra = extra
                .iter()
                .map(|a| hashable(a, &name, 0))
                .collect::<PyResult<Vec<_>>>()?;
            parts.push(PyTuple::new(py, extra)?.into_any());
        }
        for (name, value) in named {
            parts.push(hashable(&value, &name, 0)?);
        }
        if !binding.varkw.is_empty() {
            let mut flat = vec![tags(py)?.kwargs.bind(py).clone().into_any()];
            for (k, v) in binding.varkw {
                let v = hashable(&v, &k, 0)?;
                flat.push(k.into_any());
                flat.push(v);
            }
            parts.push(PyTuple::new(py, flat)?.into_any());
        }
        Ok(Some(parts))
    }

    /// Binds a call to the signature: every parameter that is not ignored, with defaults
    /// filled in, in signature order. `Ok(None)`: the call does not bind.
    pub fn bind_all<'py>(
        &self,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        offset: usize,
    ) -> PyResult<Option<Binding<'py>>> {
        let py = args.py();
        let n_pos = self.positional.len();
        let mut slots: Vec<Option<Bound<'py, PyAny>>> = vec![None; n_pos + self.kwonly.len()];
        let mut extra_args = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if offset + i < n_pos {
                slots[offset + i] = Some(a);
            } else if self.varargs.is_some() {
                extra_args.push(a);
            } else {
                return Ok(None);
            }
        }
        let mut extra_kw: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)> = Vec::new();
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                let k = k.cast_into::<PyString>()?;
                let slot = self.positional[offset.max(self.n_posonly)..]
                    .iter()
                    .position(|p| same_name(&p.name, &k))
                    .map(|i| i + offset.max(self.n_posonly))
                    .or_else(|| {
                        self.kwonly
                            .iter()
                            .position(|p| same_name(&p.name, &k))
                            .map(|i| i + n_pos)
                    });
                match slot {
                    Some(i) if slots[i].is_some() => return Ok(None),
                    Some(i) => slots[i] = Some(v),
                    None if self.varkw.is_some() => extra_kw.push((k, v)),
                    None => return Ok(None),
                }
            }
        }
        let mut binding = Binding {
            named: Vec::with_capacity(slots.len()),
            n_positional: 0,
            varargs: (self.varargs == Some(false)).then_some(extra_args),
            varkw: Vec::new(),
        };
        let params = self.positional.iter().chain(&self.kwonly);
        for (i, (param, slot)) in params.zip(slots).enumerate() {
            if i < offset {
                continue; // bound already (the instance of a method)
            }
            let Some(value) = param.value_or_default(py, slot) else {
                return Ok(None);
            };
            if !param.ignored {
                binding.named.push((param.name.bind(py).clone(), value));
                if i < n_pos {
                    binding.n_positional += 1;
                }
            }
        }
        if self.varkw == Some(false) {
            extra_kw.sort_by(|a, b| {
                let (a, b) = (a.0.to_cow(), b.0.to_cow());
                a.ok().cmp(&b.ok())
            });
            binding.varkw = extra_kw;
        }
        Ok(Some(binding))
    }

    /// The `key=` function, if one was given.
    pub fn key_fn(&self) -> Option<&Py<PyAny>> {
        self.key_fn.as_ref()
    }
}

/// A call bound to its function's parameters (see [`KeyBuilder::bind_all`]).
pub struct Binding<'py> {
    /// Parameters that are not ignored, positional ones first, with their values.
    pub named: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
    /// How many of `named` are positional parameters (`*args` comes after them).
    pub n_positional: usize,
    /// The extra positional arguments, when the function takes `*args` (not ignored).
    pub varargs: Option<Vec<Bound<'py, PyAny>>>,
    /// The extra keyword arguments, sorted by name (empty when `**kwargs` is ignored).
    pub varkw: Vec<(Bound<'py, PyString>, Bound<'py, PyAny>)>,
}

/// `value == default`, without asking Python when the answer is known (a plain scalar
/// never equals `None`); a comparison that raises counts as "not equal".
#[inline]
fn equals_default(value: &Bound<'_, PyAny>, default: &Py<PyAny>) -> bool {
    if value.as_ptr() == default.as_ptr() {
        return true;
    }
    let default = default.bind(value.py());
    if (default.is_none() || value.is_none())
        && (is_plain_scalar(value) || is_plain_scalar(default))
    {
        return false;
    }
    value.eq(default).unwrap_or(false)
}

fn same_name(a: &Py<PyString>, b: &Bound<'_, PyString>) -> bool {
    a.as_ptr() == b.as_ptr() || a.bind(b.py()).as_any().eq(b).unwrap_or(false)
}

/// Makes the key object from its parts: the lone part itself, or a tuple of the parts
/// (followed by their types when `typed`).
fn finish<'py>(
    py: Python<'py>,
    mut parts: Vec<Bound<'py, PyAny>>,
    typed: bool,
) -> PyResult<(Bound<'py, PyAny>, isize)> {
    let key = if parts.len() == 1 && !typed {
        parts.pop().expect("one part")
    } else {
        if typed {
            let types: Vec<_> = parts.iter().map(|p| p.get_type().into_any()).collect();
            parts.extend(types);
        }
        PyTuple::new(py, parts)?.into_any()
    };
    let h = key.hash()?;
    Ok((key, h))
}
