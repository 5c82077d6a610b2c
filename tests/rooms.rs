//! Rooms: many people in one conversation, with everything a pair has: one order for all,
//! history across crashes, end-to-end encryption, and the owner's rules enforced by the relay.
//! Real binaries on loopback.

mod support;

use std::time::Duration;

use support::{Client, Server};

const LONG: Duration = Duration::from_secs(90);

/// A scripted client of `nick` that went into `room`.
fn member(server: &Server, nick: &str, room: &str) -> Client {
    let client = server.client_with(nick, &["--room", room]);
    client.expect(&format!("You are in room {room}"));
    client
}

/// The room's messages `client` showed, as `author: text`.
fn said(client: &Client) -> Vec<String> {
    client.lines_starting("💬 ")
}

#[test]
fn three_members_see_every_message_once_in_the_same_order() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "lobby");
    let bob = member(&server, "bob", "lobby");
    ann.expect("bob joined the room");
    let cy = member(&server, "cy", "lobby");
    ann.expect("cy joined the room");
    bob.expect("cy joined the room");
    for round in 0..5 {
        ann.say(&format!("a{round}"));
        bob.say(&format!("b{round}"));
        cy.say(&format!("c{round}"));
    }
    for (client, others) in [(&ann, 10), (&bob, 10), (&cy, 10)] {
        client.wait_for_count("💬 ", others, LONG);
    }
    // Everyone's view of the room, own lines put back where the relay numbered them, is the
    // same: compare the order of the lines each pair of members both saw.
    let views = [said(&ann), said(&bob), said(&cy)];
    for a in &views {
        for b in &views {
            let common: Vec<&String> = a.iter().filter(|l| b.contains(l)).collect();
            let common_b: Vec<&String> = b.iter().filter(|l| a.contains(l)).collect();
            assert_eq!(
                common, common_b,
                "two members saw the room in different orders"
            );
        }
    }
    assert!(
        views[0].iter().all(|l| !l.starts_with("ann:")),
        "own lines are not echoed"
    );
    assert!(views[0].contains(&"bob: b4".to_owned()) && views[0].contains(&"cy: c0".to_owned()));
}

fn numbered(tag: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{tag}-{i:04}")).collect()
}

/// `client` showed exactly `sent` from `author`: each once, in order.
fn assert_once_in_order(client: &Client, author: &str, sent: &[String], who: &str) {
    let prefix = format!("💬 {author}: ");
    let seen = client.lines_starting(&prefix);
    assert_eq!(
        seen.len(),
        sent.len(),
        "{who} saw {} of {} lines",
        seen.len(),
        sent.len()
    );
    assert_eq!(seen, sent, "{who} saw duplicates or a different order");
}

#[test]
fn fifty_members_agree_on_one_order() {
    let server = Server::start(&[]);
    let members: Vec<Client> = (0..50)
        .map(|i| member(&server, &format!("m{i:02}"), "crowd"))
        .collect();
    // Everyone has heard of the last arrival before anyone speaks.
    for client in &members[..49] {
        client.expect_within("m49 joined the room", LONG);
    }
    let speakers = [0, 17, 49];
    for round in 0..4 {
        for &s in &speakers {
            members[s].say(&format!("m{s:02}-{round}"));
        }
    }
    for (i, client) in members.iter().enumerate() {
        let expected = if speakers.contains(&i) { 8 } else { 12 };
        client.wait_for_count("💬 ", expected, LONG);
    }
    let reference = said(&members[1]);
    for (i, client) in members.iter().enumerate() {
        let mine = format!("m{i:02}:");
        let expected: Vec<&String> = reference.iter().filter(|l| !l.starts_with(&mine)).collect();
        let seen = said(client);
        assert_eq!(
            seen.iter().collect::<Vec<_>>(),
            expected,
            "member {i} saw another order"
        );
    }
}

#[test]
fn a_server_killed_mid_conversation_loses_and_repeats_nothing_for_any_member() {
    let mut server = Server::start(&[]);
    let ann = member(&server, "ann", "ops");
    let bob = member(&server, "bob", "ops");
    let cy = member(&server, "cy", "ops");
    ann.expect("cy joined the room");
    bob.expect("cy joined the room");
    let from_ann = numbered("ann", 300);
    let from_bob = numbered("bob", 300);
    let _typing = (ann.feed(from_ann.clone()), bob.feed(from_bob.clone()));
    cy.wait_for_count("💬 ann: ", 60, LONG);
    server.kill9();
    cy.expect("Reconnecting");
    server.restart();
    for client in [&ann, &bob, &cy] {
        client.expect_within("Reconnected", LONG);
    }
    cy.wait_for_count("💬 ann: ", 300, LONG);
    cy.wait_for_count("💬 bob: ", 300, LONG);
    ann.wait_for_count("💬 bob: ", 300, LONG);
    bob.wait_for_count("💬 ann: ", 300, LONG);
    assert_once_in_order(&cy, "ann", &from_ann, "cy");
    assert_once_in_order(&cy, "bob", &from_bob, "cy");
    assert_once_in_order(&bob, "ann", &from_ann, "bob");
    assert_once_in_order(&ann, "bob", &from_bob, "ann");
}

#[test]
fn a_member_who_left_no_longer_gets_or_can_read_what_is_said() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "team");
    let bob = member(&server, "bob", "team");
    let cy = member(&server, "cy", "team");
    ann.expect("cy joined the room");
    ann.say("before-leaving");
    cy.expect("💬 ann: before-leaving");
    cy.say("/leave");
    cy.expect("You left room team");
    ann.expect("cy left the room");
    ann.say("after-leaving-secret");
    bob.expect("💬 ann: after-leaving-secret");
    // Coming back later, cy is a new member: what was said meanwhile is not theirs.
    cy.say("/join team");
    cy.expect("You are in room team");
    ann.expect("cy joined the room");
    ann.say("welcome-back");
    cy.expect("💬 ann: welcome-back");
    assert!(
        !cy.output()
            .iter()
            .any(|l| l.contains("after-leaving-secret")),
        "the member who left saw what was said after"
    );
    // The relay stored ciphertext only.
    let data = server.data_dir().expect("history kept");
    for entry in std::fs::read_dir(data).unwrap().flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let needle = b"after-leaving-secret";
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a message in clear",
                entry.path().display()
            );
        }
    }
}

#[test]
fn the_owner_kicks_bans_and_invites_and_others_are_refused_clearly() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "club");
    let bob = member(&server, "bob", "club");
    ann.expect("bob joined the room");
    bob.say("/kick ann");
    bob.expect("only ann, who owns club, can do that");
    ann.say("/kick bob");
    bob.expect("The owner removed you from room club");
    ann.expect("bob was removed from the room by its owner");
    bob.say("/join club");
    bob.expect("You are in room club");
    ann.say("/ban bob");
    bob.expect("The owner banned you from room club");
    bob.say("/join club");
    bob.expect("Could not join room club: you are banned from club");
    ann.say("/invite-only on");
    ann.expect("ann made the room invite-only");
    let dee = server.client_with("dee", &[]);
    // bob, back in pairing after the ban, is waiting: dee chats with bob until joining.
    dee.expect("Connected to bob");
    dee.say("/join club");
    dee.expect("club is invite-only and you have not been invited");
    // Refused, dee is still chatting with bob.
    dee.say("still-here");
    bob.expect("💬 Companion: still-here");
    ann.say("/invite dee");
    ann.expect("dee was invited to the room");
    dee.say("/join club");
    dee.expect("You are in room club");
    ann.say("/unban bob");
    ann.say("/invite bob");
    ann.expect("bob was invited to the room");
    bob.say("/join club");
    bob.expect("You are in room club");
    bob.say("/members");
    bob.expect("👥 club (3) 🔒 invite-only: ann (owner), dee, bob");
}

#[test]
fn room_names_follow_the_nickname_rules() {
    let server = Server::start(&[]);
    let mut bad = server.client_with("ann", &["--room", "two words"]);
    bad.expect("--room two words: a room name cannot contain spaces");
    assert!(!bad.wait_exit().success());
    let ann = server.client_with("ann", &[]);
    ann.expect("Waiting for a companion");
    ann.say("/join /etc");
    ann.expect("Cannot join /etc: a room name cannot start with '/'");
    ann.say(&format!("/join {}", "x".repeat(33)));
    ann.expect("a room name has at most 32 characters");
    // Names compare folded, like nicknames: Café and CAFÉ are one room.
    ann.say("/join Café");
    ann.expect("You are in room Café");
    let bob = server.client_with("bob", &["--room", "CAFÉ"]);
    bob.expect("You are in room Café (owner: ann)");
    bob.expect("👥 Café (2)");
}

#[test]
fn a_member_who_stops_reading_does_not_slow_the_room() {
    let server = Server::plain(&[]);
    let ann = member(&server, "ann", "busy");
    let bob = member(&server, "bob", "busy");
    // A member that joins and then never reads what the relay sends it.
    let mut stuck = support::Raw::connect(server.port);
    stuck.hello();
    stuck.send(&p2pchat_proto::Frame::Join("busy".into()));
    stuck.send(&stuck.nick_frame("stuck"));
    stuck.recv_until(|f| matches!(f, p2pchat_proto::Frame::Room(_)));
    ann.expect("stuck joined the room");
    // Far more than the relay and both socket buffers hold for one member: 10 MB.
    let line = "x".repeat(1000);
    let sent: Vec<String> = (0..10_000).map(|i| format!("{i:05}-{line}")).collect();
    let _typing = ann.feed(sent.clone());
    bob.wait_for_count("💬 ann: ", sent.len(), LONG);
    // The relay let the stuck member go rather than hold the room back for it.
    server.expect_log("too slow for the room");
    ann.expect("stuck went away");
}

/// A file of `size` bytes of a varied pattern (so a misplaced chunk shows).
fn make_file(path: &std::path::Path, size: usize) {
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ size as u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_file_sent_to_the_room_reaches_each_member_who_accepts_it() {
    let server = Server::start(&[]);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let with_downloads = |nick: &str, dir: &tempfile::TempDir| {
        let downloads = dir.path().to_str().unwrap().to_owned();
        let client = server.client_with(nick, &["--room", "share", "--downloads", &downloads]);
        client.expect("You are in room share");
        client
    };
    let ann = with_downloads("ann", &dirs[0]);
    let bob = with_downloads("bob", &dirs[1]);
    let cy = with_downloads("cy", &dirs[2]);
    ann.expect("cy joined the room");
    let source = tempfile::tempdir().unwrap();
    let path = source.path().join("report.bin");
    make_file(&path, 3 * 1024 * 1024 + 17);
    ann.say(&format!("/send {}", path.display()));
    bob.expect("ann offers report.bin (3.1 MB)");
    cy.expect("ann offers report.bin");
    cy.say("/decline");
    ann.expect("cy declined report.bin");
    bob.say("/accept");
    bob.expect_within("Saved report.bin", LONG);
    ann.expect_within("bob received report.bin (SHA-256 verified)", LONG);
    let got = std::fs::read(dirs[1].path().join("report.bin")).unwrap();
    assert_eq!(got, std::fs::read(&path).unwrap(), "bob's copy differs");
    assert!(
        !dirs[2].path().join("report.bin").exists(),
        "cy declined and got nothing"
    );
    // Chat goes on in the room meanwhile and after.
    ann.say("did you get it?");
    bob.expect("💬 ann: did you get it?");
    // A member who joins later was not there for the offer: offered again, it reaches them.
    let dee_dir = tempfile::tempdir().unwrap();
    let dee = with_downloads("dee", &dee_dir);
    ann.expect("dee joined the room");
    ann.say(&format!("/send {}", path.display()));
    dee.expect("ann offers report.bin");
    dee.say("/accept");
    dee.expect_within("Saved report.bin", LONG);
    let got = std::fs::read(dee_dir.path().join("report.bin")).unwrap();
    assert_eq!(got, std::fs::read(&path).unwrap(), "dee's copy differs");
}

#[test]
fn a_member_whose_key_changed_is_warned_about_loudly() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "lobby");
    let mut bob = member(&server, "bob", "lobby");
    ann.expect("bob joined the room");
    // bob gives the nickname up; someone with another key takes it and comes into the room.
    bob.say("/release");
    bob.expect("Nickname bob released");
    // Released, the nickname is in no room any more: its next owner starts as a stranger.
    ann.expect("bob left the room");
    bob.say("/exit");
    bob.wait_exit();
    let other = tempfile::tempdir().unwrap();
    let identity = other.path().join("identity");
    let identity = identity.to_str().unwrap();
    let impostor =
        server.start_client(&["--nick", "bob", "--room", "lobby", "--identity", identity]);
    impostor.expect("You are in room lobby");
    ann.expect("bob joined the room");
    ann.expect("THE IDENTITY KEY OF YOUR COMPANION HAS CHANGED");
}

#[test]
fn a_member_who_comes_back_later_gets_what_was_said_while_away() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "lobby");
    let mut cy = member(&server, "cy", "lobby");
    ann.expect("cy joined the room");
    ann.say("before");
    cy.expect("💬 ann: before");
    cy.say("/exit");
    cy.wait_exit();
    ann.expect("cy went away");
    for line in ["while-away-1", "while-away-2"] {
        ann.say(line);
    }
    // A new process, with none of the keys the first one had.
    let cy = server.client_with("cy", &["--room", "lobby"]);
    cy.expect("You are in room lobby");
    cy.expect("💬 ann: while-away-1");
    cy.expect("💬 ann: while-away-2");
    ann.expect("cy is back in the room");
    assert!(
        !cy.output().iter().any(|l| l.contains("💬 ann: before")),
        "what cy had already seen came again"
    );
}

#[test]
fn the_relay_s_room_limits_are_enforced_and_said() {
    let server = Server::start(&["--max-room-members", "2", "--max-rooms-per-user", "1"]);
    let ann = member(&server, "ann", "small");
    let _bob = member(&server, "bob", "small");
    let cy = server.client_with("cy", &[]);
    cy.expect("Waiting for a companion");
    cy.say("/join small");
    cy.expect("Could not join room small: small is full (at most 2 members)");
    ann.say("/join other");
    ann.expect("Could not join room other: you are in as many rooms as this relay allows (1)");
    // Refused, ann is still in her room.
    ann.say("/members");
    ann.expect("👥 small (2): ann (owner), bob");
}

#[test]
fn rooms_lists_open_rooms_and_members_shows_who_is_away() {
    let server = Server::start(&[]);
    let ann = member(&server, "ann", "lobby");
    let mut bob = member(&server, "bob", "lobby");
    ann.expect("bob joined the room");
    bob.say("/exit");
    bob.wait_exit();
    ann.expect("bob went away");
    ann.say("/members");
    ann.expect("👥 lobby (2): ann (owner), bob (away)");
    let dee = member(&server, "dee", "secret");
    dee.say("/invite-only on");
    dee.expect("dee made the room invite-only");
    let cy = server.client_with("cy", &[]);
    cy.expect("Waiting for a companion");
    cy.say("/rooms");
    // Invite-only rooms are listed to their members only.
    cy.expect("🏠 Rooms (1): lobby (2 members, 1 here)");
    dee.say("/rooms");
    dee.expect(
        "🏠 Rooms (2): lobby (2 members, 1 here), secret (1 member, 1 here, invite-only, yours)",
    );
}

#[test]
fn room_frames_out_of_place_get_a_clear_error_and_the_connection_goes_on() {
    use p2pchat_proto::{ErrorCode, Frame, RoomAction};
    let server = Server::plain(&[]);
    let (mut raw, _) = support::Raw::login(server.port, "raw");
    let refused = |raw: &mut support::Raw, frame: Frame, code: ErrorCode| {
        raw.send(&frame);
        match raw.recv_until(|f| matches!(f, Frame::Error { .. })) {
            Frame::Error {
                code: got,
                fatal,
                text,
            } => {
                assert_eq!(got, code, "{text}");
                assert!(!fatal, "{text}");
            }
            _ => unreachable!(),
        }
    };
    refused(
        &mut raw,
        Frame::Join("two words".into()),
        ErrorCode::RoomInvalid,
    );
    refused(&mut raw, Frame::Join(String::new()), ErrorCode::RoomInvalid);
    refused(&mut raw, Frame::Part, ErrorCode::NotInRoom);
    let kick = Frame::RoomAdmin {
        action: RoomAction::Kick,
        nick: "ann".into(),
    };
    refused(&mut raw, kick, ErrorCode::NotInRoom);
    let said = Frame::Said(p2pchat_proto::RoomMessage {
        seq: 1,
        sent_ms: 0,
        id: [1; 16],
        author: "raw".into(),
        body: vec![1],
    });
    refused(&mut raw, said, ErrorCode::UnexpectedFrame);
    // Still logged in, still answered.
    raw.send(&Frame::Ping(7));
    assert_eq!(
        raw.recv_until(|f| matches!(f, Frame::Pong(_))),
        Frame::Pong(7)
    );
}
