use twat_cache::bcache;

#[bcache(max_size = 10)]
fn f(x: u32) -> u32 {
    x
}

fn main() {}
