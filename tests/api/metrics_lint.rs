//! `/metrics` passes Prometheus's own linter, `promtool check metrics`
//! (Debian package `prometheus`): every series has HELP text and a name
//! Prometheus accepts. CI installs promtool; elsewhere the check is skipped
//! with a message, never silently.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::*;

/// Whether promtool can run here; in CI its absence is a failure.
fn promtool_present() -> bool {
    tool_present(
        "promtool",
        "--version",
        "the /metrics lint",
        "apt-get install prometheus",
    )
}

/// The value of an unlabelled series in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_pass_promtool_check() {
    if !promtool_present() {
        return;
    }
    let app = spawn_app().await;
    let (_, token) = app.user_with_token("lint@example.test", "editor").await;
    let miss = app.refresh(&token, true).await;
    assert_eq!(miss.body["cache"]["hit"], false, "{}", miss.text);
    let hit = app.session(&token).await;
    assert_eq!(hit.body["cache"]["hit"], true, "{}", hit.text);
    let anonymous = app.request("GET", "/api/auth/session", None, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);

    let m = app.request("GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    // The lint runs on figures, not on an idle node's zeros.
    for name in ["sessiond_cache_hits_total", "sessiond_db_queries_total"] {
        assert!(
            sample(&m.text, name).is_some_and(|v| v >= 1.0),
            "{name} in {}",
            m.text
        );
    }

    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts promtool");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(m.text.as_bytes())
        .expect("feeds promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );
    app.stop().await;
}
