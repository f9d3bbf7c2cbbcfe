use twat_cache::mcache;

#[mcache]
fn f(x: impl AsRef<str>) -> usize {
    x.as_ref().len()
}

fn main() {}
