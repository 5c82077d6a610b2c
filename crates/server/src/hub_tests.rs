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
            Note::NickAccepted(nick) => format!("nick {nick}"),
            Note::Waiting => "waiting".to_owned(),
            Note::Paired { companion, nick } => format!("paired {nick} via {}", companion.name),
            Note::CompanionLeft { nick, reason } => format!("left {nick} {reason:?}"),
        };
        self.seen.lock().unwrap().push(line);
    }
}

#[test]
fn pairs_in_arrival_order() {
    let hub = Hub::new();
    let screens: Vec<Screen> = ["a", "b", "c", "d"].into_iter().map(Screen::new).collect();
    assert_eq!(hub.join(1, "A", screens[0].clone()), Ok(Joined::Waiting));
    assert_eq!(
        hub.join(2, "B", screens[1].clone()),
        Ok(Joined::Paired {
            companion: "A".into()
        })
    );
    assert_eq!(hub.join(3, "C", screens[2].clone()), Ok(Joined::Waiting));
    assert_eq!(
        hub.join(4, "D", screens[3].clone()),
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
    hub.join(1, "Nick1", Screen::new("a")).unwrap();
    let taken = Screen::new("b");
    assert_eq!(
        hub.join(2, "nick1", taken.clone()),
        Err(NickError::Taken("nick1".into()))
    );
    assert!(
        taken.take().is_empty(),
        "a refused member is told nothing by the hub"
    );
    assert_eq!(
        hub.join(2, "bad nick", taken.clone()),
        Err(NickError::Whitespace)
    );
    assert_eq!(
        hub.join(2, "Nick2", taken.clone()),
        Ok(Joined::Paired {
            companion: "Nick1".into()
        })
    );
}

#[test]
fn a_name_is_free_again_after_its_owner_leaves() {
    let hub = Hub::new();
    hub.join(1, "Nick1", Screen::new("a")).unwrap();
    hub.leave(1, LeftReason::Quit).unwrap();
    assert_eq!(hub.join(2, "NICK1", Screen::new("b")), Ok(Joined::Waiting));
}

#[test]
fn companion_is_told_and_requeued() {
    let hub = Hub::new();
    let (a, b, c) = (Screen::new("a"), Screen::new("b"), Screen::new("c"));
    hub.join(1, "A", a.clone()).unwrap();
    hub.join(2, "B", b.clone()).unwrap();
    a.take();
    b.take();
    let departure = hub.leave(1, LeftReason::Quit).unwrap();
    assert_eq!(departure.nick, "A");
    assert_eq!(departure.companion.as_deref(), Some("B"));
    assert_eq!(departure.repaired, None);
    assert_eq!(b.take(), ["left A Quit", "waiting"]);
    assert_eq!(
        hub.join(3, "C", c.clone()),
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
    hub.join(1, "A", a.clone()).unwrap();
    hub.join(2, "B", b.clone()).unwrap();
    hub.join(3, "C", c.clone()).unwrap();
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
    hub.join(1, "A", Screen::new("a")).unwrap();
    let departure = hub.leave(1, LeftReason::TimedOut).unwrap();
    assert_eq!(departure.companion, None);
    assert_eq!(hub.counts(), (0, 0));
    assert_eq!(hub.join(2, "B", Screen::new("b")), Ok(Joined::Waiting));
    assert_eq!(hub.leave(99, LeftReason::Quit), None);
}

#[test]
fn nobody_is_paired_or_told_once_closing() {
    let hub = Hub::new();
    let (a, b) = (Screen::new("a"), Screen::new("b"));
    hub.join(1, "A", a.clone()).unwrap();
    hub.join(2, "B", b.clone()).unwrap();
    b.take();
    hub.close();
    hub.leave(1, LeftReason::Quit).unwrap();
    assert!(b.take().is_empty());
}
