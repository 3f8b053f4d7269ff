//! Tells the test build whether a PostgreSQL server was given: with
//! `SESSIOND_TEST_POSTGRES_URL` set, the PostgreSQL tests run (and must
//! pass); without it they are reported as ignored, never as passed.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(pg_tests)");
    println!("cargo:rerun-if-env-changed=SESSIOND_TEST_POSTGRES_URL");
    println!("cargo:rerun-if-changed=migrations");
    if std::env::var("SESSIOND_TEST_POSTGRES_URL").is_ok_and(|u| !u.trim().is_empty()) {
        println!("cargo:rustc-cfg=pg_tests");
    }
}
