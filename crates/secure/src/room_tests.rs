use super::*;

const ROOM: &str = "café";

/// A member's name and identity key, as the others know them.
type Author = (&'static str, PublicKey);

struct Member {
    name: &'static str,
    identity: Identity,
    keys: RoomKeys,
}

fn member(name: &'static str, seed: u8) -> Member {
    Member {
        name,
        identity: Identity::from_seed(&[seed; 32]),
        keys: RoomKeys::new(ROOM, name),
    }
}

impl Member {
    fn author(&self) -> Author {
        (self.name, self.identity.public_key())
    }

    fn entry(&self) -> (String, PublicKey) {
        (self.name.to_owned(), self.identity.public_key())
    }

    /// A new key for `to`, with ids counting up from 0xD0.
    fn distribute(&mut self, to: &[&Member]) -> Distribution {
        self.rotate_to(to.iter().map(|m| m.entry()).collect())
    }

    fn rotate_to(&mut self, members: Vec<(String, PublicKey)>) -> Distribution {
        self.keys.rotate();
        let mut next = 0xD0u8;
        let next_id = || {
            next += 1;
            [next; 16]
        };
        let sent = self.keys.distribute(&self.identity, &members, next_id);
        sent.unwrap()
    }

    fn seal(&self, id: u8, texts: &[&str]) -> Vec<u8> {
        self.keys.seal(&self.identity, &[id; 16], 7, texts).unwrap()
    }

    fn open(&mut self, from: Author, id: u8, body: &[u8]) -> Result<Opened, RoomError> {
        self.keys
            .open(&self.identity, from.0, &from.1, &[id; 16], body)
    }

    fn receive(&mut self, from: Author, sent: &Distribution) -> Vec<Opened> {
        let keys = &mut self.keys;
        let identity = &self.identity;
        sent.envelopes
            .iter()
            .map(|(id, body)| keys.open(identity, from.0, &from.1, id, body).unwrap())
            .collect()
    }

    fn read(&mut self, from: Author, id: u8, body: &[u8]) -> Vec<String> {
        match self.open(from, id, body) {
            Ok(Opened::Message(plain)) => plain.texts,
            other => panic!("{} could not read: {other:?}", self.name),
        }
    }
}

#[test]
fn members_and_the_author_open_what_was_sealed() {
    let (mut a, mut b, mut c) = (member("a", 1), member("b", 2), member("c", 3));
    assert!(a.keys.needs_distribution());
    let early = a.keys.seal(&a.identity, &[1; 16], 1, &["hi"]);
    assert_eq!(early, Err(E2eError::NoSenderKey));
    let sent = a.rotate_to(vec![a.entry(), b.entry(), c.entry()]);
    assert!(!a.keys.needs_distribution());
    assert_eq!(sent.envelopes.len(), 1);
    assert!(sent.skipped.is_empty());
    assert_eq!(sent.envelopes[0].1.len(), HEAD + 2 + 2 * ENTRY_LEN + 64);
    assert_eq!(b.receive(a.author(), &sent), [Opened::Keys { epoch: 1 }]);
    assert_eq!(c.receive(a.author(), &sent), [Opened::Keys { epoch: 1 }]);
    assert_eq!(a.receive(a.author(), &sent), [Opened::NotForMe]);
    let body = a.seal(1, &["hello", "wörld"]);
    assert_eq!(body.len(), sealed_len([5, 6].into_iter()));
    assert!(!body.windows(5).any(|w| w == b"hello"));
    for reader in [&mut b, &mut c] {
        assert_eq!(reader.read(a.author(), 1, &body), ["hello", "wörld"]);
    }
    assert_eq!(a.read(a.author(), 1, &body), ["hello", "wörld"]);
    let again = a.keys.distribute(&a.identity, &[b.entry()], || [0; 16]);
    assert_eq!(
        again,
        Ok(Distribution::default()),
        "no new key without a change"
    );
}

#[test]
fn file_controls_travel_too() {
    let (mut a, mut b) = (member("a", 1), member("b", 2));
    let sent = a.distribute(&[&b]);
    b.receive(a.author(), &sent);
    let control = FileControl::Offer {
        transfer: [4; 16],
        name: "notes.txt".into(),
        size: 12,
    };
    let body = a
        .keys
        .seal_file(&a.identity, &[3; 16], 9, &control)
        .unwrap();
    let Ok(Opened::Message(plain)) = b.open(a.author(), 3, &body) else {
        panic!("not opened");
    };
    assert_eq!((plain.counter, plain.file), (9, Some(control)));
}

#[test]
fn a_later_member_reads_only_what_follows_its_key() {
    let (mut a, mut b, c, mut d) = (
        member("a", 1),
        member("b", 2),
        member("c", 3),
        member("d", 4),
    );
    let first = a.distribute(&[&b, &c]);
    b.receive(a.author(), &first);
    let before = a.seal(1, &["before d"]);
    assert_eq!(d.receive(a.author(), &first), [Opened::NotForMe]);
    assert_eq!(d.open(a.author(), 1, &before), Err(RoomError::NoKey));
    let second = a.distribute(&[&b, &c, &d]);
    assert_eq!(d.receive(a.author(), &second), [Opened::Keys { epoch: 2 }]);
    b.receive(a.author(), &second);
    let after = a.seal(2, &["after d"]);
    assert_eq!(d.read(a.author(), 2, &after), ["after d"]);
    assert_eq!(d.open(a.author(), 1, &before), Err(RoomError::NoKey));
    assert_eq!(b.read(a.author(), 1, &before), ["before d"]);
    assert_eq!(b.read(a.author(), 2, &after), ["after d"]);
    // The author still reads its own earlier epoch.
    assert_eq!(a.read(a.author(), 1, &before), ["before d"]);
}

#[test]
fn a_member_who_left_cannot_read_what_follows() {
    let (mut a, mut b, mut c) = (member("a", 1), member("b", 2), member("c", 3));
    let first = a.distribute(&[&b, &c]);
    b.receive(a.author(), &first);
    c.receive(a.author(), &first);
    let second = a.distribute(&[&b]);
    assert_eq!(c.receive(a.author(), &second), [Opened::NotForMe]);
    b.receive(a.author(), &second);
    let after = a.seal(5, &["c is gone"]);
    assert_eq!(c.open(a.author(), 5, &after), Err(RoomError::NoKey));
    assert_eq!(b.read(a.author(), 5, &after), ["c is gone"]);
}

#[test]
fn any_altered_byte_id_name_room_or_key_is_refused() {
    let (mut a, mut b, c) = (member("a", 1), member("b", 2), member("c", 3));
    let sent = a.distribute(&[&b]);
    let keys = &sent.envelopes[0].1;
    for at in 0..keys.len() {
        let mut altered = keys.clone();
        altered[at] ^= 1;
        assert!(
            b.open(a.author(), 0xD1, &altered).is_err(),
            "KEYS byte {at}"
        );
    }
    b.receive(a.author(), &sent);
    let body = a.seal(1, &["hi"]);
    for at in 0..body.len() {
        let mut altered = body.clone();
        altered[at] ^= 1;
        let expected = if at == 0 {
            RoomError::Envelope(E2eError::UnknownVersion(ROOM_VERSION ^ 1))
        } else {
            RoomError::BadSignature
        };
        assert_eq!(b.open(a.author(), 1, &altered), Err(expected), "byte {at}");
    }
    assert_eq!(b.open(a.author(), 2, &body), Err(RoomError::BadSignature));
    assert_eq!(
        b.open(("c", a.author().1), 1, &body),
        Err(RoomError::BadSignature)
    );
    assert_eq!(
        b.open(("a", c.author().1), 1, &body),
        Err(RoomError::BadSignature)
    );
    let mut elsewhere = RoomKeys::new("other", "b");
    let opened = elsewhere.open(&b.identity, "a", &a.author().1, &[1; 16], &body);
    assert_eq!(opened, Err(RoomError::BadSignature));
    let short = b.open(a.author(), 1, &body[..40]);
    assert_eq!(short, Err(RoomError::Envelope(E2eError::Truncated)));
    let pair = crate::Channel::new(&a.identity, &b.identity.public_key()).unwrap();
    let pair = pair.seal(&[1; 16], 1, &["hi"]).unwrap();
    let refused = b.open(a.author(), 1, &pair);
    assert_eq!(
        refused,
        Err(RoomError::Envelope(E2eError::UnknownVersion(1)))
    );
}

/// B holds A's sender key, which is exactly what it needs to seal as A: only the signature
/// stops it.
#[test]
fn a_member_cannot_write_as_another_with_its_sender_key() {
    let (mut a, mut b, mut c) = (member("a", 1), member("b", 2), member("c", 3));
    let from_a = a.distribute(&[&b, &c]);
    b.receive(a.author(), &from_a);
    c.receive(a.author(), &from_a);
    let from_b = b.distribute(&[&a, &c]);
    c.receive(b.author(), &from_b);
    let stolen = b.keys.others["a"].1.get(1).unwrap().clone();
    for name in ["a", "b"] {
        let mut forger = RoomKeys::new(ROOM, name);
        forger.own.insert(1, stolen.clone());
        forger.stale = false;
        let forged = forger.seal(&b.identity, &[6; 16], 1, &["pay b"]).unwrap();
        // As A, signed by B: the signature is not A's.
        assert_eq!(c.open(a.author(), 6, &forged), Err(RoomError::BadSignature));
        if name == "b" {
            // As B, signed by B, but sealed with A's key: B's own key does not open it.
            let opened = c.open(b.author(), 6, &forged);
            assert_eq!(opened, Err(RoomError::Envelope(E2eError::Forged)));
        }
    }
}

#[test]
fn many_members_get_several_keys_envelopes() {
    let mut a = member("a", 1);
    let seed = |i: usize| {
        let mut seed = [0xEE; 32];
        seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
        seed
    };
    let count = MAX_RECIPIENTS + 5;
    let members: Vec<_> = (0..count)
        .map(|i| (format!("m{i}"), Identity::from_seed(&seed(i)).public_key()))
        .collect();
    let sent = a.rotate_to(members);
    let sizes: Vec<_> = sent.envelopes.iter().map(|(_, body)| body.len()).collect();
    let full = HEAD + 2 + MAX_RECIPIENTS * ENTRY_LEN + SIGNATURE_LEN;
    assert_eq!(sizes, [full, HEAD + 2 + 5 * ENTRY_LEN + SIGNATURE_LEN]);
    assert!(full <= 60_000);
    assert_ne!(
        sent.envelopes[0].0, sent.envelopes[1].0,
        "one id per envelope"
    );
    for i in [0, count - 1] {
        let identity = Identity::from_seed(&seed(i));
        let mut keys = RoomKeys::new(ROOM, &format!("m{i}"));
        let opened: Vec<_> = sent
            .envelopes
            .iter()
            .map(|(id, body)| keys.open(&identity, "a", &a.author().1, id, body))
            .collect();
        let mine = usize::from(i >= MAX_RECIPIENTS);
        assert_eq!(opened[mine], Ok(Opened::Keys { epoch: 1 }));
        assert_eq!(opened[1 - mine], Ok(Opened::NotForMe));
    }
}

#[test]
fn an_unusable_member_key_is_skipped_and_named() {
    let (mut a, mut b) = (member("a", 1), member("b", 2));
    let sent = a.rotate_to(vec![b.entry(), ("z".into(), [0; 32])]);
    assert_eq!(sent.skipped, ["z"]);
    assert_eq!(
        sent.envelopes[0].1.len(),
        HEAD + 2 + ENTRY_LEN + SIGNATURE_LEN
    );
    assert_eq!(b.receive(a.author(), &sent), [Opened::Keys { epoch: 1 }]);
    // Alone in a room: a key with nobody to send it to still seals.
    let alone = a.rotate_to(Vec::new());
    assert!(alone.envelopes.is_empty());
    assert_eq!(a.read(a.author(), 1, &a.seal(1, &["echo"])), ["echo"]);
}

#[test]
fn old_epochs_and_authors_are_forgotten_first() {
    let (mut a, mut b) = (member("a", 1), member("b", 2));
    let mut first = Vec::new();
    for round in 0..MAX_EPOCHS_PER_AUTHOR + 2 {
        let sent = a.distribute(&[&b]);
        b.receive(a.author(), &sent);
        if round == 0 {
            first = a.seal(1, &["first"]);
        }
    }
    assert_eq!(b.keys.others["a"].1 .0.len(), MAX_EPOCHS_PER_AUTHOR);
    assert_eq!(a.keys.own.0.len(), MAX_EPOCHS_PER_AUTHOR);
    assert_eq!(b.open(a.author(), 1, &first), Err(RoomError::NoKey));
    assert_eq!(b.read(a.author(), 2, &a.seal(2, &["last"])), ["last"]);
    for i in 0..=MAX_AUTHORS {
        b.keys
            .remember(&format!("m{i}"), 1, Zeroizing::new([1; 32]));
    }
    assert_eq!(b.keys.others.len(), MAX_AUTHORS);
    assert!(
        !b.keys.others.contains_key("a"),
        "the longest unused went first"
    );
    assert!(b.keys.others.contains_key(&format!("m{MAX_AUTHORS}")));
}

#[test]
fn the_wrap_key_cache_is_bounded() {
    let (mut a, b) = (member("a", 1), member("b", 2));
    a.keys.wraps.fill(a.identity.public_key(), MAX_WRAP_KEYS);
    assert_eq!(a.keys.wraps.len(), MAX_WRAP_KEYS);
    a.distribute(&[&b]);
    assert_eq!(a.keys.wraps.len(), 1);
    // Another identity never uses keys derived for the first.
    let other = Identity::from_seed(&[9; 32]);
    a.keys
        .wraps
        .cipher(&other, &b.identity.public_key())
        .unwrap();
    a.keys
        .wraps
        .cipher(&other, &a.identity.public_key())
        .unwrap();
    assert_eq!(a.keys.wraps.len(), 2);
}

#[test]
fn overlong_names_and_errors_read_as_sentences() {
    let a = member("a", 1);
    let mut keys = RoomKeys::new(&"x".repeat(256), "a");
    let sent = keys.distribute(&a.identity, &[], || [0; 16]);
    assert_eq!(sent, Err(E2eError::NameTooLong));
    assert!(RoomError::NoKey.to_string().contains("before you joined"));
    assert!(RoomError::BadSignature.to_string().contains("signature"));
    let wrapped = RoomError::from(E2eError::Truncated).to_string();
    assert_eq!(wrapped, E2eError::Truncated.to_string());
}
