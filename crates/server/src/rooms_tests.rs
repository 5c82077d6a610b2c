use super::*;
use crate::mailbox::Mailbox;

fn session(id: SessionId) -> (SessionId, Link) {
    (id, Mailbox::new(1024))
}

fn limits(members: usize, per_user: usize) -> RoomLimits {
    RoomLimits {
        members,
        per_user,
        rooms: 10,
    }
}

fn join(rooms: &Rooms, name: &str, nick: &str, id: SessionId) -> Result<Entered, RoomError> {
    let room = rooms.get_or_create(name, &fold_nick(nick))?;
    let mut state = room.lock();
    rooms.enter(&room, &mut state, nick, session(id))
}

#[test]
fn the_creator_owns_the_room_and_others_join_until_it_is_full() {
    let rooms = Rooms::in_memory(limits(2, 5));
    assert_eq!(join(&rooms, "Lobby", "Ann", 1), Ok(Entered::Joined));
    assert_eq!(join(&rooms, "lobby", "Bob", 2), Ok(Entered::Joined));
    assert_eq!(join(&rooms, "LOBBY", "bob", 3), Ok(Entered::Returned));
    assert_eq!(
        join(&rooms, "lobby", "Cy", 4),
        Err(RoomError::Full("Lobby".into(), 2))
    );
    let room = rooms.get_or_create("lobby", "x").unwrap();
    let state = room.lock();
    assert_eq!(state.owner_nick(), "Ann");
    assert!(state.serves("bob", 3) && !state.serves("bob", 2));
}

#[test]
fn names_follow_the_nickname_rules() {
    let rooms = Rooms::in_memory(limits(5, 5));
    for bad in ["", "two words", "/cmd", &"x".repeat(33)] {
        assert!(matches!(
            rooms.get_or_create(bad, "ann"),
            Err(RoomError::Invalid(_))
        ));
    }
    let err = rooms.get_or_create("a b", "ann").err().unwrap().to_string();
    assert!(err.contains("room name"), "{err}");
}

#[test]
fn only_the_owner_gives_orders_and_bans_and_invitations_hold() {
    let rooms = Rooms::in_memory(limits(10, 5));
    join(&rooms, "r", "ann", 1).unwrap();
    join(&rooms, "r", "bob", 2).unwrap();
    let room = rooms.get_or_create("r", "ann").unwrap();
    let mut state = room.lock();
    let refused = rooms.order(&room, &mut state, "bob", RoomAction::Kick, "ann");
    assert!(matches!(refused, Err(RoomError::NotOwner { .. })));
    let order = rooms
        .order(&room, &mut state, "ann", RoomAction::Ban, "Bob")
        .unwrap();
    assert_eq!(order.removed.map(|m| m.nick), Some("bob".to_owned()));
    rooms
        .order(&room, &mut state, "ann", RoomAction::InviteOnly, "")
        .unwrap();
    rooms
        .order(&room, &mut state, "ann", RoomAction::Invite, "cy")
        .unwrap();
    drop(state);
    assert_eq!(
        join(&rooms, "r", "bob", 3),
        Err(RoomError::Banned("r".into()))
    );
    assert_eq!(
        join(&rooms, "r", "dee", 4),
        Err(RoomError::NotInvited("r".into()))
    );
    assert_eq!(join(&rooms, "r", "cy", 5), Ok(Entered::Joined));
    let mut state = room.lock();
    let yourself = rooms.order(&room, &mut state, "ann", RoomAction::Kick, "ann");
    assert!(matches!(yourself, Err(RoomError::Yourself(_))));
}

#[test]
fn rooms_per_user_are_limited_and_leaving_frees_a_place() {
    let rooms = Rooms::in_memory(limits(10, 2));
    join(&rooms, "a", "ann", 1).unwrap();
    join(&rooms, "b", "ann", 1).unwrap();
    assert_eq!(join(&rooms, "c", "ann", 1), Err(RoomError::TooManyRooms(2)));
    join(&rooms, "b", "bob", 2).unwrap();
    let room = rooms.get_or_create("b", "ann").unwrap();
    let mut state = room.lock();
    let (removed, owner) = rooms.remove(&room, &mut state, "ann");
    assert!(removed.is_some());
    assert_eq!(owner.as_deref(), Some("bob"), "the next member owns it");
    drop(state);
    assert_eq!(join(&rooms, "c", "ann", 1), Ok(Entered::Joined));
}

#[test]
fn rooms_members_and_rules_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooms");
    {
        let rooms = Rooms::open(&path, limits(10, 5)).unwrap();
        join(&rooms, "Café", "Ann", 1).unwrap();
        join(&rooms, "café", "Bob", 2).unwrap();
        join(&rooms, "gone", "Bob", 2).unwrap();
        let room = rooms.get_or_create("café", "x").unwrap();
        let mut state = room.lock();
        rooms
            .order(&room, &mut state, "ann", RoomAction::Ban, "Eve")
            .unwrap();
        rooms
            .order(&room, &mut state, "ann", RoomAction::InviteOnly, "")
            .unwrap();
        drop(state);
        let gone = rooms.get_or_create("gone", "x").unwrap();
        let mut state = gone.lock();
        rooms.remove(&gone, &mut state, "bob");
    }
    // The writer thread syncs in the background: wait for the last line, bounded.
    for _ in 0..200 {
        if std::fs::read_to_string(&path)
            .unwrap()
            .contains("drop gone")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let rooms = Rooms::open(&path, limits(10, 5)).unwrap();
    let (total, listed) = rooms.list("bob", 10);
    assert_eq!(total, 1, "the empty room was forgotten");
    assert_eq!(listed[0].name, "Café");
    assert_eq!(listed[0].members, 2);
    assert!(listed[0].invite_only && listed[0].member);
    assert_eq!(
        rooms.list("zed", 10).0,
        0,
        "invite-only rooms are not listed to others"
    );
    assert_eq!(
        join(&rooms, "café", "eve", 3),
        Err(RoomError::Banned("Café".into()))
    );
    assert_eq!(join(&rooms, "café", "bob", 4), Ok(Entered::Returned));
}
