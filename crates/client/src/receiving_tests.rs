//! Receiving files through the app: offers shown and accepted, chunks checked and written in
//! order, the SHA-256 check's outcome, empty files, and offers seen in history. The helpers are
//! in `files_tests.rs`.

use p2pchat_secure::FileControl;

use super::files_tests::*;
use super::tests::*;
use super::*;
use crate::events::{PartRecord, SaveError};

#[test]
fn an_offer_is_accepted_written_in_order_and_saved() {
    let mut app = with_files("/dl", false, None);
    let offer = FileControl::Offer {
        transfer: T,
        name: "../report.pdf".into(),
        size: SIZE,
    };
    let shown = app.handle(control(1, offer));
    assert_eq!(
        texts(&shown),
        ["📎 Nick2 offers report.pdf (150.0 kB). Type /accept to receive it in /dl, or /decline."]
    );
    let accepted = app.handle(Event::Line("/accept".into()));
    assert_eq!(
        texts(&accepted),
        ["📎 Receiving report.pdf (150.0 kB) from Nick2 into /dl…"]
    );
    assert!(accepted.contains(&Effect::CreatePart {
        transfer: T,
        dir: "/dl".into(),
        name: "report.pdf".into(),
        record: PartRecord {
            companion: "nick2".into(),
            key: key_of("Nick2"),
            size: SIZE,
        },
    }));
    assert_eq!(
        sent_controls(&accepted),
        [FileControl::Accept {
            transfer: T,
            from: 0
        }]
    );
    let first = app.handle(chunk(0, &[1; 100_000]));
    assert!(first.contains(&Effect::WriteChunk {
        transfer: T,
        data: vec![1; 100_000],
    }));
    let last = app.handle(chunk(100_000, &[2; 50_000]));
    // Every byte is here; the check waits for the sender's SHA-256.
    assert!(!last
        .iter()
        .any(|effect| matches!(effect, Effect::FinishFile { .. })));
    let sent = sent_sha();
    assert_eq!(app.handle(control(2, sent)), [finish()]);
    let saved = app.handle(Event::FileSaved {
        transfer: T,
        result: Ok("report (1).pdf".into()),
    });
    assert_eq!(
        texts(&saved),
        ["✅ Saved report (1).pdf (150.0 kB) in /dl (SHA-256 verified)"]
    );
    assert_eq!(
        sent_controls(&saved),
        [FileControl::Received { transfer: T }]
    );
}

#[test]
fn the_check_starts_when_both_the_bytes_and_the_sha256_are_here() {
    let sent = sent_sha();
    // All the bytes first: still cancellable while the SHA-256 is awaited.
    let mut app = receiving();
    app.handle(chunk(0, &[1; SIZE as usize]));
    assert_eq!(
        texts(&app.handle(Event::Line("/cancel".into()))),
        ["🛑 Cancelled report.pdf"]
    );
    // The SHA-256 first: it follows the chunks on the same path, so the missing ones were lost
    // on the way, and the receiver asks again from where it is; then the bytes come.
    let mut app = receiving();
    app.handle(chunk(0, &[1; 100_000]));
    assert_eq!(
        sent_controls(&app.handle(control(2, sent.clone()))),
        [FileControl::Accept {
            transfer: T,
            from: 100_000
        }]
    );
    assert!(
        app.handle(chunk(120_000, &[2; 100])).is_empty(),
        "a stray piece"
    );
    let last = app.handle(chunk(100_000, &[2; 50_000]));
    assert!(last.contains(&finish()));
    // Sent again (after a resumed stream): nothing more.
    assert!(app.handle(control(3, sent)).is_empty());
    assert_eq!(
        texts(&app.handle(Event::Line("/cancel".into()))),
        ["❌ No file transfer to cancel"],
        "too late once it is being checked"
    );
}

#[test]
fn a_chunk_out_of_order_or_forged_stops_the_transfer() {
    let mut app = receiving();
    let effects = app.handle(chunk(100, &[1; 10]));
    assert_stopped(
        &effects,
        "a piece arrived out of order (at byte 100, expected 0)",
    );
    assert!(texts(&effects)[0].ends_with("; nothing was saved"));
    assert!(sends(&app.handle(chunk(0, &[1; 10]))).is_empty(), "stopped");

    let mut app = receiving();
    let Event::Frame(Frame::Chunk(mut forged)) = chunk(0, &[1; 10]) else {
        unreachable!()
    };
    forged.offset = 10;
    let effects = app.handle(Event::Frame(Frame::Chunk(forged)));
    assert_stopped(&effects, "a piece failed its integrity check");
}

#[test]
fn a_hash_mismatch_deletes_and_cancels() {
    let mut app = receiving();
    app.handle(chunk(0, &[1; SIZE as usize]));
    let effects = app.handle(Event::FileSaved {
        transfer: T,
        result: Err(SaveError::Mismatch),
    });
    assert_stopped(&effects, "the file did not match its SHA-256");
    assert!(texts(&effects)[0].contains("SHA-256 did not match"));
}

#[test]
fn an_empty_file_completes_when_accepted() {
    let mut app = with_files("/dl", false, None);
    app.handle(control(
        1,
        FileControl::Offer {
            transfer: T,
            name: "empty".into(),
            size: 0,
        },
    ));
    app.handle(Event::Line("/accept empty".into()));
    let sent = sent_sha();
    assert_eq!(app.handle(control(2, sent)), [finish()]);
}

#[test]
fn offers_in_history_are_shown_but_not_actionable() {
    let mut app = with_files("/dl", false, None);
    let id = [42; 16];
    let offer = FileControl::Offer {
        transfer: T,
        name: "old.zip".into(),
        size: 2048,
    };
    let body = channel("Nick2", "Nick1")
        .seal_file(&id, 1, &offer)
        .expect("sealed");
    let lines = app.earlier_lines(
        &EarlierMessage {
            seq: 1,
            sent_ms: 1_795_624_800_000,
            mine: false,
            id,
            body,
        },
        "Nick2",
    );
    assert_eq!(
        texts(&lines),
        ["📜 [2026-11-25 16:40] Nick2: 📎 offered old.zip (2.0 kB) — from history, it cannot be accepted now"]
    );
    assert_eq!(
        texts(&app.handle(Event::Line("/accept".into()))),
        ["❌ No file offer to answer"]
    );
}
