use twat_cache::bcache;

#[bcache(dir = "x")]
async fn f(x: u32) -> u32 {
    x
}

fn main() {}
