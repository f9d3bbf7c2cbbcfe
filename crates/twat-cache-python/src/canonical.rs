//! Persistent keys: Python values written into the core's [`KeyHasher`] in a canonical,
//! type-tagged form that is the same in every process, on every machine, under every
//! `PYTHONHASHSEED` (SPEC.md, "Keys").
//!
//! Equal values give equal keys, as in the memory engine: untyped, `True`, `1`, `1.0`
//! and `Decimal("1")` are all the integer 1; `typed=True` keeps their types apart. A
//! value with no stable encoding (an object whose only identity is its address) is a
//! `TypeError` that names the argument.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    IntoPyDict, PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet,
    PyString, PyTuple, PyType,
};
use twat_cache::{KeyDigest, KeyHasher, Tag};

use crate::key::KeyBuilder;

use crate::buffer;

/// Nesting deeper than this is refused (and ends self-containing values).
const MAX_DEPTH: usize = 64;

/// Writes values into a hasher; `typed` keeps equal values of different types apart.
pub struct Encoder<'a> {
    pub hasher: &'a mut KeyHasher,
    pub typed: bool,
}

/// Python types the encoder recognises by class, imported once.
struct Known {
    enum_type: Py<PyType>,
    decimal: Py<PyType>,
    pure_path: Py<PyType>,
    date: Py<PyType>,
    time: Py<PyType>,
    timedelta: Py<PyType>,
}

fn known(py: Python<'_>) -> PyResult<&Known> {
    static KNOWN: PyOnceLock<Known> = PyOnceLock::new();
    KNOWN.get_or_try_init(py, || {
        let class = |module: &str, name: &str| -> PyResult<Py<PyType>> {
            Ok(py
                .import(module)?
                .getattr(name)?
                .cast_into::<PyType>()?
                .unbind())
        };
        Ok(Known {
            enum_type: class("enum", "Enum")?,
            decimal: class("decimal", "Decimal")?,
            pure_path: class("pathlib", "PurePath")?,
            date: class("datetime", "date")?,
            time: class("datetime", "time")?,
            timedelta: class("datetime", "timedelta")?,
        })
    })
}

/// `module.qualname` of a type: what names it across processes.
pub fn type_name(t: &Bound<'_, PyType>) -> PyResult<String> {
    Ok(format!("{}.{}", t.module()?, t.qualname()?))
}

fn unstable(obj: &Bound<'_, PyAny>, name: &str, why: &str) -> PyErr {
    let t = obj
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string());
    let root = name.split(['.', '[']).next().unwrap_or(name);
    PyTypeError::new_err(format!(
        "argument {name} of type {t} cannot be turned into a persistent cache key ({why}); \
         pass ignore=('{root}',) or key=..."
    ))
}

impl Encoder<'_> {
    /// Writes one value; `name` says where it sits, for error messages.
    pub fn value(&mut self, obj: &Bound<'_, PyAny>, name: &str, depth: usize) -> PyResult<()> {
        let py = obj.py();
        if depth > MAX_DEPTH {
            return Err(unstable(obj, name, "it nests too deep or contains itself"));
        }
        if self.typed && depth == 0 {
            self.hasher.type_name(&type_name(&obj.get_type())?);
        }
        if obj.is_none() {
            self.hasher.none();
        } else if let Ok(b) = obj.cast::<PyBool>() {
            if self.typed {
                self.hasher.bool(b.is_true());
            } else {
                self.hasher.int(b.is_true() as i64);
            }
        } else if let Ok(s) = obj.cast::<PyString>() {
            // str subclasses too (StrEnum members equal their values).
            self.str(s)?;
        } else if let Ok(i) = obj.cast::<PyInt>() {
            // int subclasses too (IntEnum members equal their values).
            self.int(i)?;
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            self.float(obj, f.value())?;
        } else if obj.is_instance(known(py)?.enum_type.bind(py))? {
            // By class and member name: a member's value may change, its name keys it.
            self.hasher.begin(Tag::Object, 2);
            self.hasher.str(&type_name(&obj.get_type())?);
            self.hasher.str(&obj.getattr("name")?.extract::<String>()?);
        } else if let Ok(b) = obj.cast::<PyBytes>() {
            self.hasher.bytes(b.as_bytes());
        } else if let Ok(b) = obj.cast::<PyByteArray>() {
            // bytearray(b"x") == b"x": one encoding.
            self.hasher.bytes(&b.to_vec());
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            self.hasher.begin(Tag::Tuple, t.len());
            for (i, item) in t.iter().enumerate() {
                self.value(&item, &format!("{name}[{i}]"), depth + 1)?;
            }
        } else if let Ok(l) = obj.cast::<PyList>() {
            self.hasher.begin(Tag::List, l.len());
            for (i, item) in l.iter().enumerate() {
                self.value(&item, &format!("{name}[{i}]"), depth + 1)?;
            }
        } else if let Ok(d) = obj.cast::<PyDict>() {
            let mut digests = Vec::with_capacity(d.len());
            for (k, v) in d.iter() {
                let mut h = self.hasher.child();
                let mut e = Encoder {
                    hasher: &mut h,
                    typed: self.typed,
                };
                e.value(&k, &format!("{name} key"), depth + 1)?;
                e.value(&v, &format!("{name}[{k}]"), depth + 1)?;
                digests.push(h.finish());
            }
            self.hasher.unordered(Tag::Dict, digests);
        } else if obj.cast::<PySet>().is_ok() || obj.cast::<PyFrozenSet>().is_ok() {
            let mut digests = Vec::new();
            for item in obj.try_iter()? {
                let mut h = self.hasher.child();
                Encoder {
                    hasher: &mut h,
                    typed: self.typed,
                }
                .value(&item?, &format!("{name} member"), depth + 1)?;
                digests.push(h.finish());
            }
            self.hasher.unordered(Tag::Set, digests);
        } else {
            self.object(obj, name, depth)?;
        }
        Ok(())
    }

    fn str(&mut self, s: &Bound<'_, PyString>) -> PyResult<()> {
        match s.to_str() {
            Ok(s) => self.hasher.str(s),
            // Lone surrogates: their UTF-8 with surrogatepass is still one fixed spelling.
            Err(_) => {
                let b = s.call_method1("encode", ("utf-8", "surrogatepass"))?;
                self.hasher.tag(Tag::Str);
                self.hasher.bytes(b.cast::<PyBytes>()?.as_bytes());
            }
        }
        Ok(())
    }

    fn int(&mut self, i: &Bound<'_, PyInt>) -> PyResult<()> {
        if let Ok(v) = i.extract::<i64>() {
            self.hasher.int(v);
            return Ok(());
        }
        let bits: usize = i.call_method0("bit_length")?.extract()?;
        let kwargs = [("signed", true)].into_py_dict(i.py())?;
        let le = i.call_method("to_bytes", (bits / 8 + 1, "little"), Some(&kwargs))?;
        self.hasher.big_int(le.cast::<PyBytes>()?.as_bytes());
        Ok(())
    }

    fn float(&mut self, obj: &Bound<'_, PyAny>, v: f64) -> PyResult<()> {
        // 1.0 == 1: an integral float is its integer, unless typed.
        if !self.typed && v.is_finite() && v.fract() == 0.0 {
            if v.abs() < 9.0e18 {
                self.hasher.int(v as i64);
            } else {
                let i = obj.py().get_type::<PyInt>().call1((obj,))?;
                self.int(i.cast::<PyInt>()?)?;
            }
        } else {
            self.hasher.float(v);
        }
        Ok(())
    }

    /// Everything that is not a builtin container or scalar.
    fn object(&mut self, obj: &Bound<'_, PyAny>, name: &str, depth: usize) -> PyResult<()> {
        let py = obj.py();
        let k = known(py)?;
        let t = obj.get_type();
        let tname = type_name(&t)?;
        if tname.starts_with("numpy.") && tname != "numpy.ndarray" && tname != "numpy.matrix" {
            // A numpy scalar is keyed as the Python number it equals.
            if let Ok(item) = obj.call_method0("item") {
                return self.value(&item, name, depth + 1);
            }
        }
        let hashed = buffer::with_bytes(obj, |format, shape, bytes| {
            if format.contains('O') {
                return false;
            }
            if bytes.len() >= 1 << 20 {
                // Milliseconds of hashing: let other threads run Python meanwhile.
                let hasher = &mut *self.hasher;
                py.detach(|| hasher.array(&tname, format, shape, bytes));
            } else {
                self.hasher.array(&tname, format, shape, bytes);
            }
            true
        })?;
        match hashed {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(unstable(obj, name, "it holds Python objects, not raw data"))
            }
            None => {}
        }
        if obj.is_instance(k.decimal.bind(py))? {
            let integral: bool = obj.call_method0("is_finite")?.is_truthy()?
                && obj.eq(obj.call_method0("to_integral_value")?)?;
            if integral && !self.typed {
                let i = py.get_type::<PyInt>().call1((obj,))?;
                return self.int(i.cast::<PyInt>()?);
            }
            let text = obj.call_method0("normalize")?.str()?;
            return self.named_fields(&tname, &[&text]);
        }
        if obj.is_instance(k.pure_path.bind(py))? {
            // PurePosixPath("a") == PosixPath("a"): one name for every path class.
            return self.named_fields("pathlib.PurePath", &[&obj.str()?]);
        }
        if obj.is_instance(k.date.bind(py))?
            || obj.is_instance(k.time.bind(py))?
            || obj.is_instance(k.timedelta.bind(py))?
        {
            let text = if obj.is_instance(k.timedelta.bind(py))? {
                obj.str()?
            } else {
                obj.call_method0("isoformat")?.cast_into::<PyString>()?
            };
            return self.named_fields(&tname, &[&text]);
        }
        if let Ok(fields) = obj.getattr(pyo3::intern!(py, "__dataclass_fields__")) {
            let fields = fields.cast::<PyDict>()?;
            self.hasher.begin(Tag::Object, fields.len() + 1);
            self.hasher.str(&tname);
            for field in fields.keys() {
                let field = field.cast_into::<PyString>()?;
                self.hasher.name(field.to_str()?);
                self.value(&obj.getattr(&field)?, &format!("{name}.{field}"), depth + 1)?;
            }
            return Ok(());
        }
        if let Ok(cls) = obj.cast::<PyType>() {
            return self.named_fields("type", &[&PyString::new(py, &type_name(cls)?)]);
        }
        if obj.is_callable() {
            // Functions and other callables are keyed by where they are defined.
            if let (Ok(m), Ok(q)) = (obj.getattr("__module__"), obj.getattr("__qualname__")) {
                let full = format!("{}.{}", m.str()?, q.str()?);
                if !full.contains("<lambda>") && !full.contains("<locals>") {
                    return self.named_fields("function", &[&PyString::new(py, &full)]);
                }
            }
            return Err(unstable(
                obj,
                name,
                "a lambda or local function has no stable name",
            ));
        }
        // An instance keyed by value: its class and its attributes (`self` of a method
        // in a persistent cache).
        if let Ok(attrs) = obj.getattr(pyo3::intern!(py, "__dict__")) {
            if let Ok(attrs) = attrs.cast::<PyDict>() {
                if !attrs.is_empty() || has_custom_eq(&t)? {
                    let mut digests = Vec::with_capacity(attrs.len());
                    for (k, v) in attrs.iter() {
                        let mut h = self.hasher.child();
                        let mut e = Encoder {
                            hasher: &mut h,
                            typed: self.typed,
                        };
                        e.value(&k, name, depth + 1)?;
                        e.value(&v, &format!("{name}.{k}"), depth + 1)?;
                        digests.push(h.finish());
                    }
                    self.hasher.begin(Tag::Object, 1);
                    self.hasher.str(&tname);
                    self.hasher.unordered(Tag::Dict, digests);
                    return Ok(());
                }
            }
        }
        Err(unstable(
            obj,
            name,
            "it has no value to encode, only its identity (its address)",
        ))
    }

    fn named_fields(&mut self, tname: &str, fields: &[&Bound<'_, PyString>]) -> PyResult<()> {
        self.hasher.begin(Tag::Object, fields.len() + 1);
        self.hasher.str(tname);
        for f in fields {
            self.str(f)?;
        }
        Ok(())
    }
}

/// The persistent key of a call: the function's `identity` (`module.qualname` and
/// version), then each bound parameter's name and value in signature order, `*args`,
/// and `**kwargs` sorted by name (or the result of `key=`). `None`: the call does not
/// bind to the signature.
pub fn call_digest(
    keys: &KeyBuilder,
    identity: &str,
    secure: bool,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<KeyDigest>> {
    let mut hasher = KeyHasher::new(secure);
    hasher.str(identity);
    let mut enc = Encoder {
        hasher: &mut hasher,
        typed: keys.typed(),
    };
    if let Some(key_fn) = keys.key_fn() {
        let raw = key_fn.bind(args.py()).call(args, kwargs)?;
        enc.hasher.name("key()");
        enc.value(&raw, "key()", 0)?;
        return Ok(Some(hasher.finish()));
    }
    let Some(binding) = keys.bind_all(args, kwargs, 0)? else {
        return Ok(None);
    };
    let mut named = binding.named.iter();
    let param = |enc: &mut Encoder<'_>, (name, value): &(Bound<'_, PyString>, Bound<'_, PyAny>)| {
        let name = name.to_str()?;
        enc.hasher.name(name);
        enc.value(value, name, 0)
    };
    for p in named.by_ref().take(binding.n_positional) {
        param(&mut enc, p)?;
    }
    if let Some(extra) = &binding.varargs {
        enc.hasher.name("*args");
        enc.hasher.begin(Tag::Tuple, extra.len());
        for (i, a) in extra.iter().enumerate() {
            enc.value(a, &format!("*args[{i}]"), 0)?;
        }
    }
    for p in named {
        param(&mut enc, p)?;
    }
    if !binding.varkw.is_empty() {
        enc.hasher.name("**kwargs");
        for p in &binding.varkw {
            param(&mut enc, p)?;
        }
    }
    Ok(Some(hasher.finish()))
}

/// Whether a class defines its own `__eq__` (then even an attribute-less instance has a
/// value, decided by that method; otherwise it has only its identity).
fn has_custom_eq(t: &Bound<'_, PyType>) -> PyResult<bool> {
    let object_eq = t.py().get_type::<pyo3::types::PyAny>().getattr("__eq__")?;
    Ok(!t.getattr("__eq__")?.is(&object_eq))
}
