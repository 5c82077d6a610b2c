//! Opening: bad places, damaged or foreign files, permissions.

use super::*;

fn open_error(dir: &Path) -> (PathBuf, String) {
    match Store::open(dir) {
        Err(StoreError::Open { path, reason }) => (path, reason),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened {}", dir.display()),
    }
}

#[test]
fn a_damaged_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("history.db"), garbage).unwrap();
    let (path, reason) = open_error(dir.path());
    assert!(path.ends_with("history.db"));
    assert!(reason.contains("not a database"), "{reason}");
}

#[test]
fn one_store_per_data_dir_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let (_, reason) = open_error(dir.path());
    assert!(reason.contains("another p2pchat server"), "{reason}");
    drop(first);
    assert!(Store::open(dir.path()).is_ok(), "free again once closed");
}

#[test]
fn an_unusable_data_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let (_, reason) = open_error(&file);
    assert!(reason.contains("data directory"), "{reason}");
    // Unwritable even for root: a directory cannot be made under a regular file.
    let (_, reason) = open_error(&file.join("history"));
    assert!(
        reason.contains("cannot create the data directory"),
        "{reason}"
    );
}

#[cfg(unix)]
#[test]
fn a_data_dir_in_a_read_only_dir_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    let writable_anyway = std::fs::write(locked.join("probe"), b"").is_ok(); // root
    if !writable_anyway {
        let (_, reason) = open_error(&locked.join("history"));
        assert!(reason.contains("ermission denied"), "{reason}");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn other_layouts_are_refused() {
    for (version, tables, expected) in [
        (SCHEMA_VERSION + 1, "CREATE TABLE t (x)", "newer p2pchat"),
        (1, "CREATE TABLE t (x)", "earlier p2pchat"),
        (0, "CREATE TABLE t (x)", "not a p2pchat history"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("history.db")).unwrap();
        conn.execute_batch(tables).unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
        drop(conn);
        let (_, reason) = open_error(dir.path());
        assert!(reason.contains(expected), "version {version}: {reason}");
    }
}

#[cfg(unix)]
#[test]
fn the_data_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(&data.join("history.db-wal")), 0o600);
}

#[test]
fn the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("history.db")).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(!dir.path().join("history.db-journal").exists());
    drop(store);
}
