//! Reading back: paging both ways across index windows, the tail, mixed rows and a reopen.

use super::*;

const KEY: &str = "alice\nbob";

/// What the conversation should hold: (seq, sender), in order.
type Expected = Vec<(u64, &'static str)>;

/// Two senders interleaved over many commits, runs of 1 to 4 messages, with another
/// conversation's runs sharing some of the rows.
fn fill(store: &Store, rt: &tokio::runtime::Runtime) -> Expected {
    let mut expected = Vec::new();
    let (mut next, mut noise) = (1, 1);
    rt.block_on(async {
        for round in 0..90u64 {
            let sender = if round % 3 == 1 { "bob" } else { "alice" };
            let count = round % 4 + 1;
            let told = queue(store, run(KEY, sender, next, count, round as i64));
            expected.extend((next..next + count).map(|seq| (seq, sender)));
            next += count;
            let other = queue(store, run("carol\ndave", "dave", noise, 2, round as i64));
            noise += 2;
            if round % 3 == 0 {
                told.await.unwrap().unwrap();
                other.await.unwrap().unwrap();
            }
        }
        store.load(KEY.into()).await.unwrap();
    });
    expected
}

fn check(found: &[StoredMessage], expected: &[(u64, &str)], what: &str) {
    let got: Vec<(u64, &str)> = found.iter().map(|m| (m.seq, &*m.sender)).collect();
    assert_eq!(got, expected, "{what}");
    for message in found {
        assert_eq!(message.body(), text_of(message.seq).as_bytes());
        assert_eq!(message.id, id_of(message.seq));
        let decoded = p2pchat_proto::decode(&message.frame, usize::MAX).unwrap();
        assert!(matches!(decoded, Some((Frame::Message(_), len)) if len == message.frame.len()));
    }
}

fn check_reads(store: &Store, expected: &Expected) {
    let last = expected.len() as u64;
    check(
        &store.before(KEY, 0, 10_000).unwrap(),
        expected,
        "all, backwards",
    );
    check(
        &store.after(KEY, 0, u64::MAX, 10_000, usize::MAX).unwrap(),
        expected,
        "all, forwards",
    );

    // Backwards in pages of 7, from the newest.
    let mut pages = Vec::new();
    let mut before = 0;
    loop {
        let page = store.before(KEY, before, 7).unwrap();
        let Some(first) = page.first() else { break };
        assert!(
            page.len() == 7 || first.seq == 1,
            "short page before {before}"
        );
        before = first.seq;
        pages.splice(0..0, page);
    }
    check(&pages, expected, "pages backwards");

    // Forwards in pages of 5, up to a bound.
    let mut pages = Vec::new();
    let mut after = 0;
    loop {
        let page = store.after(KEY, after, last - 3, 5, usize::MAX).unwrap();
        let Some(newest) = page.last() else { break };
        after = newest.seq;
        pages.extend(page);
    }
    check(&pages, &expected[..expected.len() - 3], "pages forwards");

    check(
        &store.before(KEY, 5, 100).unwrap(),
        &expected[..4],
        "before 5",
    );
    check(
        &store.before(KEY, 100, 3).unwrap(),
        &expected[96..99],
        "3 before 100",
    );
    check(
        &store.after(KEY, 10, 20, 100, usize::MAX).unwrap(),
        &expected[10..20],
        "10..=20",
    );
    let from_41 = store.after(KEY, 40, last, 3, usize::MAX).unwrap();
    let three_frames: usize = from_41.iter().map(|m| m.frame.len()).sum();
    let three = store.after(KEY, 40, last, 100, three_frames + 1).unwrap();
    check(&three, &expected[40..43], "three frames' worth");
    let one = store.after(KEY, 40, last, 100, 1).unwrap();
    check(&one, &expected[40..41], "at least one");
    assert!(store.before(KEY, 0, 0).unwrap().is_empty());
    assert!(store.after(KEY, 9, 9, 10, usize::MAX).unwrap().is_empty());
    assert!(store.before("nobody\nhere", 0, 10).unwrap().is_empty());
    assert!(store
        .after("nobody\nhere", 0, 10, 10, usize::MAX)
        .unwrap()
        .is_empty());
}

#[test]
fn paging_is_right_across_windows_the_tail_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let expected = fill(&store, &rt);
    assert_eq!(expected.len(), 223);
    let rows = log_rows(&store);
    assert!(rows >= 30, "{rows} rows: want several index windows");
    check_reads(&store, &expected);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    check_reads(&store, &expected);
    let noise = store.before("carol\ndave", 0, 1000).unwrap();
    assert_eq!(noise.len(), 180);
}
