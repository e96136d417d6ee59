//! Whether the members themselves agree on the history, checked after the
//! faults stop and before the client's history is judged.
//!
//! etcd 3.5.0 to 3.5.2 can leave a member that was killed mid-apply with a
//! history of its own: it did not save its consistent index atomically
//! with the data (etcd-io/etcd#13766, fixed in 3.5.3). Such a member
//! answers a read at a revision the others have with "future revision", or
//! hashes the same revision differently. That is the server's fault, not
//! the client's, so it is reported apart from the violations, with each
//! member's revision and hash, and the final state is read from a member
//! that agrees with the majority.

use std::time::Duration;

use etcd_tower::Client;

use crate::model::Recorder;

/// What the members said about the history up to `rev`.
pub struct Agreement {
    /// One line per member: its revision and its hash at `rev`.
    pub lines: Vec<String>,
    /// Members whose history differs from the majority's (by index).
    pub disagreeing: Vec<usize>,
    /// A member that agrees with the majority and holds `rev`.
    pub reader: Option<usize>,
}

/// Asks every member for its revision and its `HashKV` at `rev`, waiting up
/// to `patience` for members that are behind to catch up.
pub async fn check(clients: &[Client], rev: i64, patience: Duration, rec: &Recorder) -> Agreement {
    let deadline = tokio::time::Instant::now() + patience;
    let mut answers: Vec<Result<(i64, u32, i64), String>> = Vec::new();
    for client in clients {
        let answer = loop {
            let status = client.status().await;
            let hash = match &status {
                Ok(status) if status.header.as_ref().is_some_and(|h| h.revision >= rev) => client
                    .hash_kv(rev)
                    .await
                    .map(|h| {
                        (
                            status.header.as_ref().map_or(0, |h| h.revision),
                            h.hash,
                            h.compact_revision,
                        )
                    })
                    .map_err(|e| e.to_string()),
                Ok(status) => Err(format!(
                    "at revision {}, behind {rev}",
                    status.header.as_ref().map_or(0, |h| h.revision)
                )),
                Err(e) => Err(e.to_string()),
            };
            if hash.is_ok() || tokio::time::Instant::now() >= deadline {
                break hash;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        answers.push(answer);
    }
    // The majority's hash (members compacted at the same revision hash the
    // same history).
    let hashes: Vec<(u32, i64)> = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|&(_, hash, compact)| (hash, compact)))
        .collect();
    let majority = hashes
        .iter()
        .max_by_key(|h| hashes.iter().filter(|o| o == h).count())
        .copied();
    let mut agreement = Agreement {
        lines: Vec::new(),
        disagreeing: Vec::new(),
        reader: None,
    };
    for (i, answer) in answers.iter().enumerate() {
        match answer {
            Ok((revision, hash, compact)) => {
                agreement.lines.push(format!(
                    "m{i}: revision {revision}, hash at {rev} {hash:08x} (compacted at {compact})"
                ));
                if Some((*hash, *compact)) == majority {
                    agreement.reader.get_or_insert(i);
                } else {
                    agreement.disagreeing.push(i);
                }
            }
            Err(e) => {
                agreement.lines.push(format!("m{i}: {e}"));
                agreement.disagreeing.push(i);
            }
        }
    }
    if !agreement.disagreeing.is_empty() {
        rec.count("server: members that disagree on the history");
    }
    agreement
}
