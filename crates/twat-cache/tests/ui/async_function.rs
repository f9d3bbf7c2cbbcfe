use twat_cache::mcache;

#[mcache]
async fn f(x: u32) -> u32 {
    x
}

fn main() {}
