use twat_cache::mcache;

#[mcache]
fn f((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
