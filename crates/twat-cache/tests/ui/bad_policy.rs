use twat_cache::mcache;

#[mcache(policy = "mru")]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
