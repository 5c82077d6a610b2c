use super::*;

#[test]
fn an_ack_covering_several_writes_gives_each_message_its_own_wait() {
    let mut ledger = AckLedger::default();
    ledger.number_from(1);
    let mut waits = Latencies::default();
    ledger.written(3, 1, 100);
    ledger.written(2, 1, 250);
    // One ack for 4 messages arriving at 1,000: three waited 900, one 750.
    ledger.ack(4, Some(1), 1_000, &mut waits).unwrap();
    assert_eq!((ledger.outstanding(), ledger.acked()), (1, 4));
    ledger.ack(1, Some(5), 1_200, &mut waits).unwrap();
    assert_eq!((ledger.outstanding(), ledger.acked()), (0, 5));
    waits.sort();
    assert_eq!(waits.count(), 5);
    // Sorted: 750, 900, 900, 900, 950.
    assert_eq!(waits.percentile(0.2), 750);
    assert_eq!(waits.percentile(0.21), 900);
    assert_eq!(waits.percentile(0.8), 900);
    assert_eq!(waits.percentile(0.81), 950);
    assert_eq!(waits.percentile(1.0), 950);
    assert_eq!(waits.mean(), 880.0);
}

#[test]
fn acks_must_be_consecutive_and_cover_what_was_written() {
    let mut ledger = AckLedger::default();
    ledger.number_from(11);
    let mut waits = Latencies::default();
    ledger.written(5, 1, 0);
    assert_eq!(
        ledger.ack(2, Some(12), 9, &mut waits),
        Err(AckError::Gap { got: 12, want: 11 })
    );
    ledger.ack(2, Some(11), 9, &mut waits).unwrap();
    // Acknowledged twice.
    assert_eq!(
        ledger.ack(1, Some(12), 9, &mut waits),
        Err(AckError::Gap { got: 12, want: 13 })
    );
    assert_eq!(
        ledger.ack(4, Some(13), 9, &mut waits),
        Err(AckError::TooMany {
            count: 4,
            outstanding: 3
        })
    );
    assert_eq!(ledger.ack(0, Some(13), 9, &mut waits), Err(AckError::Empty));
    assert_eq!(waits.count(), 2, "refused acks count nothing");
}

#[test]
fn unnumbered_acks_count_one_reply_at_a_time() {
    // Redis: one reply per XADD, no sequence numbers.
    let mut ledger = AckLedger::default();
    let mut waits = Latencies::default();
    ledger.written(2, 1, 10);
    ledger.ack(1, None, 15, &mut waits).unwrap();
    ledger.ack(1, None, 40, &mut waits).unwrap();
    assert!(ledger.ack(1, None, 50, &mut waits).is_err());
    waits.sort();
    assert_eq!((waits.percentile(0.5), waits.percentile(0.99)), (5, 30));
}

#[test]
fn acks_count_frames_and_report_messages() {
    // End-to-end mode: 10 messages at 4 per envelope are 3 frames (4, 4, 2), then 3 more in one.
    let mut ledger = AckLedger::default();
    ledger.number_from(1);
    let mut waits = Latencies::default();
    assert_eq!(ledger.written(10, 4, 100), 3);
    assert_eq!(ledger.written(3, 4, 200), 1);
    assert_eq!(ledger.outstanding(), 13);
    // Two frames acknowledged: 8 messages, all written at 100.
    assert_eq!(ledger.ack(2, Some(1), 1_000, &mut waits), Ok(8));
    assert_eq!((ledger.outstanding(), ledger.acked()), (5, 8));
    // The partial frame and the next write's frame: 2 + 3 messages.
    assert_eq!(ledger.ack(2, Some(3), 1_100, &mut waits), Ok(5));
    assert_eq!((ledger.outstanding(), ledger.acked()), (0, 13));
    assert_eq!(ledger.acked_frames(), 4);
    assert_eq!(
        ledger.ack(1, Some(5), 1_200, &mut waits),
        Err(AckError::TooMany {
            count: 1,
            outstanding: 0
        })
    );
    waits.sort();
    assert_eq!(waits.count(), 13);
    // 8 + 3 waited 900 (ranks 1–11), the partial frame's 2 waited 1,000 (ranks 12–13).
    assert_eq!(waits.percentile(0.8), 900);
    assert_eq!(waits.percentile(0.9), 1_000);
}

#[test]
fn merged_latencies_and_empty_percentiles() {
    let empty = Latencies::default();
    assert_eq!((empty.percentile(0.5), empty.mean()), (0, 0.0));
    let mut a = Latencies::default();
    a.add(30, 1);
    a.add(10, 0); // counts nothing
    let mut b = Latencies::default();
    b.add(20, 2);
    a.merge(b);
    a.sort();
    assert_eq!(a.count(), 3);
    assert_eq!((a.percentile(0.0), a.percentile(0.67)), (20, 30));
}

#[test]
fn pacer_spreads_one_sender_evenly() {
    let pacer = Pacer::new(1_000, 1, 0); // one message per ms
    assert!(pacer.is_limited());
    assert_eq!(pacer.due(0), 1);
    assert_eq!(pacer.due(999_999), 1);
    assert_eq!(pacer.due(1_000_000), 2);
    assert_eq!(pacer.due_at(0), 0);
    assert_eq!(pacer.due_at(5), 5_000_000);
}

#[test]
fn pacer_senders_take_turns() {
    // 4 senders share 1,000 msgs/s: sender 2 writes at 2 ms, 6 ms, 10 ms, …
    let pacer = Pacer::new(1_000, 4, 2);
    assert_eq!(pacer.due_at(0), 2_000_000);
    assert_eq!(pacer.due_at(1), 6_000_000);
    assert_eq!(pacer.due(1_999_999), 0);
    assert_eq!(pacer.due(2_000_000), 1);
    assert_eq!(pacer.due(6_000_000), 2);
    // Over all senders, exactly floor(t × rate) + 1 messages are due at any t.
    for t in [0, 1, 999_999, 1_000_000, 7_654_321, 1_000_000_000] {
        let all: u64 = (0..4).map(|k| Pacer::new(1_000, 4, k).due(t)).sum();
        assert_eq!(all, t / 1_000_000 + 1, "at {t} ns");
    }
}

#[test]
fn pacer_due_at_and_due_agree_at_odd_rates() {
    // A message is due at the instant `due_at` names, not a nanosecond later.
    for (rate, senders) in [(3, 1), (7_777, 13), (123_457, 1000)] {
        for sender in [0, senders / 2, senders - 1] {
            let pacer = Pacer::new(rate, senders, sender);
            for index in [0, 1, 2, 99, 12_345] {
                let at = pacer.due_at(index);
                assert!(
                    pacer.due(at) > index,
                    "rate {rate} sender {sender} index {index}"
                );
                assert!(at == 0 || pacer.due(at - 1) <= index);
            }
        }
    }
}

#[test]
fn an_unlimited_pacer_never_waits() {
    let pacer = Pacer::new(0, 10, 3);
    assert!(!pacer.is_limited());
    assert_eq!(pacer.due(0), u64::MAX);
    assert_eq!(pacer.due_at(1_000_000), 0);
}
