use super::*;
use std::io::{Read, Write};

/// Runs a whole TLS handshake between `client` and `server` in memory, then sends one line
/// through it; the client's error if it refuses.
fn handshake(client: &ClientTls, server: &ServerTls) -> Result<(), rustls::Error> {
    let mut c = rustls::ClientConnection::new(client.config.clone(), client.server_name())?;
    let mut s = rustls::ServerConnection::new(server.config.clone())?;
    for _ in 0..10 {
        let mut wire = Vec::new();
        c.write_tls(&mut wire).unwrap();
        s.read_tls(&mut &wire[..]).unwrap();
        s.process_new_packets()?;
        let mut wire = Vec::new();
        s.write_tls(&mut wire).unwrap();
        c.read_tls(&mut &wire[..]).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            c.writer().write_all(b"hello\n").unwrap();
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            s.read_tls(&mut &wire[..]).unwrap();
            s.process_new_packets()?;
            let mut line = [0; 6];
            s.reader().read_exact(&mut line).unwrap();
            assert_eq!(&line, b"hello\n");
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn a_relay_is_pinned_on_first_use_and_refused_when_its_certificate_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerTls::self_signed(&dir.path().join("relay"), vec!["localhost".into()]).unwrap();
    assert!(server.created);
    let key_mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.path().join("relay/key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(key_mode, 0o600);
    let known = dir.path().join("known_hosts");
    let trust = Trust::KnownHosts(known.clone());

    let client = ClientTls::new(&trust, "127.0.0.1", 7777).unwrap();
    handshake(&client, &server).unwrap();
    assert_eq!(
        client.verdict(),
        Verdict::FirstUse {
            fingerprint: server.fingerprint.clone()
        }
    );
    let (pinned, file) = client.remember().unwrap().unwrap();
    assert_eq!((pinned, file), (server.fingerprint.clone(), known.clone()));

    // A later run, same relay: known. The same certificate is loaded again, not recreated.
    let again =
        ServerTls::self_signed(&dir.path().join("relay"), vec!["localhost".into()]).unwrap();
    assert!(!again.created);
    let client = ClientTls::new(&trust, "127.0.0.1", 7777).unwrap();
    handshake(&client, &again).unwrap();
    assert_eq!(client.verdict(), Verdict::Known);

    // Another relay answering at that address.
    let impostor =
        ServerTls::self_signed(&dir.path().join("impostor"), vec!["localhost".into()]).unwrap();
    let client = ClientTls::new(&trust, "127.0.0.1", 7777).unwrap();
    assert!(handshake(&client, &impostor).is_err());
    assert_eq!(
        client.verdict(),
        Verdict::Changed {
            pinned: server.fingerprint.clone(),
            presented: impostor.fingerprint.clone()
        }
    );
    // Another port of the same host is another relay.
    let client = ClientTls::new(&trust, "127.0.0.1", 7778).unwrap();
    handshake(&client, &impostor).unwrap();
}

#[test]
fn a_ca_file_checks_the_certificate_and_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerTls::self_signed(dir.path(), vec!["relay.test".into()]).unwrap();
    let trust = Trust::Ca(server.cert_path.clone());
    let client = ClientTls::new(&trust, "relay.test", 7777).unwrap();
    handshake(&client, &server).unwrap();
    assert_eq!(client.verdict(), Verdict::Ca);
    let wrong_name = ClientTls::new(&trust, "other.test", 7777).unwrap();
    assert!(handshake(&wrong_name, &server).is_err());
    let other =
        ServerTls::self_signed(&dir.path().join("other"), vec!["relay.test".into()]).unwrap();
    assert!(handshake(&client, &other).is_err());
}

#[test]
fn unusable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = ServerTls::from_files(&empty, &empty)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("empty.pem"), "{err}");
    let missing = dir.path().join("missing.pem");
    assert!(ServerTls::from_files(&missing, &missing).is_err());
    assert!(ClientTls::new(&Trust::Ca(empty), "localhost", 1).is_err());
}

#[test]
fn the_fingerprint_is_printed_the_way_openssl_prints_it() {
    let print = fingerprint(b"abc");
    assert_eq!(print.len(), 32 * 3 - 1);
    assert!(print.starts_with("BA:78:16:BF"));
}
