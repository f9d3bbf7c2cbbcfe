use twat_cache::mcache;

#[mcache]
fn f<T: Clone>(x: T) -> T {
    x
}

fn main() {}
