use twat_cache::mcache;

#[mcache]
fn f(x: &mut Vec<u32>) -> usize {
    x.len()
}

fn main() {}
