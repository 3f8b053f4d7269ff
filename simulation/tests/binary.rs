//! The `sessiond-sim` executable, which `sessiond simulate` runs: its help,
//! a run's table on stdout, and a failing exit code on an invariant
//! violation or a bad flag.

use std::process::{Command, Output};

fn sim(args: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessiond-sim"))
        .args(args.split_whitespace())
        .output()
        .expect("runs sessiond-sim")
}

#[test]
fn help_lists_the_flags() {
    let out = sim("--help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--seed",
        "--users",
        "--rps",
        "--duration",
        "--ttl",
        "--policy",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn a_run_prints_its_table_and_succeeds() {
    let out = sim("--seed 3 --users 50 --rps 5 --duration 10m --ttl 1m --policy ttl,push --jobs 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("sessiond simulate, seed 3"), "{table}");
    assert!(table.contains("invariants: all hold."), "{table}");
    assert!(stderr.contains("simulated 10m of traffic"), "{stderr}");
}

#[test]
fn a_violation_or_a_bad_flag_fails() {
    let out = sim(
        "--users 100 --rps 20 --duration 15m --ttl 1m --policy push \
         --role-change-rate 600/h --replica-lag 3s --seed 5 --jobs 1",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invariant violation"), "{stderr}");

    let out = sim("--duration 5");
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no unit"));
}
