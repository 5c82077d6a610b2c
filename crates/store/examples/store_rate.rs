//! How many messages per second the store acknowledges (durable: WAL, fsync per group commit),
//! and how long an acknowledgement takes, with about 1,024 messages in flight as a busy relay
//! would have. Runs of 64-byte messages, from 1 and from 1,000 conversations.
//!
//! cargo run --release -p p2pchat-store --example store_rate [-- DIR [MESSAGES]]
//!
//! DIR (default: the current directory) should be on the disk the relay would use: a tmpfs
//! makes fsync free and the figures meaningless.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use p2pchat_proto::{ChatMessage, Frame};
use p2pchat_store::{Done, Run, Store};

const IN_FLIGHT: usize = 1024;
const TEXT_BYTES: usize = 64;

/// Messages acknowledged so far and ack latencies, shared with the writer's callbacks.
#[derive(Default)]
struct Tally {
    in_flight: usize,
    acked: usize,
    failed: usize,
    latencies_us: Vec<u32>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| ".".into());
    let messages: usize = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    println!(
        "{messages} messages of {TEXT_BYTES} bytes per case, {IN_FLIGHT} in flight, under {base}"
    );
    for (conversations, run_len) in [(1, 16), (1, 64), (1000, 16), (1000, 64)] {
        measure(Path::new(&base), conversations, run_len, messages);
    }
}

fn measure(base: &Path, conversations: usize, run_len: usize, messages: usize) {
    let dir = tempfile::tempdir_in(base).expect("a temporary directory");
    let store = Store::open(dir.path()).expect("open the store");
    let keys: Vec<Arc<str>> = (0..conversations)
        .map(|c| format!("user{c}\npeer{c}").into())
        .collect();
    let senders: [Arc<str>; 2] = [Arc::from("user"), Arc::from("peer")];
    let template = template(run_len);
    let mut next_seq = vec![1u64; conversations];
    let tally = Arc::new((Mutex::new(Tally::default()), Condvar::new()));
    let started = Instant::now();
    let mut sent = 0;
    let mut turn = 0;
    while sent < messages {
        {
            let (lock, freed) = &*tally;
            let mut t = lock.lock().unwrap();
            while t.in_flight + run_len > IN_FLIGHT {
                t = freed.wait(t).unwrap();
            }
            t.in_flight += run_len;
        }
        let c = turn % conversations;
        let mut frames = BytesMut::from(&template[..]);
        let sent_ms = started.elapsed().as_millis() as i64;
        let frame_len = template.len() / run_len;
        for (i, frame) in frames.chunks_mut(frame_len).enumerate() {
            p2pchat_proto::stamp_message(frame, next_seq[c] + i as u64, sent_ms);
        }
        next_seq[c] += run_len as u64;
        let mut run = Run {
            conversation: keys[c].clone(),
            sender: senders[(turn / conversations) % 2].clone(),
            frames: frames.freeze(),
        };
        let mut done = on_done(tally.clone(), run_len, Instant::now());
        while let Err((back, again)) = store.try_append(run, done) {
            (run, done) = (back, again);
            std::thread::sleep(Duration::from_micros(100)); // over budget: not expected here
        }
        sent += run_len;
        turn += 1;
    }
    let (lock, freed) = &*tally;
    let mut t = lock.lock().unwrap();
    while t.acked + t.failed < sent {
        t = freed.wait(t).unwrap();
    }
    let elapsed = started.elapsed();
    let rate = t.acked as f64 / elapsed.as_secs_f64();
    t.latencies_us.sort_unstable();
    let quantile = |q: f64| t.latencies_us[((t.latencies_us.len() - 1) as f64 * q) as usize];
    let rows: i64 = rusqlite_rows(store.path());
    println!(
        "{conversations:>4} conversations, runs of {run_len:>2}: {:>9.0} acked msgs/s, ack p50 {:>6.2} ms, p99 {:>6.2} ms, {rows} commits ({:.0} msgs each){}",
        rate,
        f64::from(quantile(0.5)) / 1000.0,
        f64::from(quantile(0.99)) / 1000.0,
        sent as f64 / rows.max(1) as f64,
        if t.failed > 0 { format!(", {} FAILED", t.failed) } else { String::new() },
    );
}

/// A run of `run_len` unstamped `Message` frames with `TEXT_BYTES` of text each.
fn template(run_len: usize) -> Vec<u8> {
    let message = Frame::Message(ChatMessage {
        seq: 0,
        sent_ms: 0,
        id: [7; 16],
        body: vec![b'x'; TEXT_BYTES],
    });
    let one = p2pchat_proto::encode_to_vec(&message);
    one.repeat(run_len)
}

fn on_done(tally: Arc<(Mutex<Tally>, Condvar)>, messages: usize, queued: Instant) -> Done {
    Box::new(move |outcome| {
        let latency = queued.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        let (lock, freed) = &*tally;
        let mut t = lock.lock().unwrap();
        t.in_flight -= messages;
        match outcome {
            Ok(()) => t.acked += messages,
            Err(_) => t.failed += messages,
        }
        t.latencies_us.push(latency);
        drop(t);
        freed.notify_one();
    })
}

/// Log rows written, i.e. commits (one row per commit; read before the store is dropped).
fn rusqlite_rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("open for counting");
    conn.query_row("SELECT count(*) FROM log", [], |row| row.get(0))
        .unwrap_or(0)
}
