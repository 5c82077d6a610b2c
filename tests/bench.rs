//! The shipped bench drives a real relay and checks every message it sends arrived once, in
//! order. This runs it small, for correctness only: speed is measured by bench/compare.sh, never
//! asserted here.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{binary, Server};

fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(binary())
        .arg("bench")
        .args(args)
        .args(["--json", "--timeout", "60"])
        .stdin(Stdio::null())
        .output()
        .expect("run bench");
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(&line.expect("utf-8")).expect("one JSON object a line"))
        .collect()
}

#[test]
fn every_scenario_runs_and_verifies_against_the_relay() {
    let server = Server::start(&[]);
    let port = server.port.to_string();
    let pid = server.child.id().to_string();
    let results = bench(&[
        "--port",
        &port,
        "--server-pid",
        &pid,
        "--messages",
        "5000",
        "--trips",
        "50",
        "--pairs",
        "20",
        "--per-pair",
        "100",
        "--connections",
        "200",
        "--sample",
        "10",
        "--members",
        "1,5",
        "--deliveries",
        "2000",
        "all",
    ]);
    let scenarios: Vec<&str> = results
        .iter()
        .map(|r| r["scenario"].as_str().expect("scenario name"))
        .collect();
    assert_eq!(
        scenarios,
        [
            "throughput",
            "latency",
            "pairs",
            "durable",
            "connections",
            "fanout",
            "fanout"
        ]
    );
    for result in &results {
        assert_eq!(result["target"], "p2pchat");
    }
    assert_eq!(results[0]["messages"], 5000);
    assert!(results[0]["msgs_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(results[1]["p50_us"].as_f64().expect("p50") > 0.0);
    assert!(results[3]["msgs_per_sec"].as_f64().expect("acked rate") > 0.0);
    assert_eq!(results[4]["sample_ok"], 10);
    assert!(results[4]["bytes_per_connection"].as_f64().is_some());
    // One room of 1 member, one of 5: every message reached every member once, in order (the
    // bench checks), so the deliveries are messages × members.
    for (result, members) in results[5..].iter().zip([1, 5]) {
        assert_eq!(result["members"], members, "{result}");
        assert!(
            result["delivered_per_sec"]
                .as_f64()
                .expect("delivered rate")
                > 0.0,
            "{result}"
        );
    }
}

#[test]
fn the_splice_baseline_relays_what_the_bench_sends() {
    let mut splice = Command::new(binary())
        .args(["bench-splice", "127.0.0.1", "0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bench-splice");
    let stderr = splice.stderr.take().expect("stderr");
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).expect("read");
    let port = first.trim().rsplit(':').next().expect("a port").to_owned();
    let results = bench(&[
        "--target",
        "splice",
        "--port",
        &port,
        "--messages",
        "5000",
        "--trips",
        "20",
        "throughput",
        "latency",
    ]);
    let _ = splice.kill();
    let _ = splice.wait();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["target"], "splice");
}
