//! Opening the database file: a private directory and file, WAL with a full sync at each
//! commit, the tables, and refusing a file this version cannot read rather than misreading it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The layout this code reads and writes. 1 was a row per message record with ids re-encoded by
/// the store; 2 keeps the relay's frames verbatim and the members' state.
pub const SCHEMA_VERSION: i64 = 2;

/// Page size for a new database.
const PAGE_SIZE: i64 = 16 * 1024;

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS conversations (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE
    );
    -- One row per group commit. Ids are assigned by the writer and never reused, even after a
    -- purge (meta 'log_high'), so an index entry can never point at a newer row by mistake.
    CREATE TABLE IF NOT EXISTS log (
        id INTEGER PRIMARY KEY,
        last_ms INTEGER NOT NULL,
        data BLOB NOT NULL
    );
    -- One entry per conversation per index window: where its messages first_seq..=last_seq are.
    CREATE TABLE IF NOT EXISTS entries (
        conversation INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        first_log INTEGER NOT NULL,
        last_log INTEGER NOT NULL,
        PRIMARY KEY (conversation, first_seq)
    ) WITHOUT ROWID;
    -- Each member's state as of the last index window; the log tail holds what came after.
    CREATE TABLE IF NOT EXISTS members (
        conversation INTEGER NOT NULL,
        member TEXT NOT NULL,
        last_sent_seq INTEGER NOT NULL,
        last_sent_id BLOB NOT NULL,
        read_through INTEGER NOT NULL,
        PRIMARY KEY (conversation, member)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;";

/// Creates `dir` (owner only) and opens or creates `history.db` in it (owner only), ready for
/// the writer. Errors are sentences for the person running the relay.
pub fn open_writer(dir: &Path, path: &Path) -> Result<(Connection, std::fs::File), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    private(dir, 0o700).map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    let lock = lock(dir)?;
    create_private(path).map_err(|e| format!("cannot create the database file: {e}"))?;
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    prepare(&conn).map_err(|e| match e {
        Prepare::Refused(reason) => reason,
        Prepare::Sqlite(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) => {
            "the file is not a database (it is damaged, or not p2pchat's); move it aside to start a \
             new history"
                .to_owned()
        }
        Prepare::Sqlite(e) => e.to_string(),
    })?;
    Ok((conn, lock))
}

/// Takes the data directory for this process: a second relay on the same directory would
/// interleave its numbering with ours. The lock is the operating system's (released when the
/// process ends, however it ends), on a file of its own.
fn lock(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(
            "another p2pchat server is using this data directory (stop it, or give this one its \
             own --data-dir)"
                .to_owned(),
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// A second connection for reads; it never writes.
pub fn open_reader(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

enum Prepare {
    Refused(String),
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Prepare {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

fn prepare(conn: &Connection) -> Result<(), Prepare> {
    // Reading the version first also makes SQLite read the file header: a file that is not a
    // database fails here, before anything is written to it.
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Prepare::Refused(format!(
            "it was written by a newer p2pchat (history layout {version}; this version knows \
             {SCHEMA_VERSION}); upgrade p2pchat"
        )));
    }
    if version != 0 && version < SCHEMA_VERSION {
        return Err(Prepare::Refused(format!(
            "it holds history in the layout of an earlier p2pchat (layout {version}), which this \
             version cannot read; move it aside to start a new history"
        )));
    }
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    if version == 0 && tables > 0 {
        return Err(Prepare::Refused(
            "it is an SQLite database but not a p2pchat history; move it aside or choose another \
             data directory"
                .to_owned(),
        ));
    }
    // Log rows are blobs of tens of kilobytes: bigger pages mean fewer WAL frames per commit
    // (measured: about a fifth more acknowledged messages per second than 4 KiB pages). Only
    // takes effect on a new database.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(TABLES)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    Ok(())
}

/// Creates the database file owner-only before SQLite does, so its WAL and shared-memory files
/// (which SQLite creates with the database's permissions) are private from the start.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    private(path, 0o600)
}

#[cfg(unix)]
fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn private(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
