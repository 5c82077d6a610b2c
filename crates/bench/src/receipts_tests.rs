use super::*;

use crate::ledger::Latencies;

fn body() -> Body {
    Body::new((0..40).map(|b| b as u8 ^ 0x5a).collect())
}

#[test]
fn bodies_carry_index_and_send_time() {
    let body = body();
    let mut out = Vec::new();
    body.write(&mut out, 7, 123_456_789);
    assert_eq!(out.len(), 40);
    assert_eq!(body.check(&out, 7), Ok(123_456_789));
    assert_eq!(
        body.check(&out, 6),
        Err(BodyError::OutOfOrder { got: 7, want: 6 })
    );
    assert_eq!(
        body.check(&out[..39], 7),
        Err(BodyError::WrongSize { got: 39, want: 40 })
    );
    out[30] ^= 1;
    assert_eq!(body.check(&out, 7), Err(BodyError::Garbled));
    // Too short a filler still leaves room for the stamp.
    assert_eq!(Body::new(vec![1, 2]).size(), STAMP_LEN);
}

#[test]
fn the_last_member_to_receive_a_message_is_told_so() {
    let receipts = Receipts::new(3, 4);
    // Three members receive messages 0 and 1 in interleaved orders.
    assert!(!receipts.received(0));
    assert!(!receipts.received(0));
    assert!(!receipts.received(1));
    assert_eq!(receipts.done(), 0);
    assert!(receipts.received(0));
    assert_eq!(receipts.done(), 1);
    assert!(!receipts.received(1));
    assert!(receipts.received(1));
    assert_eq!(receipts.done(), 2);
}

#[test]
fn the_window_bounds_what_the_sender_may_send_and_slots_are_reused() {
    let receipts = Receipts::new(2, 4);
    assert_eq!(receipts.room(0), 4);
    assert_eq!(receipts.room(4), 0);
    // Message 0 done by both: one more may go, and it reuses message 0's slot.
    assert!(!receipts.received(0));
    assert!(receipts.received(0));
    assert_eq!(receipts.room(4), 1);
    assert!(!receipts.received(4));
    assert!(!receipts.received(1));
    assert!(receipts.received(1));
    assert!(receipts.received(4));
    assert_eq!(receipts.done(), 3);
}

#[test]
fn one_member_completes_every_message_alone() {
    let receipts = Receipts::new(1, 2);
    for index in 0..10 {
        assert!(receipts.received(index));
    }
    assert_eq!(receipts.done(), 10);
}

#[tokio::test]
async fn the_sender_wakes_when_enough_room_is_free() {
    let receipts = std::sync::Arc::new(Receipts::new(2, 8));
    let waiter = receipts.clone();
    // The sender has sent 8 and wants room for 3: messages 0..3 must be done.
    let wait = tokio::spawn(async move { waiter.wait_for_room(8, 3).await });
    tokio::task::yield_now().await;
    for index in 0..3 {
        receipts.received(index);
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "woke before message {index} was done");
        receipts.received(index);
    }
    tokio::time::timeout(std::time::Duration::from_secs(1), wait)
        .await
        .expect("the sender was woken")
        .unwrap();
    assert_eq!(receipts.room(8), 3);
}

#[test]
fn last_receipt_waits_give_percentiles_over_messages() {
    // Message i sent at i ms by the sender; three members receive it at different times; the
    // wait counted is the last member's.
    let receipts = Receipts::new(3, 16);
    let body = body();
    let mut waits = Latencies::default();
    let arrivals: [[u64; 3]; 4] = [[1, 3, 2], [2, 2, 9], [3, 4, 5], [4, 5, 6]];
    for (index, times) in arrivals.iter().enumerate() {
        let index = index as u64;
        let mut out = Vec::new();
        body.write(&mut out, index, index * 1_000_000);
        let mut order: Vec<u64> = times.to_vec();
        order.sort_unstable();
        for at_ms in order {
            let sent = body.check(&out, index).unwrap();
            if receipts.received(index) {
                waits.add(at_ms * 1_000_000 - sent, 1);
            }
        }
    }
    waits.sort();
    // Waits (ms): 3, 8, 3, 3.
    assert_eq!(waits.count(), 4);
    assert_eq!(waits.percentile(0.5), 3_000_000);
    assert_eq!(waits.percentile(0.99), 8_000_000);
}

#[test]
fn members_on_threads_complete_every_message_exactly_once_through_a_small_window() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    const MESSAGES: u64 = 2_000;
    let receipts = Arc::new(Receipts::new(4, 8));
    let sent = Arc::new(AtomicU64::new(0));
    let members: Vec<_> = (0..4)
        .map(|_| {
            let (receipts, sent) = (receipts.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                for index in 0..MESSAGES {
                    while sent.load(Ordering::Acquire) <= index {
                        std::thread::yield_now();
                    }
                    last += u64::from(receipts.received(index));
                }
                last
            })
        })
        .collect();
    let mut count = 0;
    while count < MESSAGES {
        let room = receipts.room(count).min(MESSAGES - count);
        assert!(
            count - receipts.done() <= 8,
            "more than the window in flight"
        );
        count += room;
        sent.store(count, Ordering::Release);
        std::thread::yield_now();
    }
    let lasts: u64 = members.into_iter().map(|m| m.join().unwrap()).sum();
    assert_eq!((lasts, receipts.done()), (MESSAGES, MESSAGES));
}
