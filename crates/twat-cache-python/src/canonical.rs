//! Persistent keys: Python values written into the core's [`KeyHasher`] in a canonical,
//! type-tagged form that is the same in every process, on every machine, under every
//! `PYTHONHASHSEED` (docs/reference.md, "Keys").
//!
//! Equal values give equal keys, as in the memory engine: untyped, `True`, `1`, `1.0`
//! and `Decimal("1")` are all the integer 1; `typed=True` keeps their types apart. A
//! value with no stable encoding (an object whose only identity is its address) is a
//! `TypeError` that names the argument.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{
    IntoPyDict, PyBool, PyByteArray, PyBytes, PyComplex, PyDict, PyFloat, PyFrozenSet, PyInt,
    PyList, PyRange, PySet, PySlice, PyString, PyTuple, PyType,
};
use twat_cache::{KeyDigest, KeyHasher, Tag};

use crate::arrays::{ArrayValue, Found};
use crate::key::KeyBuilder;
use crate::once::{
    loaded, DATE, DECIMAL, DEFAULT_DICT, ENUM, FRACTION, ORDERED_DICT, PURE_PATH, TIME, TIMEDELTA,
};
use crate::state::Extra;

/// Nesting deeper than this is refused (and ends self-containing values).
const MAX_DEPTH: usize = 64;

/// Writes values into a hasher; `typed` keeps equal values of different types apart.
pub struct Encoder<'a> {
    pub hasher: &'a mut KeyHasher,
    pub typed: bool,
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
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            self.str(s)?;
        } else if let Ok(i) = obj.cast_exact::<PyInt>() {
            self.int(i)?;
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            self.float(obj, f.value())?;
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            self.hasher.bytes(b.as_bytes());
        } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
            self.sequence(Tag::Tuple, t.iter(), t.len(), name, depth)?;
        } else if let Ok(l) = obj.cast_exact::<PyList>() {
            self.sequence(Tag::List, l.iter(), l.len(), name, depth)?;
        } else if let Ok(d) = obj.cast_exact::<PyDict>() {
            self.dict(d, false, name, depth)?;
        } else {
            self.other(obj, name, depth)?;
        }
        Ok(())
    }

    /// Values that are not of an exact builtin type: enums, numpy scalars and arrays,
    /// subclasses of builtins (their class and attributes count too), then objects.
    fn other(&mut self, obj: &Bound<'_, PyAny>, name: &str, depth: usize) -> PyResult<()> {
        let py = obj.py();
        if ENUM.holds(obj)? {
            // By class and member name: a member's value may change, its name keys it
            // (a combination of flags has no name in older Pythons: its value then).
            self.hasher.begin(Tag::Object, 2);
            self.hasher.str(&type_name(&obj.get_type())?);
            match obj.getattr("name")?.cast_into::<PyString>() {
                Ok(member) => self.str(&member)?,
                Err(_) => self.value(&obj.getattr("value")?, name, depth + 1)?,
            }
            return Ok(());
        }
        if crate::arrays::is_numpy_scalar(obj)? {
            return self.numpy_scalar(obj, name, depth);
        }
        let base = if let Ok(s) = obj.cast::<PyString>() {
            self.str(s)?;
            py.get_type::<PyString>()
        } else if let Ok(i) = obj.cast::<PyInt>() {
            self.int(i)?;
            py.get_type::<PyInt>()
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            self.float(obj, f.value())?;
            py.get_type::<PyFloat>()
        } else if let Ok(b) = obj.cast::<PyBytes>() {
            self.hasher.bytes(b.as_bytes());
            py.get_type::<PyBytes>()
        } else if let Ok(b) = obj.cast::<PyByteArray>() {
            // bytearray(b"x") == b"x": one encoding.
            self.hasher.bytes(&b.to_vec());
            py.get_type::<PyByteArray>()
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            self.sequence(Tag::Tuple, t.iter(), t.len(), name, depth)?;
            py.get_type::<PyTuple>()
        } else if let Ok(l) = obj.cast::<PyList>() {
            self.sequence(Tag::List, l.iter(), l.len(), name, depth)?;
            py.get_type::<PyList>()
        } else if ORDERED_DICT.holds(obj)? {
            // Order is part of an OrderedDict's value.
            self.dict(obj.cast()?, true, name, depth)?;
            loaded(&ORDERED_DICT, py)?
        } else if DEFAULT_DICT.holds(obj)? {
            self.hasher.begin(Tag::Object, 2);
            self.hasher.str("collections.defaultdict");
            let factory = obj.getattr("default_factory")?;
            self.value(&factory, &format!("{name}.default_factory"), depth + 1)?;
            self.dict(obj.cast()?, false, name, depth)?;
            loaded(&DEFAULT_DICT, py)?
        } else if let Ok(d) = obj.cast::<PyDict>() {
            self.dict(d, false, name, depth)?;
            py.get_type::<PyDict>()
        } else if obj.cast::<PySet>().is_ok() || obj.cast::<PyFrozenSet>().is_ok() {
            let mut digests = Vec::new();
            for item in obj.try_iter()? {
                digests.push(self.child_digest(&item?, None, &format!("{name} member"), depth)?);
            }
            self.hasher.unordered(Tag::Set, digests);
            if obj.cast::<PySet>().is_ok() {
                py.get_type::<PySet>()
            } else {
                py.get_type::<PyFrozenSet>()
            }
        } else {
            return self.object(obj, name, depth);
        };
        self.extra(obj, &base, name, depth)
    }

    /// What a subclass instance adds to its builtin base: its class and attributes.
    fn extra(
        &mut self,
        obj: &Bound<'_, PyAny>,
        base: &Bound<'_, PyType>,
        name: &str,
        depth: usize,
    ) -> PyResult<()> {
        match crate::state::extra(obj, base)? {
            Extra::None => Ok(()),
            Extra::Attrs(attrs) => {
                self.hasher.begin(Tag::Object, 2);
                self.hasher.str(&type_name(&obj.get_type())?);
                self.dict(&attrs, false, name, depth)
            }
            Extra::Hidden => Err(unstable(obj, name, crate::state::HIDDEN)),
        }
    }

    fn sequence<'py>(
        &mut self,
        tag: Tag,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        len: usize,
        name: &str,
        depth: usize,
    ) -> PyResult<()> {
        self.hasher.begin(tag, len);
        for (i, item) in items.enumerate() {
            self.value(&item, &format!("{name}[{i}]"), depth + 1)?;
        }
        Ok(())
    }

    /// A dict: its (key, value) pairs in any order, or in their order (`ordered`).
    fn dict(
        &mut self,
        d: &Bound<'_, PyDict>,
        ordered: bool,
        name: &str,
        depth: usize,
    ) -> PyResult<()> {
        let mut digests = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            digests.push(self.child_digest(&k, Some(&v), name, depth)?);
        }
        if ordered {
            self.hasher.begin(Tag::List, digests.len());
            for d in digests {
                self.hasher.big_int(&d.to_le_bytes());
            }
        } else {
            self.hasher.unordered(Tag::Dict, digests);
        }
        Ok(())
    }

    /// The digest of one member of an unordered collection (a dict's pair).
    fn child_digest(
        &mut self,
        k: &Bound<'_, PyAny>,
        v: Option<&Bound<'_, PyAny>>,
        name: &str,
        depth: usize,
    ) -> PyResult<KeyDigest> {
        let mut h = self.hasher.child();
        let mut e = Encoder {
            hasher: &mut h,
            typed: self.typed,
        };
        match v {
            Some(v) => {
                e.value(k, &format!("{name} key"), depth + 1)?;
                e.value(v, &format!("{name}[{k}]"), depth + 1)?;
            }
            None => e.value(k, name, depth + 1)?,
        }
        Ok(h.finish())
    }

    /// A numpy scalar: a number is the Python number it equals; a datetime, string or
    /// record scalar is its dtype and its text.
    fn numpy_scalar(&mut self, obj: &Bound<'_, PyAny>, name: &str, depth: usize) -> PyResult<()> {
        let dtype = obj.getattr("dtype")?;
        let kind: String = dtype.getattr("kind")?.extract()?;
        if "biufcSU".contains(kind.as_str()) {
            return self.value(&obj.call_method0("item")?, name, depth + 1);
        }
        let tname = type_name(&obj.get_type())?;
        self.named_fields(&tname, &[&dtype.getattr("str")?.str()?, &obj.str()?])
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
        let t = obj.get_type();
        let tname = type_name(&t)?;
        match crate::arrays::classify(obj)? {
            Found::Array(ArrayValue::Raw {
                type_name,
                format,
                shape,
                data,
            }) => {
                return data.read(|bytes| {
                    if bytes.len() >= 1 << 20 {
                        // Milliseconds of hashing: let other threads run Python meanwhile.
                        let hasher = &mut *self.hasher;
                        py.detach(|| hasher.array(type_name, &format, &shape, bytes));
                    } else {
                        self.hasher.array(type_name, &format, &shape, bytes);
                    }
                });
            }
            Found::Array(ArrayValue::Masked {
                data,
                mask,
                fill_value,
                hard,
            }) => {
                self.hasher.begin(Tag::Object, 5);
                self.hasher.str("numpy.ma.MaskedArray");
                self.value(&data, &format!("{name}.data"), depth + 1)?;
                self.value(&mask, &format!("{name}.mask"), depth + 1)?;
                self.value(&fill_value, &format!("{name}.fill_value"), depth + 1)?;
                self.hasher.bool(hard);
                return Ok(());
            }
            Found::Refused(why) => return Err(unstable(obj, name, &why)),
            Found::NotArray => {}
        }
        if let Ok(c) = obj.cast::<PyComplex>() {
            // complex(2, 0) == 2: a complex with no imaginary part is its real part.
            if c.imag() == 0.0 && !self.typed {
                return self.float(&PyFloat::new(py, c.real()), c.real());
            }
            self.hasher.begin(Tag::Object, 3);
            self.hasher.str("complex");
            self.hasher.float(c.real());
            self.hasher.float(c.imag());
            return Ok(());
        }
        if FRACTION.holds(obj)? {
            let (num, den) = (obj.getattr("numerator")?, obj.getattr("denominator")?);
            if den.eq(1)? && !self.typed {
                return self.int(num.cast::<PyInt>()?);
            }
            self.hasher.begin(Tag::Object, 3);
            self.hasher.str("fractions.Fraction");
            self.int(num.cast::<PyInt>()?)?;
            return self.int(den.cast::<PyInt>()?);
        }
        if let Ok(r) = obj.cast::<PyRange>() {
            // Ranges compare as the sequences they make: range(0, 3, 2) == range(0, 4, 2).
            let len = r.len()?;
            self.hasher.begin(Tag::Object, 3);
            self.hasher.str("range");
            self.hasher.int(len as i64);
            if len > 0 {
                self.value(&r.getattr("start")?, name, depth + 1)?;
            }
            if len > 1 {
                self.value(&r.getattr("step")?, name, depth + 1)?;
            }
            return Ok(());
        }
        if let Ok(s) = obj.cast::<PySlice>() {
            self.hasher.begin(Tag::Object, 4);
            self.hasher.str("slice");
            for part in ["start", "stop", "step"] {
                self.value(&s.getattr(part)?, &format!("{name}.{part}"), depth + 1)?;
            }
            return Ok(());
        }
        if let Some(description) = crate::arrays::dtype_description(obj)? {
            return self.named_fields("numpy.dtype", &[&PyString::new(py, &description)]);
        }
        if obj.is(py.Ellipsis()) || obj.is(py.NotImplemented()) {
            return self.named_fields("builtins", &[&obj.repr()?]);
        }
        if DECIMAL.holds(obj)? {
            let integral: bool = obj.call_method0("is_finite")?.is_truthy()?
                && obj.eq(obj.call_method0("to_integral_value")?)?;
            if integral && !self.typed {
                let i = py.get_type::<PyInt>().call1((obj,))?;
                return self.int(i.cast::<PyInt>()?);
            }
            let text = obj.call_method0("normalize")?.str()?;
            return self.named_fields(&tname, &[&text]);
        }
        if PURE_PATH.holds(obj)? {
            // PurePosixPath("a") == PosixPath("a"): one name for every path class.
            return self.named_fields("pathlib.PurePath", &[&obj.str()?]);
        }
        if DATE.holds(obj)? || TIME.holds(obj)? || TIMEDELTA.holds(obj)? {
            let text = if TIMEDELTA.holds(obj)? {
                obj.str()?
            } else {
                obj.call_method0("isoformat")?.cast_into::<PyString>()?
            };
            return self.named_fields(&tname, &[&text]);
        }
        if let Some(items) = crate::state::dataclass_items(obj)? {
            self.hasher.begin(Tag::Object, items.len() + 1);
            self.hasher.str(&tname);
            for (field, value) in items {
                self.hasher.name(field.to_str()?);
                self.value(&value, &format!("{name}.{field}"), depth + 1)?;
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
        match crate::state::extra(obj, &py.get_type::<PyAny>())? {
            Extra::Hidden => Err(unstable(obj, name, crate::state::HIDDEN)),
            Extra::Attrs(attrs) if !attrs.is_empty() || has_custom_eq(&t)? => {
                self.hasher.begin(Tag::Object, 1);
                self.hasher.str(&tname);
                self.dict(&attrs, false, name, depth)
            }
            _ => Err(unstable(
                obj,
                name,
                "it has no value to encode, only its identity (its address)",
            )),
        }
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
