//! Cuts between two nodes only ([`Lab::cut_pair`]): rules in the hub's
//! bridge (nftables, bridge family) that drop the two addresses' packets to
//! each other in transit, so neither end sees an error or a reset.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

use sessiond_actors::sync::MutexExt;

use super::Lab;

impl Lab {
    /// Cuts cluster traffic between two addresses on the cluster network
    /// (any two of [`Lab::root_addr`] and the hosts' [`Host::peer_addr`](super::Host::peer_addr)),
    /// both ways, and nothing else: the hub's bridge drops their packets
    /// to each other in transit, so neither end sees an error or a reset,
    /// as with a pulled cable between those two alone.
    pub fn cut_pair(&self, a: Ipv4Addr, b: Ipv4Addr) {
        let hub = self.hub.as_str();
        static MADE: Mutex<()> = Mutex::new(());
        let _made = MADE.locked();
        if nft(hub, &["list", "chain", "bridge", "sdcuts", "pairs"]).is_err() {
            let made = nft(hub, &["add", "table", "bridge", "sdcuts"]).and_then(|()| {
                nft(
                    hub,
                    &[
                        "add",
                        "chain",
                        "bridge",
                        "sdcuts",
                        "pairs",
                        "{ type filter hook forward priority 0; policy accept; }",
                    ],
                )
            });
            if let Err(e) = made {
                panic!("cannot make the pair cuts' table in {hub}: {e}");
            }
        }
        for (from, to) in [(a, b), (b, a)] {
            let rule = [
                "add",
                "rule",
                "bridge",
                "sdcuts",
                "pairs",
                "ip",
                "saddr",
                &from.to_string(),
                "ip",
                "daddr",
                &to.to_string(),
                "drop",
            ];
            if let Err(e) = nft(hub, &rule) {
                panic!("cannot cut {from} from {to}: {e}");
            }
        }
    }

    /// Heals every cut made by [`Lab::cut_pair`].
    pub fn heal_pairs(&self) {
        let _ = nft(&self.hub, &["flush", "chain", "bridge", "sdcuts", "pairs"]);
    }
}

/// Runs `nft` with `args` in namespace `ns`.
fn nft(ns: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .map_err(|e| format!("nft {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
