//! Logging in to the p2pchat relay and matching the pairs it made.
//!
//! Clients log in concurrently; each one waits until the relay pairs it with another client of
//! the same run (a leftover client of an earlier scenario may be paired with it first: that pair
//! ends with `Left` when the leftover goes, and the client waits again). The pairs are then read
//! back from the `Paired` names, so building many conversations at once is deterministic in
//! outcome even though the relay decides who meets whom.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context, Result};
use p2pchat_proto::{encode, Frame, PROTOCOL_VERSION};

use crate::conn::{connect, split, Event, Reader, Writer};
use crate::wire::Proto;

/// A logged-in, paired client.
pub struct Login {
    /// Position in the run (the `k` of its nickname).
    pub index: usize,
    /// Its nickname.
    pub nick: String,
    /// Its companion's nickname.
    pub companion: String,
    /// Heartbeat interval announced in `Welcome`.
    pub heartbeat_ms: u32,
    /// Write side.
    pub writer: Writer,
    /// Read side.
    pub reader: Reader,
}

/// The nickname of client `index` of a run: `prefix` then the index (at most 32 characters).
pub fn nick(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}")
}

/// Connects client `index`, logs in as `nick(prefix, index)` and waits until it is paired with
/// another client whose nickname starts with `prefix`. `size` is the message size the scenario
/// will send (checked against the relay's limit).
pub async fn login(
    addr: SocketAddr,
    source: Option<IpAddr>,
    prefix: &str,
    index: usize,
    size: usize,
) -> Result<Login> {
    let nick = nick(prefix, index);
    let stream = connect(addr, source).await?;
    let max = p2pchat_proto::max_frame_len(p2pchat_proto::DEFAULT_MAX_MESSAGE.max(size as u32));
    let (writer, mut reader) = split(stream, Proto::Framed, max);
    let mut hello = bytes::BytesMut::new();
    encode(
        &Frame::Hello {
            version: PROTOCOL_VERSION,
            features: 0,
            client: concat!("p2pchat-bench ", env!("CARGO_PKG_VERSION")).into(),
        },
        &mut hello,
    );
    encode(&Frame::Nick(nick.clone()), &mut hello);
    writer.send(&hello).await?;
    let mut heartbeat_ms = 0;
    let mut named = false;
    let mut stranger = None::<String>;
    let companion = reader
        .next(|event| match event {
            Event::Frame(Frame::Welcome {
                max_message,
                heartbeat_ms: beat,
                ..
            }) => {
                if (max_message as usize) < size {
                    bail!("the relay accepts messages up to {max_message} bytes, not {size}");
                }
                heartbeat_ms = beat;
                Ok(None)
            }
            Event::Frame(Frame::NickOk { .. }) => {
                named = true;
                Ok(None)
            }
            Event::Frame(Frame::Waiting) => Ok(None),
            Event::Frame(Frame::Paired(other)) if other.starts_with(prefix) && named => {
                Ok(Some(other))
            }
            Event::Frame(Frame::Paired(other)) => {
                stranger = Some(other);
                Ok(None)
            }
            Event::Frame(Frame::Left { .. }) => {
                stranger = None;
                Ok(None)
            }
            // A leftover client from an earlier run may still send; not ours to check.
            Event::Message(_) if stranger.is_some() => Ok(None),
            other => bail!("unexpected {other:?} while logging in"),
        })
        .await
        .with_context(|| format!("logging in as {nick}"))?;
    Ok(Login {
        index,
        nick,
        companion,
        heartbeat_ms,
        writer,
        reader,
    })
}

/// Groups logins into pairs by their `Paired` names, in the order of the first member's index.
pub fn match_pairs(logins: Vec<Login>) -> Result<Vec<(Login, Login)>> {
    let partner: HashMap<String, String> = logins
        .iter()
        .map(|login| (login.nick.clone(), login.companion.clone()))
        .collect();
    let mut by_nick: HashMap<String, Login> = HashMap::new();
    let mut firsts = Vec::new();
    for login in logins {
        match partner.get(&login.companion) {
            Some(back) if *back == login.nick => {}
            _ => bail!(
                "{} was paired with {}, who is not paired back with it",
                login.nick,
                login.companion
            ),
        }
        if login.nick < login.companion {
            firsts.push(login);
        } else {
            by_nick.insert(login.nick.clone(), login);
        }
    }
    firsts.sort_by_key(|login| login.index);
    firsts
        .into_iter()
        .map(|first| {
            let second = by_nick
                .remove(&first.companion)
                .context("pairing mix-up: a companion appears twice")?;
            Ok((first, second))
        })
        .collect()
}
