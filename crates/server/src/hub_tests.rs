use std::sync::{Arc, Mutex};

use super::*;

/// A peer that records what it was told, as a screen would.
#[derive(Clone)]
struct Screen {
    name: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Screen {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            seen: Arc::default(),
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Peer for Screen {
    fn notify(&self, note: Note<Self>) {
        let line = match note {
            Note::NickAccepted { nick, .. } => format!("nick {nick}"),
            Note::Replaced => "replaced".to_owned(),
            Note::CompanionHere => "companion here".to_owned(),
            Note::TooSlow => "too slow".to_owned(),
            Note::RemovedFromRoom => "removed".to_owned(),
            Note::Waiting => "waiting".to_owned(),
            Note::Paired { companion, nick } => format!("paired {nick} via {}", companion.name),
            Note::CompanionLeft { nick, reason } => format!("left {nick} {reason:?}"),
            Note::WaitingFor(nick) => format!("waiting for {nick}"),
        };
        self.seen.lock().unwrap().push(line);
    }
}

#[test]
fn pairs_in_arrival_order() {
    let hub = Hub::new();
    let screens: Vec<Screen> = ["a", "b", "c", "d"].into_iter().map(Screen::new).collect();
    assert_eq!(
        hub.join(1, "A", screens[0].clone(), None),
        Ok(Joined::Waiting)
    );
    assert_eq!(
        hub.join(2, "B", screens[1].clone(), None),
        Ok(Joined::Paired {
            companion: "A".into()
        })
    );
    assert_eq!(
        hub.join(3, "C", screens[2].clone(), None),
        Ok(Joined::Waiting)
    );
    assert_eq!(
        hub.join(4, "D", screens[3].clone(), None),
        Ok(Joined::Paired {
            companion: "C".into()
        })
    );
    assert_eq!(screens[0].take(), ["nick A", "waiting", "paired B via b"]);
    assert_eq!(screens[1].take(), ["nick B", "paired A via a"]);
    assert_eq!(screens[2].take(), ["nick C", "waiting", "paired D via d"]);
    assert_eq!(screens[3].take(), ["nick D", "paired C via c"]);
    assert_eq!(hub.counts(), (4, 0));
}

#[test]
fn nicknames_are_unique_without_regard_to_case() {
    let hub = Hub::new();
    hub.join(1, "Nick1", Screen::new("a"), None).unwrap();
    let taken = Screen::new("b");
    assert_eq!(
        hub.join(2, "nick1", taken.clone(), None),
        Err(NickError::Taken("nick1".into()))
    );
    assert!(
        taken.take().is_empty(),
        "a refused member is told nothing by the hub"
    );
    assert_eq!(
        hub.join(2, "bad nick", taken.clone(), None),
        Err(NickError::Whitespace)
    );
    assert_eq!(
        hub.join(2, "Nick2", taken.clone(), None),
        Ok(Joined::Paired {
            companion: "Nick1".into()
        })
    );
}

#[test]
fn a_name_is_free_again_after_its_owner_leaves() {
    let hub = Hub::new();
    hub.join(1, "Nick1", Screen::new("a"), None).unwrap();
    hub.leave(1, LeftReason::Quit).unwrap();
    assert_eq!(
        hub.join(2, "NICK1", Screen::new("b"), None),
        Ok(Joined::Waiting)
    );
}

#[test]
fn companion_is_told_and_requeued() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    a.take();
    b.take();
    let departure = hub.leave(1, LeftReason::Quit).unwrap();
    assert_eq!(departure.nick, "A");
    assert_eq!(departure.companion.as_deref(), Some("B"));
    assert_eq!(departure.repaired, None);
    assert_eq!(b.take(), ["left A Quit", "waiting"]);
    assert_eq!(
        hub.join(3, "C", c.clone(), None),
        Ok(Joined::Paired {
            companion: "B".into()
        })
    );
    assert_eq!(b.take(), ["paired C via c"]);
}

#[test]
fn left_behind_companion_pairs_with_someone_already_waiting() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    hub.join(3, "C", c.clone(), None).unwrap();
    b.take();
    c.take();
    let departure = hub.leave(1, LeftReason::ConnectionLost).unwrap();
    assert_eq!(departure.repaired, Some(("B".into(), "C".into())));
    assert_eq!(b.take(), ["left A ConnectionLost", "paired C via c"]);
    assert_eq!(c.take(), ["paired B via b"]);
}

#[test]
fn waiting_member_leaving_leaves_the_queue() {
    let hub = Hub::new();
    hub.join(1, "A", Screen::new("a"), None).unwrap();
    let departure = hub.leave(1, LeftReason::TimedOut).unwrap();
    assert_eq!(departure.companion, None);
    assert_eq!(hub.counts(), (0, 0));
    assert_eq!(
        hub.join(2, "B", Screen::new("b"), None),
        Ok(Joined::Waiting)
    );
    assert_eq!(hub.leave(99, LeftReason::Quit), None);
}

#[test]
fn nobody_is_paired_or_told_once_closing() {
    let hub = Hub::new();
    let (a, b) = (Screen::new("a"), Screen::new("b"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    b.take();
    hub.close();
    hub.leave(1, LeftReason::Quit).unwrap();
    assert!(b.take().is_empty());
}

#[test]
fn a_wanted_companion_is_waited_for_and_others_pass_by() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    assert_eq!(
        hub.join(1, "A", a.clone(), Some("b")),
        Ok(Joined::WaitingFor("b".into()))
    );
    // C takes whoever comes: A is reserved for B, so C waits.
    assert_eq!(hub.join(2, "C", c.clone(), None), Ok(Joined::Waiting));
    assert_eq!(
        hub.join(3, "B", b.clone(), None),
        Ok(Joined::Paired {
            companion: "A".into()
        })
    );
    assert_eq!(a.take(), ["nick A", "waiting for b", "paired B via b"]);
    assert_eq!(b.take(), ["nick B", "paired A via a"]);
    assert_eq!(c.take(), ["nick C", "waiting"]);
}

#[test]
fn asking_for_a_free_member_pairs_at_once() {
    let hub = Hub::new();
    let (a, b) = (Screen::new("a"), Screen::new("b"));
    hub.join(1, "A", a.clone(), None).unwrap();
    assert_eq!(
        hub.join(2, "B", b.clone(), Some("A")),
        Ok(Joined::Paired {
            companion: "A".into()
        })
    );
    assert_eq!(hub.counts(), (2, 0));
}

#[test]
fn chat_with_leaves_the_current_companion_who_is_requeued() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    hub.join(3, "C", c.clone(), None).unwrap();
    for screen in [&a, &b, &c] {
        screen.take();
    }
    // A leaves B for C, who is waiting.
    assert_eq!(
        hub.chat_with(1, Some("c")),
        Ok(Joined::Paired {
            companion: "C".into()
        })
    );
    assert_eq!(b.take(), ["left A Quit", "waiting"]);
    assert_eq!(a.take(), ["paired C via c"]);
    assert_eq!(c.take(), ["paired A via a"]);
    // Asking for the current companion changes nothing.
    assert_eq!(
        hub.chat_with(1, Some("C")),
        Ok(Joined::Paired {
            companion: "C".into()
        })
    );
    assert!(a.take().is_empty() && c.take().is_empty());
    // C goes back to whoever comes next: B has been waiting. A asked for C and keeps
    // waiting for C in particular.
    assert_eq!(
        hub.chat_with(3, None),
        Ok(Joined::Paired {
            companion: "B".into()
        })
    );
    assert_eq!(a.take(), ["left C Quit", "waiting for c"]);
}

#[test]
fn a_busy_or_unwilling_target_is_waited_for() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    // C wants A, who is chatting with B: C waits, and gets A when B leaves.
    assert_eq!(
        hub.join(3, "C", c.clone(), Some("A")),
        Ok(Joined::WaitingFor("A".into()))
    );
    hub.leave(2, LeftReason::Quit).unwrap();
    assert_eq!(a.take().last().map(String::as_str), Some("paired C via c"));
    assert_eq!(c.take().last().map(String::as_str), Some("paired A via a"));
}

#[test]
fn nobody_chats_with_themselves_or_an_invalid_name() {
    let hub = Hub::new();
    assert_eq!(
        hub.join(1, "A", Screen::new("a"), Some("a")),
        Err(NickError::Yourself)
    );
    hub.join(1, "A", Screen::new("a"), None).unwrap();
    assert_eq!(hub.chat_with(1, Some("A")), Err(NickError::Yourself));
    assert_eq!(
        hub.chat_with(1, Some("two words")),
        Err(NickError::Whitespace)
    );
}

#[test]
fn online_lists_members_in_arrival_order_up_to_a_limit() {
    let hub = Hub::new();
    hub.join(1, "A", Screen::new("a"), None).unwrap();
    hub.join(2, "B", Screen::new("b"), None).unwrap();
    hub.join(3, "C", Screen::new("c"), None).unwrap();
    let (total, listed) = hub.online(2);
    assert_eq!(total, 3);
    assert_eq!(listed, [("A".to_owned(), true), ("B".to_owned(), true)]);
}

fn claim(nick: &'static str, token: u8, resume: Option<u8>) -> Claim<'static> {
    Claim {
        nick,
        wants: None,
        token: [token; 16],
        resume: resume.map(|r| [r; 16]),
        aside: false,
    }
}

#[test]
fn resuming_with_the_token_takes_over_quietly() {
    let hub = Hub::keeping_lost_companions();
    let (a, b, a2) = (Screen::new("a"), Screen::new("b"), Screen::new("a2"));
    hub.claim(1, a.clone(), claim("A", 1, None)).unwrap();
    hub.claim(2, b.clone(), claim("B", 2, None)).unwrap();
    a.take();
    b.take();
    // A wrong token, or none, is refused: the nickname is taken.
    assert!(hub.claim(3, a2.clone(), claim("A", 3, Some(9))).is_err());
    assert!(hub.claim(3, a2.clone(), claim("a", 3, None)).is_err());
    let (joined, replaced) = hub.claim(3, a2.clone(), claim("A", 3, Some(1))).unwrap();
    assert!(replaced);
    assert_eq!(
        joined,
        Joined::Paired {
            companion: "B".into()
        }
    );
    assert_eq!(a.take(), ["replaced"]);
    assert_eq!(a2.take(), ["nick A", "paired B via b"]);
    assert!(b.take().is_empty(), "the companion notices nothing");
    // The old session's leave is a no-op; the new one's is seen by B.
    assert_eq!(hub.leave(1, LeftReason::ConnectionLost), None);
    assert!(b.take().is_empty());
    // The old token no longer works; the new one does.
    assert!(hub.claim(4, a.clone(), claim("A", 4, Some(1))).is_err());
    assert!(hub.claim(4, a.clone(), claim("A", 4, Some(3))).is_ok());
}

#[test]
fn a_zero_token_is_never_resumable() {
    let hub = Hub::new();
    let (a, a2) = (Screen::new("a"), Screen::new("a2"));
    hub.join(1, "A", a, None).unwrap();
    assert!(hub.claim(2, a2, claim("A", 5, Some(0))).is_err());
}

#[test]
fn a_lost_companion_is_waited_for_when_conversations_are_kept() {
    let hub = Hub::keeping_lost_companions();
    let (a, b, c, b2) = (
        Screen::new("a"),
        Screen::new("b"),
        Screen::new("c"),
        Screen::new("b2"),
    );
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    a.take();
    hub.leave(2, LeftReason::ConnectionLost);
    assert_eq!(a.take(), ["left B ConnectionLost", "waiting for B"]);
    // A newcomer does not take B's place.
    hub.join(3, "C", c.clone(), None).unwrap();
    assert_eq!(c.take(), ["nick C", "waiting"]);
    // B comes back (a new process, no token) and finds A.
    hub.join(4, "B", b2.clone(), None).unwrap();
    assert_eq!(b2.take(), ["nick B", "paired A via a"]);
    // Quitting, on the other hand, sets A free.
    hub.leave(4, LeftReason::Quit);
    assert_eq!(
        a.take(),
        ["paired B via b2", "left B Quit", "paired C via c"]
    );
}

#[test]
fn a_member_in_a_room_is_out_of_pairing_until_it_asks_again() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone(), None).unwrap();
    hub.join(2, "B", b.clone(), None).unwrap();
    b.take();
    hub.step_aside(1);
    assert_eq!(b.take(), ["left A Quit", "waiting"]);
    assert_eq!(
        hub.join(3, "C", c.clone(), None),
        Ok(Joined::Paired {
            companion: "B".into()
        })
    );
    // Nobody is paired with a member in a room, even by name.
    hub.chat_with(3, Some("A")).unwrap();
    assert_eq!(c.take().last().map(String::as_str), Some("waiting for A"));
    a.take();
    assert_eq!(
        hub.chat_with(1, None),
        Ok(Joined::Paired {
            companion: "C".into()
        })
    );
}
