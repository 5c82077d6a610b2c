use std::sync::Arc;

use super::*;

fn append(conversation: &str, n: u8, text: &str) -> Append {
    Append {
        conversation: conversation.into(),
        id: [n; 16],
        sender: "Nick1".into(),
        sent_ms: 1_700_000_000_000 + i64::from(n),
        body: Bytes::from(text.to_owned()),
    }
}

/// A message with a numeric id, in conversation `conversation`, received at `sent_ms`.
fn numbered(conversation: &str, n: u32, sent_ms: i64, body: &str) -> Append {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    Append {
        conversation: conversation.into(),
        id,
        sender: "s".into(),
        sent_ms,
        body: Bytes::from(body.to_owned()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sequence_numbers_count_per_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        assert_eq!(
            store.append(append("a|b", 1, "one")).await.unwrap(),
            Appended::Stored(1)
        );
        assert_eq!(
            store.append(append("a|b", 2, "two")).await.unwrap(),
            Appended::Stored(2)
        );
        assert_eq!(
            store.append(append("c|d", 3, "x")).await.unwrap(),
            Appended::Stored(1)
        );
    });
    let history = store.history("a|b", None, 10).unwrap();
    let texts: Vec<_> = history.iter().map(|m| m.body.clone()).collect();
    assert_eq!(texts, [Bytes::from("one"), Bytes::from("two")]);
    assert_eq!(history[1].seq, 2);
    assert_eq!(history[1].sent_ms, 1_700_000_000_002);
}

#[test]
fn a_re_send_is_recognised_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        store.append(append("a|b", 1, "one")).await.unwrap();
        store.append(append("a|b", 2, "two")).await.unwrap();
        assert_eq!(
            store.append(append("a|b", 1, "one")).await.unwrap(),
            Appended::Duplicate(1)
        );
    });
    assert_eq!(store.history("a|b", None, 10).unwrap().len(), 2);
}

#[test]
fn everything_survives_a_reopen_including_the_dedup_window() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        runtime().block_on(async {
            for n in 1..=5 {
                store.append(append("a|b", n, "m")).await.unwrap();
            }
        });
    }
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        assert_eq!(
            store.append(append("a|b", 5, "m")).await.unwrap(),
            Appended::Duplicate(5),
            "a re-send after a restart is still recognised"
        );
        assert_eq!(
            store.append(append("a|b", 6, "m")).await.unwrap(),
            Appended::Stored(6)
        );
    });
    let seqs: Vec<u64> = store
        .history("a|b", None, 100)
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
}

#[test]
fn concurrent_appends_are_committed_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let outcomes = runtime().block_on(async {
        let tasks: Vec<_> = (0..2000u32)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let append = numbered(&format!("c{}", i % 4), i, 0, "hello");
                    store.append(append).await.unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    assert!(outcomes.iter().all(|o| matches!(o, Appended::Stored(_))));
    for c in 0..4 {
        let seqs: Vec<u64> = store
            .history(&format!("c{c}"), None, 1000)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, (1..=500).collect::<Vec<_>>(), "conversation c{c}");
    }
    let rows: i64 = Connection::open(store.path())
        .unwrap()
        .query_row("SELECT count(*) FROM log", [], |row| row.get(0))
        .unwrap();
    assert!(
        rows < 2000,
        "{rows} rows for 2000 messages: no grouping happened"
    );
}

#[test]
fn history_pages_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        for n in 1..=30 {
            store
                .append(append("a|b", n, &format!("m{n}")))
                .await
                .unwrap();
        }
    });
    let last = store.history("a|b", None, 20).unwrap();
    assert_eq!(last.first().map(|m| m.seq), Some(11));
    assert_eq!(last.last().map(|m| m.seq), Some(30));
    let earlier = store.history("a|b", Some(11), 20).unwrap();
    let seqs: Vec<u64> = earlier.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(store.history("nobody|here", None, 20).unwrap().is_empty());
}

#[test]
fn old_messages_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    runtime().block_on(async {
        store.append(append("a|b", 1, "old")).await.unwrap();
        assert_eq!(store.purge_older_than(1_700_000_000_005).await.unwrap(), 1);
        store.append(append("a|b", 9, "new")).await.unwrap();
        assert_eq!(store.purge_older_than(1_700_000_000_005).await.unwrap(), 0);
    });
    let left = store.history("a|b", None, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, 2, "numbering continues after a purge");
}

#[test]
fn a_damaged_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.db"), vec![0x42; 8192]).unwrap();
    match Store::open(dir.path()) {
        Err(StoreError::Open { path, reason }) => {
            assert!(path.ends_with("history.db"));
            assert!(reason.contains("not a database"), "{reason}");
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a damaged file"),
    }
}

#[test]
fn an_unusable_data_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let err = Store::open(&file.join("history")).err().expect("an error");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[cfg(unix)]
#[test]
fn the_data_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
}

#[test]
fn history_spans_indexed_windows_and_the_tail_across_restarts() {
    // Tests run with an index window of 8 log rows, so 90 commits make many windows.
    let dir = tempfile::tempdir().unwrap();
    let send = |store: &Store, rt: &tokio::runtime::Runtime, from: u32, to: u32| {
        rt.block_on(async {
            for i in from..to {
                let append = numbered(&format!("c{}", i % 3), i, i64::from(i), &format!("m{i}"));
                store.append(append).await.unwrap();
            }
        });
    };
    let rt = runtime();
    {
        let store = Store::open(dir.path()).unwrap();
        send(&store, &rt, 0, 90);
    }
    let store = Store::open(dir.path()).unwrap();
    send(&store, &rt, 90, 99);
    for c in 0..3u32 {
        let all = store.history(&format!("c{c}"), None, 1000).unwrap();
        let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=33).collect::<Vec<_>>(), "c{c}");
        let bodies: Vec<String> = all
            .iter()
            .map(|m| String::from_utf8(m.body.to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..99)
            .filter(|i| i % 3 == c)
            .map(|i| format!("m{i}"))
            .collect();
        assert_eq!(bodies, expected);
        let page = store.history(&format!("c{c}"), Some(20), 5).unwrap();
        let seqs: Vec<u64> = page.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [15, 16, 17, 18, 19]);
    }
    // Purge the first half: numbering still goes on from 34.
    rt.block_on(async {
        assert!(store.purge_older_than(50).await.unwrap() > 0);
        let next = store
            .append(numbered("c0", 1000, 1000, "after purge"))
            .await
            .unwrap();
        assert_eq!(next, Appended::Stored(34));
    });
    let left = store.history("c0", None, 1000).unwrap();
    assert!(left.iter().all(|m| m.sent_ms >= 50), "{left:?}");
    assert!(left.len() < 34);
    let seqs: Vec<u64> = left.iter().map(|m| m.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "still in order, no duplicates");
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    rt.block_on(async {
        let next = reopened
            .append(numbered("c0", 1001, 1001, "after reopen"))
            .await
            .unwrap();
        assert_eq!(next, Appended::Stored(35));
    });
}

#[test]
fn a_run_is_stored_in_order_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let run = |ids: &[u8]| Run {
        conversation: "a|b".into(),
        sender: "Nick1".into(),
        sent_ms: 5,
        messages: ids
            .iter()
            .map(|&n| ([n; 16], Bytes::from(format!("m{n}"))))
            .collect(),
    };
    runtime().block_on(async {
        let first = store.append_run(run(&[1, 2, 3])).await.unwrap();
        assert_eq!(
            first,
            [
                Appended::Stored(1),
                Appended::Stored(2),
                Appended::Stored(3)
            ]
        );
        // A re-sent run that overlaps: the known ids are recognised, the new one is stored.
        let again = store.append_run(run(&[3, 4])).await.unwrap();
        assert_eq!(again, [Appended::Duplicate(3), Appended::Stored(4)]);
    });
    let bodies: Vec<Bytes> = store
        .history("a|b", None, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["m1", "m2", "m3", "m4"].map(Bytes::from));
}
