//! Interrupted transfers: the receiver keeps what arrived and asks again from there when the
//! companion is back; the sender pauses and goes on from that offset, unless its file changed;
//! a transfer the sender no longer knows is cancelled and its leftovers go. The helpers are in
//! `files_tests.rs`.

use p2pchat_secure::{FileControl, TransferId};

use super::files_tests::*;
use super::tests::*;
use super::*;
use crate::disk::FILE_CHANGED;
use crate::events::FoundPart;

fn left() -> Event {
    Event::Frame(Frame::Left {
        reason: LeftReason::ConnectionLost,
        nick: "Nick2".into(),
    })
}

/// Nick2 is back: `Paired` and `Conversation` again.
fn back(app: &mut App, read_through: u64) -> Vec<Effect> {
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app.handle(conversation("Nick2", read_through))
}

fn found(have: u64) -> FoundPart {
    FoundPart {
        transfer: T,
        name: "report.pdf".into(),
        size: SIZE,
        have,
    }
}

#[test]
fn the_receiver_keeps_what_arrived_and_asks_again_from_there() {
    let mut app = receiving();
    app.handle(chunk(0, &[1; 100]));
    let effects = app.handle(left());
    assert!(effects.contains(&Effect::ClosePart { transfer: T }));
    assert!(!effects.contains(&Effect::DiscardPart { transfer: T }));
    assert!(sent_controls(&effects).is_empty(), "no Cancel");
    assert!(texts(&effects).contains(
        &"⏸ Receiving report.pdf paused at 0% (100 bytes of 150.0 kB): Nick2 is away; it resumes when they are back".into()
    ));
    let effects = back(&mut app, 1);
    assert!(effects.contains(&Effect::FindParts {
        dir: "/dl".into(),
        companion: "nick2".into(),
        key: key_of("Nick2"),
    }));
    let effects = app.handle(Event::PartsFound(vec![found(100)]));
    assert_eq!(
        texts(&effects),
        ["📎 Resuming report.pdf from 0% (100 bytes of 150.0 kB)"]
    );
    assert!(effects.contains(&Effect::ResumePart {
        transfer: T,
        dir: "/dl".into(),
        name: "report.pdf".into(),
        from: 100,
    }));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Accept {
            transfer: T,
            from: 100
        }]
    );
    // Found again (another `Conversation`), or offered again: nothing starts twice.
    assert!(app.handle(Event::PartsFound(vec![found(100)])).is_empty());
    let offer = FileControl::Offer {
        transfer: T,
        name: "report.pdf".into(),
        size: SIZE,
    };
    assert!(app.handle(control(2, offer)).is_empty());
    // Pieces of the interrupted stream, still on their way before the sender acts on the new
    // accept, are dropped, not taken for an out-of-order attack.
    assert!(app.handle(chunk(5000, &[3; 100])).is_empty());
    // And bytes already here, sent again, are dropped too.
    assert!(app.handle(chunk(0, &[1; 100])).is_empty());
    app.handle(chunk(100, &[2; SIZE as usize - 100]));
    let sent = sent_sha();
    assert!(app.handle(control(3, sent)).contains(&finish()));
}

#[test]
fn a_lost_connection_or_leaving_keeps_the_part_and_a_whole_one_asks_for_the_sha256() {
    let mut app = receiving();
    app.handle(chunk(0, &[1; 100]));
    let effects = app.handle(Event::ConnectionLost("reset".into()));
    assert!(effects.contains(&Effect::ClosePart { transfer: T }));
    assert!(!effects.contains(&Effect::DiscardPart { transfer: T }));

    let mut app = receiving();
    let effects = app.handle(Event::Line("/exit".into()));
    assert!(effects.contains(&Effect::ClosePart { transfer: T }));

    // A whole one is asked for from its end: the sender answers with the SHA-256.
    let mut app = with_files("/dl", true, None);
    let effects = app.handle(Event::PartsFound(vec![found(SIZE)]));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Accept {
            transfer: T,
            from: SIZE
        }]
    );
    let sent = sent_sha();
    assert!(app.handle(control(1, sent)).contains(&finish()));

    // A whole file still waiting for its SHA-256 is kept when the connection goes.
    let mut app = receiving();
    app.handle(chunk(0, &[1; SIZE as usize]));
    let effects = app.handle(Event::ConnectionLost("reset".into()));
    assert!(effects.contains(&Effect::ClosePart { transfer: T }));
}

#[test]
fn a_transfer_the_sender_no_longer_knows_is_cancelled_and_its_leftovers_go() {
    let mut app = with_files("/dl", true, None);
    app.handle(Event::PartsFound(vec![found(100)]));
    let reason = "this file is no longer offered; ask for it again";
    let effects = app.handle(control(
        1,
        FileControl::Cancel {
            transfer: T,
            reason: reason.into(),
        },
    ));
    assert!(effects.contains(&Effect::DiscardPart { transfer: T }));
    assert_eq!(
        texts(&effects),
        [format!(
            "❌ Nick2 stopped the transfer of report.pdf: {reason}"
        )]
    );
    // The sender's side of it: an accept for a transfer it does not know.
    let mut sender = with_files("/dl", false, None);
    let effects = sender.handle(control(
        1,
        FileControl::Accept {
            transfer: T,
            from: 5,
        },
    ));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Cancel {
            transfer: T,
            reason: reason.into(),
        }]
    );
}

/// Nick1 sends report.pdf; 100 bytes went before Nick2 was gone.
fn paused_sender(app: &mut App) -> TransferId {
    let transfer = offering(app);
    app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    app.handle(Event::ChunkRead {
        transfer,
        offset: 0,
        data: vec![1; 100],
    });
    let effects = app.handle(left());
    assert!(effects.contains(&Effect::PauseReading { transfer }));
    assert!(texts(&effects).contains(
        &"⏸ Sending report.pdf paused at 0% (100 bytes of 2.1 MB): Nick2 is away; it resumes when they accept it again".into()
    ));
    back(app, 1);
    transfer
}

/// `paused_sender`, then Nick2 accepts from 100.
fn resumed_sender(app: &mut App) -> TransferId {
    let transfer = paused_sender(app);
    app.handle(control(
        2,
        FileControl::Accept {
            transfer,
            from: 100,
        },
    ));
    transfer
}

#[test]
fn the_sender_pauses_and_goes_on_from_the_offset_asked_for() {
    let mut app = with_files("/dl", false, None);
    let transfer = paused_sender(&mut app);
    let effects = app.handle(control(
        2,
        FileControl::Accept {
            transfer,
            from: 100,
        },
    ));
    assert_eq!(
        texts(&effects),
        ["📎 Resuming report.pdf for Nick2 from 0% (100 bytes of 2.1 MB)"]
    );
    assert!(effects.contains(&reading_report(transfer, 100)));
    let next = app.handle(Event::ChunkRead {
        transfer,
        offset: 100,
        data: vec![2; 10],
    });
    assert_eq!(sends(&next).len(), 1, "the chunk at 100 goes");
    // A refusal answering chunks sent before Nick2 left, arriving after the resume, is stale:
    // the transfer goes on.
    let refused = |app: &mut App| app.handle(not_delivered());
    assert!(refused(&mut app).is_empty());
    let after = app.handle(Event::ChunkRead {
        transfer,
        offset: 110,
        data: vec![2; 10],
    });
    assert_eq!(sends(&after).len(), 1, "the chunk at 110 goes");
}

#[test]
fn refusals_after_the_companion_left_cancel_nothing_and_send_nothing() {
    let mut app = with_files("/dl", false, None);
    let transfer = resumed_sender(&mut app);
    // They left: the transfer paused; refusals of chunks still on their way change nothing.
    app.handle(Event::Frame(Frame::Left {
        reason: LeftReason::ConnectionLost,
        nick: "Nick2".into(),
    }));
    let refused = app.handle(not_delivered());
    assert!(sent_controls(&refused).is_empty(), "no Cancel");
    assert!(
        app.handle(Event::ChunkRead {
            transfer,
            offset: 100,
            data: vec![2; 10],
        })
        .is_empty(),
        "paused: nothing more goes"
    );
}

#[test]
fn a_file_that_changed_meanwhile_is_cancelled() {
    let mut app = with_files("/dl", false, None);
    let transfer = resumed_sender(&mut app);
    let effects = app.handle(Event::ReadFailed {
        transfer,
        why: FILE_CHANGED.into(),
    });
    assert_eq!(
        texts(&effects),
        ["❌ Sending report.pdf stopped: the file changed since it was offered, so it cannot be resumed"]
    );
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Cancel {
            transfer,
            reason: "the file changed on the sender's side since it was offered; ask for it again"
                .into(),
        }]
    );
}

#[test]
fn send_option_waits_through_a_pause() {
    let (mut app, transfer) = sending_report();
    looked(&mut app, transfer, "report.pdf", 1000);
    app.handle(ack(1, 1));
    app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    let effects = app.handle(left());
    assert!(!effects
        .iter()
        .any(|effect| matches!(effect, Effect::Close { .. })));
    back(&mut app, 1);
    let effects = app.handle(control(
        2,
        FileControl::Accept {
            transfer,
            from: 600,
        },
    ));
    assert!(effects
        .iter()
        .any(|effect| matches!(effect, Effect::ReadFile { from: 600, .. })));
    let effects = app.handle(control(3, FileControl::Received { transfer }));
    assert!(effects.contains(&Effect::Close { code: 0 }));
}

fn saved(transfer: TransferId) -> crate::events::SavedOffer {
    crate::events::SavedOffer {
        transfer,
        companion: "nick2".into(),
        key: key_of("Nick2"),
        name: "report.pdf".into(),
        path: "/tmp/report.pdf".into(),
        stamp: STAMP,
    }
}

#[test]
fn offers_recorded_before_a_restart_go_on_when_accepted_and_go_when_declined() {
    let mut app = with_files("/dl", false, None);
    let effects = back(&mut app, 1);
    assert!(effects.contains(&Effect::FindOffers {
        companion: "nick2".into(),
        key: key_of("Nick2"),
    }));
    // Offered again: if they restarted too, an offer they never answered was lost.
    let effects = app.handle(Event::OffersFound(vec![saved([1; 16]), saved([2; 16])]));
    assert_eq!(
        sent_controls(&effects),
        [report_offer([1; 16]), report_offer([2; 16])]
    );
    // Their receiver asks again from the bytes it has: the old offer goes on from there.
    let effects = app.handle(control(
        2,
        FileControl::Accept {
            transfer: [1; 16],
            from: 100,
        },
    ));
    assert!(effects.contains(&reading_report([1; 16], 100)));
    assert_eq!(
        texts(&effects),
        ["📎 Resuming report.pdf for Nick2 from 0% (100 bytes of 2.1 MB)"]
    );
    // One they decline (or cancel) is forgotten, record and all.
    let effects = app.handle(control(3, FileControl::Decline { transfer: [2; 16] }));
    assert_eq!(effects, [Effect::StopReading { transfer: [2; 16] }]);
    // One nobody knows is cancelled, as before.
    let effects = app.handle(control(
        4,
        FileControl::Accept {
            transfer: [3; 16],
            from: 0,
        },
    ));
    assert!(matches!(
        sent_controls(&effects)[..],
        [FileControl::Cancel { .. }]
    ));
}

#[test]
fn an_offer_not_answered_yet_goes_again_when_the_companion_is_back() {
    let mut app = with_files("/dl", false, None);
    let transfer = offering(&mut app);
    app.handle(left());
    let effects = back(&mut app, 1);
    assert_eq!(sent_controls(&effects), [report_offer(transfer)]);
}

#[test]
fn a_resumed_stream_that_lost_its_start_is_asked_for_again() {
    let mut app = with_files("/dl", true, None);
    app.handle(Event::PartsFound(vec![found(100)]));
    let strays = crate::transfers::RESYNC_AFTER;
    for _ in 1..strays {
        assert!(
            app.handle(chunk(5000, &[3; 100])).is_empty(),
            "left of the old stream"
        );
    }
    let effects = app.handle(chunk(5000, &[3; 100]));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Accept {
            transfer: T,
            from: 100
        }]
    );
    // The stream from 100 comes: it is taken.
    let effects = app.handle(chunk(100, &[2; 100]));
    assert!(effects.contains(&Effect::WriteChunk {
        transfer: T,
        data: vec![2; 100],
    }));
}
