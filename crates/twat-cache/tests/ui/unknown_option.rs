use twat_cache::mcache;

#[mcache(maxsize = 10)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
