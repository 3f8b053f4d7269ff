//! The deployment examples in `deploy/` held against the real service: every
//! metric the Grafana dashboard and the alert rules query is one sessiond
//! exports, the rules pass promtool (syntax and their unit tests), and every
//! flag and variable the systemd unit and the Kubernetes manifests set is one
//! `sessiond serve` takes, and the unit passes `systemd-analyze verify`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_sessiond");
const RULES: &str = "deploy/prometheus/sessiond.rules.yml";
const RULES_TEST: &str = "deploy/prometheus/sessiond.rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/sessiond.json";
const UNIT: &str = "deploy/systemd/sessiond.service";
const UNIT_ENV: &str = "deploy/systemd/sessiond.env.example";
const KUBERNETES: &str = "deploy/kubernetes";
const COMPOSE: &str = "compose.yaml";

/// Metrics of the contract (src/metrics/names.rs) that sessiond does not export yet
/// (none today). A name listed here makes the test fail once it is
/// exported, so the list cannot go stale; any other name the files use
/// must be exported.
const NOT_YET_EXPORTED: &[&str] = &[];

/// Variables the deployment files set that are not the twin of a serve flag.
const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "SESSIOND_ADMIN_PASSWORD",
        "read by serve for the first administrator (README, Configuration)",
    ),
    ("RUST_LOG", "the log filter"),
    (
        "POD_IP",
        "Kubernetes: only expanded into SESSIOND_CLUSTER_LISTEN",
    ),
    (
        "SESSIOND_RUST_IMAGE",
        "compose.yaml: the image the Dockerfile's build stage starts from",
    ),
    (
        "SESSIOND_RUNTIME_IMAGE",
        "compose.yaml: the image the Dockerfile's run stage starts from",
    ),
];

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn kubernetes_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(KUBERNETES);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {KUBERNETES}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// The metric names in a Prometheus text exposition: every sample's name
/// (so a histogram's `_bucket`, `_sum` and `_count`) and every `# TYPE`.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split_whitespace().next() {
                names.insert(name.to_string());
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The index just past the `close` that ends the group opened at `open`,
/// stepping over quoted strings (a `}` inside a label value is no end).
fn skip_group(chars: &[char], open: usize, close: char) -> usize {
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn skip_string(chars: &[char], open: usize) -> usize {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression selects: its identifiers other than
/// functions, keywords, and label names (in `{}` matchers and `by (...)`
/// lists). Grafana's `$variables` are skipped wherever they stand.
fn promql_metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: [&str; 8] = [
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_group(&chars, i, '}');
        } else if c == '[' {
            i = skip_group(&chars, i, ']');
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i, '}');
            }
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration (0.99, 5m, 1e3).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            // A function call, or an aggregation: `sum(`, `sum by (`.
            let mut after = next;
            while after < chars.len() && is_name_char(chars[after]) {
                after += 1;
            }
            let follower: String = chars[next..after].iter().collect();
            let opens = chars.get(next) == Some(&'(')
                || matches!(follower.to_ascii_lowercase().as_str(), "by" | "without");
            if LABEL_LISTS.contains(&lower.as_str()) {
                if opens {
                    i = skip_group(&chars, next, ')');
                }
            } else if !KEYWORDS.contains(&lower.as_str()) && !opens {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `expr:` of every rule in a rules file, inline or as a `|` block.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - trimmed.len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(value.trim_matches(['"', '\'']).to_string());
        }
    }
    exprs
}

/// Every PromQL expression of the dashboard: the panels' queries and the
/// query variables' (`label_values(SELECTOR, label)` selects with SELECTOR).
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        _ => walk(child, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    let variables = dashboard["templating"]["list"].as_array().cloned();
    for var in variables.unwrap_or_default() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or_else(|| panic!("variable {} has no query", var["name"]));
        let query = query.trim();
        match query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
        {
            Some(args) => {
                let selector = args.rsplit_once(',').map_or(args, |(s, _)| s);
                exprs.push(selector.to_string());
            }
            None => exprs.push(query.to_string()),
        }
    }
    exprs
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

#[test]
fn promql_names_skip_functions_labels_and_grouping() {
    assert_eq!(
        promql_metric_names(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"$job", x="}b"}[$__rate_interval])))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        promql_metric_names(
            "sum(rate(x_total[5m])) by (instance) / on(instance) group_left() y > bool 1 or vector(0) offset 5m"
        ),
        ["x_total", "y"]
    );
    assert_eq!(
        promql_metric_names("up == 0 unless on (job) absent(z:recorded) and ${var} # comment w"),
        ["up", "z:recorded"]
    );
    assert_eq!(
        rule_expressions(
            "  - alert: A\n    expr: a > 1\n    for: 1m\n  - expr: |\n      b\n\n        / c\n    for: 2m\n"
        ),
        ["a > 1", "      b\n\n        / c"]
    );
}

#[tokio::test]
async fn dashboard_and_rules_query_only_exported_metrics() {
    let app = spawn_app().await;
    let (id, token) = app.user_with_token("ann@example.com", "editor").await;
    assert_eq!(app.session(&token).await.status, 200);
    assert_eq!(app.session(&token).await.status, 200);
    assert_eq!(app.refresh(&token, true).await.status, 200);
    assert_eq!(app.set_role(id, "viewer").await.status, 200);
    let metrics = app.request("GET", "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    let exported = exported_names(&metrics.text);
    app.stop().await;

    // The histograms' series are there, so a query of `_bucket` is checked
    // against what Prometheus really scrapes.
    for series in ["_bucket", "_sum", "_count"] {
        let name = format!("sessiond_resolve_seconds{series}");
        assert!(exported.contains(&name), "{name} not in:\n{}", metrics.text);
    }
    let landed: Vec<&&str> = NOT_YET_EXPORTED
        .iter()
        .filter(|n| exported.contains(**n))
        .collect();
    assert!(
        landed.is_empty(),
        "{landed:?} are exported now: remove them from NOT_YET_EXPORTED"
    );

    let rules = rule_expressions(&read(RULES));
    let alerts = read(RULES)
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert_eq!(rules.len(), alerts, "one expression per alert in {RULES}");
    let dashboard = dashboard();
    let panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["type"] != "row").collect())
        .unwrap_or_default();
    assert!(!panels.is_empty(), "{DASHBOARD} has no panels");
    for panel in &panels {
        let queries = panel["targets"].as_array().map_or(0, |t| {
            t.iter().filter(|t| t["expr"].as_str().is_some()).count()
        });
        assert!(queries > 0, "panel {} has no query", panel["title"]);
    }

    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    let sources = [
        (RULES, rules),
        (DASHBOARD, dashboard_expressions(&dashboard)),
    ];
    for (file, exprs) in &sources {
        for expr in exprs {
            let names = promql_metric_names(expr);
            assert!(!names.is_empty(), "{file}: no metric in `{expr}`");
            for name in names {
                if !exported.contains(&name) && !NOT_YET_EXPORTED.contains(&name.as_str()) {
                    unknown.push(format!("{file}: {name} (in `{}`)", expr.trim()));
                }
                used.insert(name);
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics sessiond does not export:\n{}",
        unknown.join("\n")
    );
    // The allow-list holds only names the files use.
    for name in NOT_YET_EXPORTED {
        assert!(used.contains(*name), "{name} is allowed but used nowhere");
    }
}

/// promtool, unless it is not installed (CI installs it, so there its
/// absence fails).
fn promtool() -> Option<&'static str> {
    crate::helpers::tool_present(
        "promtool",
        "--version",
        "the alert rules' and dashboard's checks",
        "apt-get install prometheus",
    )
    .then_some("promtool")
}

#[track_caller]
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_and_dashboard_queries_pass_promtool() {
    let Some(promtool) = promtool() else {
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    run_ok(
        Command::new(promtool)
            .current_dir(root)
            .args(["check", "rules", RULES]),
    );
    run_ok(
        Command::new(promtool)
            .current_dir(root)
            .args(["test", "rules", RULES_TEST]),
    );

    // The dashboard's queries as recording rules, Grafana's variables given
    // values, so that promtool parses each of them.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expr) in dashboard_expressions(&dashboard()).iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap_or_default()
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).expect("writes the rules");
    run_ok(Command::new(promtool).arg("check").arg("rules").arg(&file));
}

/// The flags `sessiond serve --help` lists, and the variables it names.
fn serve_help() -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("runs sessiond serve --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let flags = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            let end = w
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(w.len());
            format!("--{}", &w[..end])
        })
        .collect();
    let variables = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_string)
        .collect();
    (flags, variables)
}

/// `SESSIOND_*` names anywhere in `text`, comments included.
fn sessiond_variables(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("SESSIOND_"))
        .map(str::to_string)
        .collect()
}

/// The `--flag`s of a command line (`--flag=value` or `--flag value`).
fn flags_of(words: &str) -> Vec<String> {
    words
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn deployment_files_use_only_serve_flags_and_variables() {
    let (known_flags, known_variables) = serve_help();
    assert!(known_flags.contains("--listen") && known_variables.contains("SESSIOND_LISTEN"));
    let other: BTreeSet<&str> = OTHER_VARIABLES.iter().map(|(n, _)| *n).collect();
    let mut unknown = Vec::new();
    let mut check = |file: &str, flags: Vec<String>, variables: Vec<String>| {
        assert!(
            !flags.is_empty() || !variables.is_empty(),
            "{file}: found neither a flag nor a variable"
        );
        for flag in flags {
            if !known_flags.contains(&flag) {
                unknown.push(format!("{file}: flag {flag}"));
            }
        }
        for var in variables {
            if !known_variables.contains(&var) && !other.contains(var.as_str()) {
                unknown.push(format!("{file}: variable {var}"));
            }
        }
    };

    // systemd: the flags of ExecStart (after `serve`), and every variable
    // the unit and its environment file name (commented examples too).
    let unit = read(UNIT);
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "{UNIT}: one ExecStart");
    let serve = exec[0]
        .split_once(" serve")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{UNIT}: ExecStart runs `sessiond serve`"));
    check(UNIT, flags_of(serve), sessiond_variables(&unit));
    let env_file = read(UNIT_ENV);
    let mut assigned: Vec<String> = env_file
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter_map(|l| l.split_once('='))
        .map(|(name, _)| name)
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect();
    assigned.extend(sessiond_variables(&env_file));
    check(UNIT_ENV, Vec::new(), assigned);

    // Kubernetes: the container's argument list items (`- --flag=value`),
    // the names of its `env:` entries, and every SESSIOND_* name.
    let files = kubernetes_files();
    assert!(!files.is_empty(), "no manifests in {KUBERNETES}");
    let mut serves = 0;
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        let file = format!("{KUBERNETES}/{}", name.unwrap_or_default());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let items: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("- "))
            .map(str::trim)
            .collect();
        serves += items.iter().filter(|i| **i == "serve").count();
        let flags: Vec<String> = items
            .iter()
            .filter(|i| i.starts_with("--"))
            .flat_map(|i| flags_of(i))
            .collect();
        let mut variables: Vec<String> = items
            .iter()
            .filter_map(|i| i.strip_prefix("name:"))
            .map(str::trim)
            .filter(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .map(str::to_string)
            .collect();
        variables.extend(sessiond_variables(&text));
        if !flags.is_empty() || !variables.is_empty() {
            check(&file, flags, variables);
        }
    }
    assert_eq!(serves, 1, "one container runs `sessiond serve`");

    // compose.yaml: the sessiond service's command (one JSON list) and its
    // environment's names (the other services' are theirs).
    let whole = read(COMPOSE);
    let compose: String = whole
        .lines()
        .skip_while(|l| *l != "  sessiond:")
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("   "))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert!(!compose.is_empty(), "{COMPOSE}: a service named sessiond");
    let command: Vec<String> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("command:"))
        .flat_map(|l| serde_json::from_str::<Vec<String>>(l.trim()).unwrap_or_default())
        .collect();
    assert_eq!(
        command.first().map(String::as_str),
        Some("serve"),
        "{COMPOSE}: the sessiond service runs `sessiond serve` (a JSON list)"
    );
    let environment: Vec<String> = compose
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(name, _)| name.to_string())
        .filter(|n| n.starts_with("SESSIOND_") || n == "DATABASE_URL")
        .collect();
    let mut variables = sessiond_variables(&compose);
    variables.extend(environment);
    check(COMPOSE, flags_of(&command.join(" ")), variables);
    let unknown: BTreeSet<String> = unknown.into_iter().collect();
    assert!(
        unknown.is_empty(),
        "not accepted by `sessiond serve` (see --help):\n{}",
        unknown.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze not installed");
        return;
    }
    // verify wants the ExecStart binary to exist: point it at this build.
    let unit = read(UNIT).replace("/usr/local/bin/sessiond", BIN);
    assert!(unit.contains(BIN), "{UNIT} runs /usr/local/bin/sessiond");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sessiond.service");
    std::fs::write(&file, unit).expect("writes the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
        .expect("runs systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify {UNIT}:\n{stderr}"
    );
}
