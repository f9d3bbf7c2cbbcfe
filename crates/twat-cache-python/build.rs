//! Sets the interpreter's cfgs (`Py_GIL_DISABLED` for a free-threaded one), which
//! `src/holder.rs` picks its lock by.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
