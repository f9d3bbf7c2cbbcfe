//! What `#[mcache]` refuses, at compile time, with a message at the cause (`tests/ui`:
//! each case and the error it must give).

#[test]
fn macro_errors_point_at_the_cause_and_name_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
