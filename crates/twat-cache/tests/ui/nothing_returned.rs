use twat_cache::mcache;

#[mcache]
fn f(x: u32) {
    let _ = x;
}

fn main() {}
