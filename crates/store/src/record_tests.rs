use bytes::BytesMut;
use p2pchat_proto::{ChatMessage, Frame};

use super::*;

fn message(seq: u64, text: &str) -> Vec<u8> {
    p2pchat_proto::encode_to_vec(&Frame::Message(ChatMessage {
        seq,
        sent_ms: 1_700_000_000_000 + seq as i64,
        id: [seq as u8; 16],
        body: text.as_bytes().to_vec(),
    }))
}

fn run_of(seqs: impl IntoIterator<Item = u64>) -> Vec<u8> {
    seqs.into_iter()
        .flat_map(|seq| message(seq, "hi"))
        .collect()
}

#[test]
fn a_run_is_checked_and_described() {
    let run = run_of(41..=43);
    let facts = check_run(&run).unwrap();
    assert_eq!(
        facts,
        RunFacts {
            first_seq: 41,
            last_seq: 43,
            count: 3,
            last_ms: 1_700_000_000_043,
            last_id: [43; 16],
        }
    );
    let found: Vec<u64> = frames(&run).map(|f| f.unwrap().seq).collect();
    assert_eq!(found, [41, 42, 43]);
}

#[test]
fn bad_runs_are_refused() {
    assert!(check_run(&[]).is_err(), "empty");
    assert!(check_run(&run_of([1, 3])).is_err(), "a gap");
    assert!(check_run(&run_of([2, 1])).is_err(), "backwards");
    assert!(check_run(&run_of([0])).is_err(), "unstamped");
    assert!(
        check_run(&run_of([u64::MAX])).is_err(),
        "beyond SQLite integers"
    );
    let whole = run_of([1, 2]);
    let first_len = message(1, "hi").len();
    for cut in (1..whole.len()).filter(|&cut| cut != first_len) {
        assert!(check_run(&whole[..cut]).is_err(), "cut at {cut}");
    }
    let ping = p2pchat_proto::encode_to_vec(&Frame::Ping(7));
    assert!(check_run(&ping).is_err(), "not a Message");
}

#[test]
fn records_round_trip() {
    let frames = run_of(5..=6);
    let facts = check_run(&frames).unwrap();
    let mut row = BytesMut::new();
    put_run(&mut row, 3, "alice", &facts, &frames);
    put_cursor(&mut row, 3, "Зоя", 6);
    put_run(&mut row, 9, "bob", &facts, &frames);
    let records: Vec<Record<'_>> = records(&row).map(Result::unwrap).collect();
    assert_eq!(
        records,
        [
            Record::Run {
                conversation: 3,
                first_seq: 5,
                count: 2,
                sender: "alice",
                frames: &frames,
            },
            Record::Cursor {
                conversation: 3,
                member: "Зоя",
                seq: 6,
            },
            Record::Run {
                conversation: 9,
                first_seq: 5,
                count: 2,
                sender: "bob",
                frames: &frames,
            },
        ]
    );
}

#[test]
fn damage_is_reported_not_panicked_on() {
    let frames = run_of([1]);
    let facts = check_run(&frames).unwrap();
    let mut row = BytesMut::new();
    put_run(&mut row, 1, "alice", &facts, &frames);
    let run_len = row.len();
    put_cursor(&mut row, 1, "bob", 1);
    for cut in (1..row.len()).filter(|&cut| cut != run_len) {
        assert!(
            records(&row[..cut]).any(|r| r.is_err()),
            "cut at {cut} went unnoticed"
        );
    }
    let mut bad = row.to_vec();
    bad[RUN_HEAD] = 0xFF; // first sender byte
    assert!(records(&bad).any(|r| r.is_err()));
    bad[0] = 9; // unknown kind
    assert_eq!(records(&bad).count(), 1, "stops at the first damage");
}
