//! The hand-over to the writer: budget and room, cursors, exactly-once answers.

use std::sync::mpsc as std_mpsc;
use std::task::{Context, Poll, Waker};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_budget_refuses_and_room_wakes_when_it_frees() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), Options { budget: 1 }).unwrap();
    assert_eq!(
        poll_once(store.room()),
        Poll::Ready(()),
        "nothing queued: room at once"
    );
    // Hold the writer inside the first run's callback, so what is queued next stays queued.
    let (entered, in_done) = std_mpsc::channel();
    let (go, wait_go) = std_mpsc::channel::<()>();
    let done: Done = Box::new(move |_| {
        let _ = entered.send(());
        let _ = wait_go.recv_timeout(PATIENCE);
    });
    assert!(store
        .try_append(run("a\nb", "alice", 1, 1, 0), done)
        .is_ok());
    in_done.recv_timeout(PATIENCE).unwrap();
    let second = queue(&store, run("a\nb", "alice", 2, 1, 0)); // nothing queued: always admitted
    let refused = store.try_append(run("a\nb", "alice", 3, 1, 0), Box::new(|_| {}));
    let Err((third, third_done)) = refused else {
        panic!("admitted over the budget");
    };
    let mut room = Box::pin(store.room());
    assert_eq!(poll_once(room.as_mut()), Poll::Pending);
    go.send(()).unwrap();
    tokio::time::timeout(PATIENCE, room)
        .await
        .expect("room never came");
    assert!(store.try_append(third, third_done).is_ok());
    tokio::time::timeout(PATIENCE, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Many writers with a tiny budget all get through.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8u64)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..50 {
                    append(&store, run(&format!("c{c}"), "bob", n + 1, 1, 0))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    }
}

#[test]
fn every_accepted_run_is_answered_exactly_once() {
    // Dropped without a writer (as when the writer panics mid-batch): told `Closed`.
    let shared = Shared::new(DEFAULT_BUDGET);
    let (tell, told) = std_mpsc::channel();
    let done: Done =
        Box::new(move |outcome| tell.send(outcome.map_err(|e| e.to_string())).unwrap());
    assert!(shared
        .try_append(run("a\nb", "alice", 1, 1, 0), done)
        .is_ok());
    drop(shared);
    assert_eq!(told.try_recv(), Ok(Err(StoreError::Closed.to_string())));
    assert!(told.try_recv().is_err(), "called twice");
    // A callback that panics does not stop the writer.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let panics: Done = Box::new(|_| panic!("a callback bug (expected by this test)"));
    assert!(store
        .try_append(run("a\nb", "alice", 1, 1, 0), panics)
        .is_ok());
    let next = queue(&store, run("a\nb", "alice", 2, 1, 0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tokio::time::timeout(PATIENCE, next)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    });
}

fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = Box::pin(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn read_cursors_are_coalesced_and_never_go_back() {
    let shared = Shared::new(DEFAULT_BUDGET);
    for seq in [5, 9, 3] {
        shared.set_read("a\nb".into(), "bob".into(), seq);
    }
    shared.set_read("a\nb".into(), "alice".into(), 1);
    let batch = shared.take(MAX_BATCH, MAX_COMMIT_BYTES).unwrap();
    assert_eq!(batch.cursors.len(), 2);
    assert_eq!(batch.cursors.get(&("a\nb".into(), "bob".into())), Some(&9));

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.set_read("a\nb".into(), "bob".into(), 9);
        rt.block_on(store.load("a\nb".into())).unwrap();
        store.set_read("a\nb".into(), "bob".into(), 4);
    }
    let store = Store::open(dir.path()).unwrap();
    let state = rt.block_on(store.load("a\nb".into())).unwrap();
    assert_eq!(state.members, [member("bob", 0, 9)]);
    // Dropping the store commits what is pending, cursors included.
    store.set_read("a\nb".into(), "alice".into(), 2);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let state = rt.block_on(store.load("a\nb".into())).unwrap();
    assert_eq!(state.members, [member("alice", 0, 2), member("bob", 0, 9)]);
}

#[test]
fn a_cursor_never_reaches_the_disk_before_the_messages_queued_before_it() {
    let shared = Shared::new(DEFAULT_BUDGET);
    // Two runs are queued, then a receipt for their messages.
    for first in [1, 3] {
        assert!(shared
            .try_append(run("a\nb", "alice", first, 2, 0), Box::new(|_| {}))
            .is_ok());
    }
    shared.set_read("a\nb".into(), "bob".into(), 4);
    // A commit that can only take the first run leaves the receipt for the next one.
    let batch = shared.take(1, MAX_COMMIT_BYTES).unwrap();
    assert_eq!(batch.appends.len(), 1);
    assert!(batch.cursors.is_empty());
    drop(batch);
    let batch = shared.take(1, MAX_COMMIT_BYTES).unwrap();
    assert_eq!(batch.appends.len(), 1);
    assert_eq!(batch.cursors.get(&("a\nb".into(), "bob".into())), Some(&4));
}
