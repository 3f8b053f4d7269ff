//! The flags and environment variables of a run (see the crate doc).

/// What a run measures and how long.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) secs: f64,
    pub(crate) rounds: usize,
    pub(crate) connections: usize,
    pub(crate) users: usize,
    pub(crate) threads: usize,
    pub(crate) stores: Vec<String>,
}

impl Settings {
    pub(crate) fn load() -> Settings {
        fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        }
        let mut s = Settings {
            secs: env("HTTP_LOAD_SECS", 2.0),
            rounds: env("HTTP_LOAD_ROUNDS", 4),
            connections: env("HTTP_LOAD_CONNECTIONS", 32),
            users: env("HTTP_LOAD_USERS", 200),
            threads: env("HTTP_LOAD_THREADS", 2),
            stores: env("HTTP_LOAD_STORES", "sqlite,postgres".to_string())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        };
        // `cargo bench` adds `--bench`; anything unknown is ignored.
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = args.get(i + 1).cloned().unwrap_or_default();
            let used = match args[i].as_str() {
                "--secs" => value.parse().map(|v| s.secs = v).is_ok(),
                "--rounds" => value.parse().map(|v| s.rounds = v).is_ok(),
                "--connections" => value.parse().map(|v| s.connections = v).is_ok(),
                "--users" => value.parse().map(|v| s.users = v).is_ok(),
                "--threads" => value.parse().map(|v| s.threads = v).is_ok(),
                "--stores" => {
                    s.stores = value.split(',').map(|v| v.trim().to_string()).collect();
                    true
                }
                _ => false,
            };
            i += if used { 2 } else { 1 };
        }
        s.rounds = s.rounds.max(1);
        s.connections = s.connections.max(1);
        s.users = s.users.max(1);
        s.threads = s.threads.max(1);
        s
    }

    pub(crate) fn command(&self) -> String {
        format!(
            "cargo bench --bench http_load -- --secs {} --rounds {} --connections {} --users {} --threads {} --stores {}",
            self.secs,
            self.rounds,
            self.connections,
            self.users,
            self.threads,
            self.stores.join(",")
        )
    }
}
