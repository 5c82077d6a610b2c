//! File transfers through the app: offers, answers, chunks in order, the end checks, stopping,
//! and that chat goes on meanwhile. Nick1 is the app; Nick2's side is played with channels.

use std::path::PathBuf;

use p2pchat_proto::FileChunk;
use p2pchat_secure::{FileControl, TransferId};

use super::tests::*;
use super::*;
use crate::events::{FileFacts, FileStamp, Progress, SendSpec};

pub(super) const SIZE: u64 = 150_000;
pub(super) const SHA: [u8; 32] = [7; 32];
pub(super) const T: TransferId = [9; 16];
pub(super) const STAMP: FileStamp = FileStamp {
    len: 2_100_000,
    modified: None,
};

/// The file control messages the effects send, opened as Nick2 would.
pub(super) fn sent_controls(effects: &[Effect]) -> Vec<FileControl> {
    let nick2 = channel("Nick2", "Nick1");
    sends(effects)
        .into_iter()
        .filter_map(|frame| match frame {
            Frame::Message(message) => nick2.open(false, &message.id, &message.body).ok()?.file,
            _ => None,
        })
        .collect()
}

/// A control message from Nick2.
pub(super) fn control(seq: u64, control: FileControl) -> Event {
    let id = [seq as u8 + 100; 16];
    Event::Frame(Frame::Message(ChatMessage {
        seq,
        sent_ms: 1_795_624_800_000,
        id,
        body: channel("Nick2", "Nick1")
            .seal_file(&id, seq, &control)
            .expect("sealed"),
    }))
}

/// A chunk from Nick2 of transfer `T`.
pub(super) fn chunk(offset: u64, data: &[u8]) -> Event {
    let mut body = Vec::new();
    channel("Nick2", "Nick1")
        .seal_chunk(&T, offset, data, &mut body)
        .expect("sealed");
    Event::Frame(Frame::Chunk(FileChunk {
        transfer: T,
        offset,
        body,
    }))
}

pub(super) fn with_files(downloads: &str, auto_accept: bool, send: Option<&str>) -> App {
    let app = fresh(64 * 1024, None, false).with_utc_times().with_files(
        PathBuf::from(downloads),
        auto_accept,
        send.map(PathBuf::from).into_iter().collect(),
    );
    chatting(app, "Nick2")
}

/// The runner listed these files to send.
pub(super) fn listed(app: &mut App, files: &[&str]) -> Vec<Effect> {
    app.handle(Event::FilesListed {
        files: files.iter().map(PathBuf::from).collect(),
        problems: Vec::new(),
    })
}

/// The runner looked at the file of `transfer`: `name`, `size` bytes.
pub(super) fn looked(app: &mut App, transfer: TransferId, name: &str, size: u64) -> Vec<Effect> {
    app.handle(Event::FileLooked {
        transfer,
        result: Ok(FileFacts {
            name: name.into(),
            size,
            stamp: STAMP,
        }),
    })
}

/// A scripted Nick1 with `--send` of `paths`, paired with Nick2 (not told the conversation).
pub(super) fn send_option_app(paths: Vec<PathBuf>) -> App {
    let app = fresh(64 * 1024, None, true).with_files("/dl".into(), false, paths);
    let mut app = log_in(app, "Nick1");
    app.handle(Event::Frame(Frame::Paired("Nick2".into())));
    app
}

/// Nick2's `sent` for transfer `T`.
pub(super) fn sent_sha() -> FileControl {
    FileControl::Sent {
        transfer: T,
        sha256: SHA,
    }
}

/// The runner is to check transfer `T` against Nick2's SHA-256 and name it.
pub(super) fn finish() -> Effect {
    Effect::FinishFile {
        transfer: T,
        sha256: SHA,
    }
}

/// The relay's answer to a chunk for a companion who is not connected.
pub(super) fn not_delivered() -> Event {
    Event::Frame(Frame::Error {
        code: ErrorCode::NotDelivered,
        fatal: false,
        text: "not connected".into(),
    })
}

/// The offer of report.pdf that `offering` makes.
pub(super) fn report_offer(transfer: TransferId) -> FileControl {
    FileControl::Offer {
        transfer,
        name: "report.pdf".into(),
        size: 2_100_000,
    }
}

/// `--send /tmp/report.pdf`: once Nick2 is there the runner is asked to list it, then to look
/// at it; returns the app and the transfer.
pub(super) fn sending_report() -> (App, TransferId) {
    let mut app = send_option_app(vec!["/tmp/report.pdf".into()]);
    let effects = app.handle(conversation("Nick2", 0));
    assert_eq!(
        effects.last(),
        Some(&Effect::ListFiles {
            spec: crate::events::SendSpec::Given(vec!["/tmp/report.pdf".into()])
        })
    );
    let effects = listed(&mut app, &["/tmp/report.pdf"]);
    let Some(Effect::LookAtFile { transfer, .. }) = effects.first().cloned() else {
        panic!("no LookAtFile in {effects:?}");
    };
    (app, transfer)
}

/// Nick1 offers `report.pdf`; returns its transfer id.
pub(super) fn offering(app: &mut App) -> TransferId {
    let effects = app.handle(Event::Line("/send /tmp/report.pdf".into()));
    assert_eq!(
        effects.first(),
        Some(&Effect::ListFiles {
            spec: SendSpec::Typed("/tmp/report.pdf".into())
        })
    );
    let effects = listed(app, &["/tmp/report.pdf"]);
    let Some(Effect::LookAtFile { transfer, path }) = effects.first().cloned() else {
        panic!("no LookAtFile in {effects:?}");
    };
    assert_eq!(path, PathBuf::from("/tmp/report.pdf"));
    let effects = looked(app, transfer, "report.pdf", 2_100_000);
    assert_eq!(
        texts(&effects),
        ["📎 Offering report.pdf (2.1 MB) to Nick2…"]
    );
    assert_eq!(sent_controls(&effects), [report_offer(transfer)]);
    transfer
}

/// The effect that reads the offered report.pdf from `from` on, in chunks for the relay.
pub(super) fn reading_report(transfer: TransferId, from: u64) -> Effect {
    Effect::ReadFile {
        transfer,
        path: "/tmp/report.pdf".into(),
        from,
        size: 2_100_000,
        chunk: 64 * 1024 - 41,
        stamp: Some(STAMP),
    }
}

/// The chunks the effects send, opened as Nick2 would: (offset, data).
fn sent_chunks(effects: &[Effect], transfer: &TransferId) -> Vec<(u64, Vec<u8>)> {
    let nick2 = channel("Nick2", "Nick1");
    sends(effects)
        .into_iter()
        .filter_map(|frame| match frame {
            Frame::Chunk(chunk) => {
                let data = nick2
                    .open_chunk(false, transfer, chunk.offset, &chunk.body)
                    .expect("sealed for Nick2");
                Some((chunk.offset, data))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_file_is_offered_streamed_in_order_and_confirmed() {
    let mut app = with_files("/dl", false, None);
    let transfer = offering(&mut app);
    let effects = app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    assert_eq!(texts(&effects), ["📎 Nick2 accepted report.pdf; sending…"]);
    assert!(effects.contains(&reading_report(transfer, 0)));
    let first = app.handle(Event::ChunkRead {
        transfer,
        offset: 0,
        data: vec![1; 100],
    });
    assert_eq!(sent_chunks(&first, &transfer), [(0, vec![1; 100])]);
    // A piece out of order (a reader of a stopped transfer, say) is not sent.
    let stray = app.handle(Event::ChunkRead {
        transfer,
        offset: 5000,
        data: vec![2; 100],
    });
    assert!(sends(&stray).is_empty());
    // A line typed meanwhile goes at once: the file does not hold the conversation up.
    let typed = app.handle(Event::Line("still here".into()));
    assert_eq!(sent_lines(&typed).len(), 1);
    let next = app.handle(Event::ChunkRead {
        transfer,
        offset: 100,
        data: vec![3; 10],
    });
    assert_eq!(sent_chunks(&next, &transfer), [(100, vec![3; 10])]);
    // A reader's SHA-256 before the last piece (a stopped reader's) is not sent.
    let early = app.handle(Event::FileRead {
        transfer,
        sha256: [1; 32],
    });
    assert!(sends(&early).is_empty());
    assert!(next.contains(&Effect::Progress(Progress {
        transfer,
        name: "report.pdf".into(),
        done: 110,
        total: 2_100_000,
    })));
    // The last piece, then the reader's SHA-256: it follows the bytes as `Sent`.
    let last = app.handle(Event::ChunkRead {
        transfer,
        offset: 110,
        data: vec![4; 2_100_000 - 110],
    });
    assert_eq!(sent_chunks(&last, &transfer).len(), 1);
    let read = app.handle(Event::FileRead {
        transfer,
        sha256: SHA,
    });
    assert_eq!(
        sent_controls(&read),
        [FileControl::Sent {
            transfer,
            sha256: SHA
        }]
    );
    let done = app.handle(control(2, FileControl::Received { transfer }));
    assert_eq!(
        texts(&done),
        ["✅ Nick2 received report.pdf (SHA-256 verified)"]
    );
}

#[test]
fn missing_files_and_absent_companions_are_explained() {
    let mut app = with_files("/dl", false, None);
    let effects = app.handle(Event::FilesListed {
        files: vec![],
        problems: vec!["nope.txt: no such file or directory".into()],
    });
    assert_eq!(
        texts(&effects),
        ["❌ Cannot send nope.txt: no such file or directory"]
    );
    let effects = listed(&mut app, &["gone.txt"]);
    let Some(Effect::LookAtFile { transfer, .. }) = effects.first().cloned() else {
        panic!("no LookAtFile");
    };
    let effects = app.handle(Event::FileLooked {
        transfer,
        result: Err("permission denied".into()),
    });
    assert_eq!(
        texts(&effects),
        ["❌ Cannot send gone.txt: permission denied"]
    );
    let mut alone = logged_in("Nick1");
    let effects = alone.handle(Event::Line("/send x".into()));
    assert!(texts(&effects)[0].starts_with("❌ Files go only to a companion who is connected"));
}

/// Nick1 has accepted Nick2's offer of `SIZE` bytes.
pub(super) fn receiving() -> App {
    let mut app = with_files("/dl", true, None);
    let offer = FileControl::Offer {
        transfer: T,
        name: "report.pdf".into(),
        size: SIZE,
    };
    let accepted = app.handle(control(1, offer));
    assert_eq!(
        sent_controls(&accepted),
        [FileControl::Accept {
            transfer: T,
            from: 0
        }],
        "--auto-accept"
    );
    app
}

pub(super) fn assert_stopped(effects: &[Effect], reason: &str) {
    assert!(effects.contains(&Effect::DiscardPart { transfer: T }));
    assert!(!effects
        .iter()
        .any(|effect| matches!(effect, Effect::FinishFile { .. })));
    assert_eq!(
        sent_controls(effects),
        [FileControl::Cancel {
            transfer: T,
            reason: reason.into(),
        }]
    );
}

#[test]
fn declines_and_cancels_reach_the_other_side() {
    let mut app = with_files("/dl", false, None);
    let transfer = offering(&mut app);
    let effects = app.handle(control(1, FileControl::Decline { transfer }));
    assert_eq!(texts(&effects), ["📎 Nick2 declined report.pdf"]);

    let transfer = offering(&mut app);
    app.handle(control(2, FileControl::Accept { transfer, from: 0 }));
    let effects = app.handle(Event::Line("/cancel".into()));
    assert!(effects.contains(&Effect::StopReading { transfer }));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Cancel {
            transfer,
            reason: "cancelled".into(),
        }]
    );

    let mut app = with_files("/dl", false, None);
    app.handle(control(
        1,
        FileControl::Offer {
            transfer: T,
            name: "a.txt".into(),
            size: 5,
        },
    ));
    let effects = app.handle(Event::Line("/decline".into()));
    assert_eq!(
        sent_controls(&effects),
        [FileControl::Decline { transfer: T }]
    );
    let mut app = receiving();
    let effects = app.handle(control(
        2,
        FileControl::Cancel {
            transfer: T,
            reason: "cancelled".into(),
        },
    ));
    assert!(effects.contains(&Effect::DiscardPart { transfer: T }));
    assert_eq!(
        texts(&effects),
        ["❌ Nick2 stopped the transfer of report.pdf: cancelled"]
    );
}

#[test]
fn transfers_stop_when_the_conversation_changes_or_the_relay_refuses() {
    let mut app = with_files("/dl", false, None);
    let transfer = offering(&mut app);
    app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    let effects = app.handle(Event::Frame(Frame::Error {
        code: ErrorCode::FileTooLarge,
        fatal: false,
        text: "over 4 GiB".into(),
    }));
    assert!(effects.contains(&Effect::StopReading { transfer }));
    assert_eq!(
        texts(&effects),
        ["❌ Sending report.pdf stopped: the server refuses files this large (over 4 GiB)"]
    );
    // Further refusals of chunks already on their way say nothing more.
    let again = app.handle(Event::Frame(Frame::Error {
        code: ErrorCode::FileTooLarge,
        fatal: false,
        text: "over 4 GiB".into(),
    }));
    assert!(again.is_empty());

    let mut app = with_files("/dl", false, None);
    let transfer = offering(&mut app);
    let effects = app.handle(Event::Frame(Frame::Paired("Nick3".into())));
    assert!(effects.contains(&Effect::StopReading { transfer }));
    assert!(texts(&effects)
        .contains(&"⚠️ The transfer of report.pdf stopped: the conversation changed".into()));
}

#[test]
fn send_option_offers_once_paired_and_exits_with_the_outcome() {
    let (mut app, transfer) = sending_report();
    // End of input (a script) does not end it early.
    assert!(texts(&app.handle(Event::InputEnded))[0].contains("staying until the file"));
    looked(&mut app, transfer, "report.pdf", 0);
    app.handle(ack(1, 1));
    app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    app.handle(ack(1, 2));
    let effects = app.handle(control(2, FileControl::Received { transfer }));
    assert_eq!(effects.last(), Some(&Effect::Close { code: 0 }));
}

#[test]
fn several_files_wait_for_free_slots_and_accept_all_takes_every_offer() {
    let mut app = with_files("/dl", false, None);
    let names: Vec<String> = (0..20).map(|i| format!("/tmp/f{i}.txt")).collect();
    let paths: Vec<&str> = names.iter().map(String::as_str).collect();
    let effects = listed(&mut app, &paths);
    assert!(texts(&effects).contains(&"📎 20 files to send; up to 16 move at once".into()));
    let looked: Vec<TransferId> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::LookAtFile { transfer, .. } => Some(*transfer),
            _ => None,
        })
        .collect();
    assert_eq!(
        looked.len(),
        crate::transfers::MAX_TRANSFERS,
        "the rest wait"
    );
    // One ends (it cannot be read): the next queued file starts.
    let effects = app.handle(Event::FileLooked {
        transfer: looked[0],
        result: Err("permission denied".into()),
    });
    assert!(effects
        .iter()
        .any(|effect| matches!(effect, Effect::LookAtFile { path, .. } if path == &PathBuf::from("/tmp/f16.txt"))));

    // The receiving side: `/accept all` answers every pending offer.
    let mut app = with_files("/dl", false, None);
    let mut shown = Vec::new();
    for (seq, id) in [(1, 1u8), (2, 2)] {
        let offer = FileControl::Offer {
            transfer: [id; 16],
            name: format!("f{id}.txt"),
            size: 10,
        };
        shown.extend(texts(&app.handle(control(seq, offer))));
    }
    assert_eq!(
        shown,
        [
            "📎 Nick2 offers f1.txt (10 bytes). Type /accept to receive it in /dl, or /decline.",
            "📎 Nick2 offers f2.txt (10 bytes). Type /accept f2.txt (or /accept all, 2 are waiting) to receive it in /dl, or /decline."
        ]
    );
    let effects = app.handle(Event::Line("/accept all".into()));
    assert_eq!(
        sent_controls(&effects),
        [
            FileControl::Accept {
                transfer: [1; 16],
                from: 0
            },
            FileControl::Accept {
                transfer: [2; 16],
                from: 0
            }
        ]
    );
    assert_eq!(
        texts(&app.handle(Event::Line("/decline all".into()))),
        ["❌ No file offer to answer"]
    );
}

#[test]
fn send_option_with_several_files_exits_once_all_are_over_failing_if_one_did() {
    let mut app = send_option_app(vec!["/tmp/a".into(), "/tmp/missing".into()]);
    app.handle(conversation("Nick2", 0));
    let effects = app.handle(Event::FilesListed {
        files: vec!["/tmp/a".into()],
        problems: vec!["/tmp/missing: no such file or directory".into()],
    });
    let Some(Effect::LookAtFile { transfer, .. }) = effects.last().cloned() else {
        panic!("no LookAtFile in {effects:?}");
    };
    looked(&mut app, transfer, "a", 0);
    app.handle(ack(1, 1));
    app.handle(control(1, FileControl::Accept { transfer, from: 0 }));
    let effects = app.handle(control(2, FileControl::Received { transfer }));
    assert_eq!(
        effects.last(),
        Some(&Effect::Close { code: 1 }),
        "one path could not be sent"
    );
}
