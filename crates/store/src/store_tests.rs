use std::time::Duration;

use p2pchat_proto::{ChatMessage, Frame};

use super::*;

#[path = "open_tests.rs"]
mod open_tests;
#[path = "queue_tests.rs"]
mod queue_tests;
#[path = "read_tests.rs"]
mod read_tests;

/// Long enough for a loaded CI machine; only reached when something is broken.
pub(super) const PATIENCE: Duration = Duration::from_secs(20);

pub(super) fn id_of(seq: u64) -> MessageId {
    let mut id = [0xAB; 16];
    id[..8].copy_from_slice(&seq.to_be_bytes());
    id
}

pub(super) fn text_of(seq: u64) -> String {
    format!("m{seq}")
}

/// A run of `count` messages from `first`, each with the text `text_of(seq)`.
pub(super) fn run(conversation: &str, sender: &str, first: u64, count: u64, sent_ms: i64) -> Run {
    let mut frames = bytes::BytesMut::new();
    for seq in first..first + count {
        let message = ChatMessage {
            seq,
            sent_ms,
            id: id_of(seq),
            body: text_of(seq).into_bytes(),
        };
        p2pchat_proto::encode(&Frame::Message(message), &mut frames);
    }
    Run {
        conversation: conversation.into(),
        sender: sender.into(),
        frames: frames.freeze(),
    }
}

/// Queues `run` (the default budget is never spent by these tests); the receiver gets its outcome.
pub(super) fn queue(store: &Store, run: Run) -> oneshot::Receiver<Result<(), StoreError>> {
    let (tell, told) = oneshot::channel();
    let done: Done = Box::new(move |outcome| {
        let _ = tell.send(outcome);
    });
    assert!(store.try_append(run, done).is_ok(), "refused");
    told
}

/// Appends `run`, waiting for room when refused, and resolves once it is durable.
pub(super) async fn append(store: &Store, mut run: Run) -> Result<(), StoreError> {
    let (tell, told) = oneshot::channel();
    let mut done: Done = Box::new(move |outcome| {
        let _ = tell.send(outcome);
    });
    while let Err((back, again)) = store.try_append(run, done) {
        (run, done) = (back, again);
        store.room().await;
    }
    told.await.expect("done was dropped uncalled")
}

pub(super) fn log_rows(store: &Store) -> i64 {
    Connection::open(store.path())
        .unwrap()
        .query_row("SELECT count(*) FROM log", [], |row| row.get(0))
        .unwrap()
}

pub(super) fn member(key: &str, last_sent_seq: u64, read_through: u64) -> MemberState {
    MemberState {
        key: key.into(),
        last_sent_seq,
        last_sent_id: if last_sent_seq == 0 {
            [0; 16]
        } else {
            id_of(last_sent_seq)
        },
        read_through,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_acknowledged_after_their_commit_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut next = [1u64; 3];
    for i in 0..300 {
        let c = i % 3;
        let (key, first) = (format!("c{c}"), next[c]);
        next[c] += 2;
        let (reader, acked) = (store.clone(), acked.clone());
        let done: Done = Box::new(move |outcome| {
            // Called from the writer thread: the run must already be readable by anyone.
            let visible = reader.after(&key, first - 1, first + 1, 10, usize::MAX);
            let visible = visible.map_or(0, |found| found.len());
            acked.lock().unwrap().push((i, outcome.is_ok(), visible));
        });
        assert!(store
            .try_append(run(&format!("c{c}"), "alice", first, 2, 0), done)
            .is_ok());
    }
    store.load("c0".into()).await.unwrap(); // a barrier: every done above has been called
    let acked = acked.lock().unwrap().clone();
    let expected: Vec<_> = (0..300).map(|i| (i, true, 2)).collect();
    assert_eq!(acked, expected);
    assert!(log_rows(&store) < 300, "no grouping happened");
}

#[tokio::test]
async fn load_is_a_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut pending = Vec::new();
    for n in 0..500 {
        let sender = if n % 2 == 0 { "alice" } else { "bob" };
        pending.push(queue(&store, run("a\nb", sender, 2 * n + 1, 2, 0)));
    }
    store.set_read("a\nb".into(), "bob".into(), 640);
    let state = store.load("a\nb".into()).await.unwrap();
    assert_eq!(state.last_seq, 1000);
    assert_eq!(
        state.members,
        [member("alice", 998, 0), member("bob", 1000, 640)]
    );
    for mut told in pending {
        assert_eq!(
            told.try_recv().expect("acknowledged before the load").ok(),
            Some(())
        );
    }
    let unknown = store.load("nobody\nhere".into()).await.unwrap();
    assert_eq!(unknown, ConversationState::default());
}

#[test]
fn everything_survives_a_reopen_from_the_tables_and_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        rt.block_on(async {
            // One commit each: 120 log rows, many index windows of 8 rows.
            for n in 0..40 {
                for c in 0..3u64 {
                    let sender = if n % 2 == 0 { "bob" } else { "alice" };
                    let first = 2 * n + 1;
                    let count = if n == 39 { 2 + c } else { 2 };
                    append(&store, run(&format!("c{c}"), sender, first, count, 0))
                        .await
                        .unwrap();
                }
            }
            for c in 0..3u64 {
                store.set_read(format!("c{c}").into(), "alice".into(), 7);
                store.set_read(format!("c{c}").into(), "bob".into(), 80 + c);
            }
            // Bob's last run above was n = 38 (ends at 78); put one more of his.
            for c in 0..3u64 {
                append(&store, run(&format!("c{c}"), "bob", 81 + c, 1, 0))
                    .await
                    .unwrap();
                append(&store, run(&format!("c{c}"), "alice", 82 + c, 1, 0))
                    .await
                    .unwrap();
            }
        });
        let indexed: i64 = Connection::open(store.path())
            .unwrap()
            .query_row(
                "SELECT value FROM meta WHERE key = 'indexed_through'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            indexed > 0 && indexed < log_rows(&store),
            "some rows are in the tail"
        );
    }
    let expected = |c: u64| ConversationState {
        last_seq: 82 + c,
        members: vec![member("alice", 82 + c, 7), member("bob", 81 + c, 80 + c)],
    };
    let store = Store::open(dir.path()).unwrap();
    rt.block_on(async {
        for c in 0..3u64 {
            let key = format!("c{c}");
            assert_eq!(
                store.load(key.as_str().into()).await.unwrap(),
                expected(c),
                "{key}"
            );
            let all = store.before(&key, 0, 1000).unwrap();
            let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=82 + c).collect::<Vec<_>>(), "{key}");
            assert!(all
                .iter()
                .all(|m| m.body() == text_of(m.seq).as_bytes() && m.id == id_of(m.seq)));
            // Numbering goes on from the stored state; going back is refused.
            append(&store, run(&key, "bob", 83 + c, 1, 0))
                .await
                .unwrap();
            let back = append(&store, run(&key, "bob", 83 + c, 1, 0)).await;
            assert!(matches!(back, Err(StoreError::BadRun(_))), "{back:?}");
        }
    });
}

#[test]
fn conversations_dropped_from_memory_are_read_back() {
    // More conversations than the writer keeps in memory under test (16), and more changed in
    // one commit than a window may hold (32).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for round in 0..6u64 {
            let pending: Vec<_> = (0..40)
                .map(|c| queue(&store, run(&format!("c{c}"), "alice", round * 2 + 1, 2, 0)))
                .collect();
            for told in pending {
                told.await.unwrap().unwrap();
            }
            for c in 0..40 {
                store.set_read(format!("c{c}").into(), "bob".into(), round * 2 + 2);
            }
        }
        for c in 0..40 {
            let state = store.load(format!("c{c}").into()).await.unwrap();
            assert_eq!(state.last_seq, 12, "c{c}");
            assert_eq!(
                state.members,
                [member("alice", 12, 0), member("bob", 0, 12)]
            );
            let back = append(&store, run(&format!("c{c}"), "alice", 12, 1, 0)).await;
            assert!(matches!(back, Err(StoreError::BadRun(_))), "c{c}: {back:?}");
        }
    });
    assert_eq!(store.before("c39", 0, 100).unwrap().len(), 12);
}

#[test]
fn invalid_runs_are_refused_without_harming_their_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut gap = run("a\nb", "alice", 3, 1, 0).frames.to_vec();
    gap.extend_from_slice(&run("a\nb", "alice", 5, 1, 0).frames);
    let outcomes = rt.block_on(async {
        let told = [
            queue(&store, run("a\nb", "alice", 1, 2, 0)),
            queue(
                &store,
                Run {
                    frames: gap.into(),
                    ..run("a\nb", "alice", 3, 1, 0)
                },
            ),
            queue(
                &store,
                Run {
                    frames: Bytes::from_static(b"junk"),
                    ..run("a\nb", "a", 3, 1, 0)
                },
            ),
            queue(&store, run("a\nb", "alice", 2, 1, 0)), // goes back
            queue(&store, run("a\nb", "alice", 3, 1, 0)),
        ];
        let mut outcomes = Vec::new();
        for told in told {
            outcomes.push(told.await.unwrap().map_err(|e| e.to_string()));
        }
        outcomes
    });
    assert!(outcomes[0].is_ok() && outcomes[4].is_ok(), "{outcomes:?}");
    for refused in &outcomes[1..4] {
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("invalid run")),
            "{outcomes:?}"
        );
    }
    let seqs: Vec<u64> = store
        .before("a\nb", 0, 10)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[test]
fn old_log_rows_are_purged_and_numbering_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(dir.path()).unwrap();
    rt.block_on(async {
        for n in 1..=30u64 {
            let sender = if n % 2 == 0 { "alice" } else { "bob" };
            append(&store, run("a\nb", sender, n, 1, n as i64 * 10))
                .await
                .unwrap();
        }
        store.set_read("a\nb".into(), "bob".into(), 30);
        let state = store.load("a\nb".into()).await.unwrap();
        assert_eq!(store.purge_older_than(150).await.unwrap(), 14);
        assert_eq!(store.load("a\nb".into()).await.unwrap(), state);
        assert_eq!(store.purge_older_than(150).await.unwrap(), 0);
    });
    let left = store.before("a\nb", 0, 100).unwrap();
    assert_eq!(left.first().map(|m| (m.seq, m.sent_ms)), Some((15, 150)));
    assert_eq!(left.len(), 16);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let rows_before = log_rows(&store);
    rt.block_on(async {
        assert_eq!(
            store.purge_older_than(i64::MAX).await.unwrap() as i64,
            rows_before
        );
        let state = store.load("a\nb".into()).await.unwrap();
        assert_eq!(state.last_seq, 30);
        assert_eq!(
            state.members,
            [member("alice", 30, 0), member("bob", 29, 30)]
        );
        append(&store, run("a\nb", "alice", 31, 1, 999))
            .await
            .unwrap();
    });
    drop(store);
    // Row ids are never reused, so the index entry kept for numbering finds nothing stale.
    let store = Store::open(dir.path()).unwrap();
    let seqs: Vec<u64> = store
        .before("a\nb", 0, 100)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [31]);
    let state = rt.block_on(store.load("a\nb".into())).unwrap();
    assert_eq!(state.last_seq, 31);
}
