//! A change log whose head went back below what a node has seen (a
//! database restored from a backup, a failover to a replica that was
//! behind, a log reset by hand): the numbers the node has seen are handed
//! out again, so a node that trusts its `seen` skips the new changes and
//! is still granted a lease at the new head. It must drop its cache
//! instead.

use std::time::Duration;

use super::netns::{self, Link};
use super::{judge, ms, Change, Findings, Pair, Place, Written};
use crate::helpers::{outside_sql, Backend};

/// SQLite shared file: b is cut from its peers, so only the change log
/// (read at each renewal) can tell it of a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_node_applies_changes_after_the_log_went_back() {
    let test = "sqlite_node_applies_changes_after_the_log_went_back";
    if !netns::available_or_skip(test) {
        return;
    }
    let pair = Pair::start(Backend::Sqlite, Place::Namespace).await;
    let users = pair.users_cached_on_b(2).await;
    pair.host().cut(Link::Peer);
    let mut findings = Findings::default();
    let mut acked = 0;
    for (i, user) in users.iter().enumerate() {
        let change = Change::Role(format!("demoted-{i}"));
        // The log as a restored database has it: emptied, its head at 0.
        // Right after, a write takes number 1 (below what b has seen)
        // before b's next renewal (every lease/4) looks at the log.
        outside_sql(
            Backend::Sqlite,
            &pair.db.url,
            "DELETE FROM sessiond_changes",
        )
        .await;
        outside_sql(
            Backend::Sqlite,
            &pair.db.url,
            "UPDATE sessiond_change_head SET seq = 0, pruned = 0 WHERE id = 1",
        )
        .await;
        let (written, took) = pair.write(user, &change).await;
        eprintln!(
            "{test}: {change:?} of user {} through a: {written:?} after {}",
            user.id,
            ms(took)
        );
        let Written::Acked = written else {
            continue;
        };
        acked += 1;
        for _ in 0..20 {
            let a = pair.session(&pair.b, &user.token).await;
            findings.check(format!("b, user {}", user.id), judge(user, &change, &a));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if acked == 0 {
        findings.add("no write was acknowledged: nothing was checked");
    }
    pair.finish().await;
    findings.assert_none(test);
}
