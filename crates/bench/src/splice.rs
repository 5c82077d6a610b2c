//! The `splice` baseline: a pure byte relay that pairs consecutive accepted connections (1st with
//! 2nd, 3rd with 4th, …) and copies bytes both ways. No parsing, no protocol: the limit a real
//! relay is measured against.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// `p2pchat bench-splice HOST PORT`.
#[derive(clap::Args, Debug, Clone)]
pub struct SpliceArgs {
    /// Address to listen on, e.g. 127.0.0.1 or ::1.
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed on stderr).
    pub port: u16,
}

/// Runs the splice relay until the process is stopped.
pub fn run_splice(args: SpliceArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: SpliceArgs) -> Result<()> {
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
    eprintln!("splice relay listening on {}", listener.local_addr()?);
    loop {
        let first = accept(&listener).await;
        let second = accept(&listener).await;
        tokio::spawn(async move {
            let (mut first, mut second) = (first, second);
            // Ends when either side closes or fails; nothing to report for a baseline.
            let _ = tokio::io::copy_bidirectional(&mut first, &mut second).await;
        });
    }
}

/// The next connection, with TCP_NODELAY; retries (after a pause) when accepting fails, e.g.
/// out of file descriptors.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(err) => {
                eprintln!("splice relay: accepting failed: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
