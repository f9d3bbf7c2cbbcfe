use twat_cache::mcache;

#[mcache(key = x / 2)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
