//! `sessiond simulate` runs the `sessiond-sim` executable found beside the
//! binary: every argument goes through untouched, its exit code comes back,
//! and without it the error says how to build it. (The simulator itself is
//! tested in the simulation crate, binary included.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// A copy of the `sessiond` binary alone in a directory of its own, so what
/// sits beside it is up to the test.
fn sessiond_alone() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let bin = dir.path().join("sessiond");
    let original = env!("CARGO_BIN_EXE_sessiond");
    // A hard link when it can (the binary is large); a copy otherwise.
    if std::fs::hard_link(original, &bin).is_err() {
        std::fs::copy(original, &bin).expect("copies the binary");
    }
    (dir, bin)
}

fn simulate(bin: &Path, args: &[&str], path: &Path) -> std::process::Output {
    Command::new(bin)
        .arg("simulate")
        .args(args)
        .env("PATH", path)
        .output()
        .expect("runs sessiond")
}

#[cfg(unix)]
#[test]
fn simulate_runs_the_simulator_beside_it_with_every_argument() {
    use std::os::unix::fs::PermissionsExt;

    let (dir, bin) = sessiond_alone();
    // A stand-in simulator: echoes its arguments, one a line, and exits 3.
    // Written under another name and put in place by `cp`: an executable
    // this process had open for writing could be held open by a child
    // another test forks meanwhile ("text file busy" when run).
    let script = dir.path().join("sim.sh");
    std::fs::write(&script, "#!/bin/sh\nprintf '%s\\n' \"$@\"\nexit 3\n").expect("writes");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sim = dir.path().join("sessiond-sim");
    let copied = Command::new("cp").arg(&script).arg(&sim).status();
    assert!(copied.is_ok_and(|s| s.success()), "cp {}", sim.display());

    let args = [
        "--seed",
        "7",
        "--help",
        "--ttl",
        "1m,5m",
        "--partition",
        "n2@2h+10m",
    ];
    let out = simulate(&bin, &args, dir.path());
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echoed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(echoed.lines().collect::<Vec<_>>(), args);
}

#[test]
fn simulate_without_the_simulator_says_how_to_build_it() {
    let (dir, bin) = sessiond_alone();
    let out = simulate(&bin, &["--seed", "1"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sessiond-sim") && stderr.contains("cargo build --release"),
        "{stderr}"
    );
}
