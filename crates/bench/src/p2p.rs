//! Logging in to the p2pchat relay and matching the pairs it made (`greet`, the `Hello` and
//! `Welcome` exchange, also serves `room`).
//!
//! Clients log in concurrently, each with an identity of its own: `Hello`, then, once `Welcome`
//! brings the challenge, `Nick` with the key and the signature over it. Each one waits until
//! the relay pairs it with another client of the same run (a leftover client of an earlier
//! scenario may be paired with it first: that pair ends with `Left` when the leftover goes, and
//! the client waits again) and for the `Conversation` frame that brings the companion's key.
//! The pairs are then read back from the `Paired` names, so building many conversations at once
//! is deterministic in outcome even though the relay decides who meets whom.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use p2pchat_proto::{
    encode_to_vec, Challenge, ConversationInfo, Frame, PublicKey, PROTOCOL_VERSION,
};
use p2pchat_secure::e2e::sealed_len;
use p2pchat_secure::{Channel, Identity};

use crate::conn::{connect, split, Event, Reader, Writer};
use crate::report::Progress;
use crate::targets::{bounded, Ctx};
use crate::wire::Proto;

/// A logged-in, paired client.
pub struct Login {
    /// Position in the run (the `k` of its nickname).
    pub index: usize,
    /// Its nickname.
    pub nick: String,
    /// Its identity.
    pub identity: Identity,
    /// Its companion's nickname.
    pub companion: String,
    /// Its companion's identity key (from the `Conversation` frame).
    pub companion_key: PublicKey,
    /// The conversation's last sequence number when it joined.
    pub last_seq: u64,
    /// Longest message body the relay accepts (from `Welcome`).
    pub max_message: u32,
    /// Write side.
    pub writer: Writer,
    /// Read side.
    pub reader: Reader,
}

impl Login {
    /// The end-to-end channel to its companion.
    pub fn channel(&self) -> Result<Arc<Channel>> {
        if self.companion_key == PublicKey::default() {
            bail!("{}'s companion {} has no key", self.nick, self.companion);
        }
        Channel::new(&self.identity, &self.companion_key)
            .map(Arc::new)
            .with_context(|| format!("the key of {}, {}'s companion", self.companion, self.nick))
    }
}

/// The nickname of client `index` of a run: `prefix` then the index (at most 32 characters).
pub fn nick(prefix: &str, index: usize) -> String {
    format!("{prefix}{index}")
}

/// Logs in `count` p2pchat clients, at most `ctx.concurrency` at once; each is paired on return.
pub async fn logins(
    ctx: &Arc<Ctx>,
    tag: char,
    count: usize,
    progress: &Progress,
    on_each: impl FnMut(&Login),
) -> Result<Vec<Login>> {
    let shared = ctx.clone();
    bounded(count, ctx.concurrency, progress, on_each, move |k| {
        let ctx = shared.clone();
        async move { login(&ctx, tag, k).await }
    })
    .await
}

/// Where a login stands while it waits to be paired.
#[derive(Default)]
struct Pairing {
    named: bool,
    /// Our companion, once `Paired` named a client of this run.
    companion: Option<String>,
    /// A client of another run the relay paired us with for now.
    stranger: Option<String>,
}

/// A connection that said `Hello` and got `Welcome`, ready to log in.
pub struct Greeted {
    /// Write side.
    pub writer: Writer,
    /// Read side (handing `Ack` and `Conversation` frames on, see `keep_bookkeeping`).
    pub reader: Reader,
    /// The challenge to sign in `Nick` (the heartbeat went to `Ctx::heartbeat_ms`).
    pub challenge: Challenge,
    /// Longest message body the relay accepts.
    pub max_message: u32,
}

/// Connects the `index`-th connection of a run, says `Hello` and waits for `Welcome`; fails if
/// the relay would refuse message bodies of `body` bytes.
pub async fn greet(ctx: &Ctx, index: usize, body: usize) -> Result<Greeted> {
    let stream = connect(ctx.addr, ctx.source(index)).await?;
    let link = ctx.security.wrap(stream).await?;
    let (writer, mut reader) = split(link, Proto::Framed, ctx.max_len());
    let hello = encode_to_vec(&Frame::Hello {
        version: PROTOCOL_VERSION,
        features: 0,
        client: concat!("p2pchat-bench ", env!("CARGO_PKG_VERSION")).into(),
    });
    writer.send(&hello).await?;
    reader.keep_bookkeeping(true);
    let (challenge, heartbeat_ms, max_message) = reader
        .next(|event| match event {
            Event::Frame(Frame::Welcome {
                max_message,
                heartbeat_ms,
                challenge,
                ..
            }) => {
                if (max_message as usize) < body {
                    bail!("the relay accepts message bodies up to {max_message} bytes, not {body}");
                }
                Ok(Some((challenge, heartbeat_ms, max_message)))
            }
            other => bail!("unexpected {other:?} instead of Welcome"),
        })
        .await?;
    // Known as soon as the first client is in, for the keepalive.
    ctx.heartbeat_ms.fetch_min(heartbeat_ms, Ordering::Relaxed);
    Ok(Greeted {
        writer,
        reader,
        challenge,
        max_message,
    })
}

/// Connects client `index` of scenario `tag`, logs in as `nick(prefix, index)` (the prefix
/// being the run's id and `tag`) and waits until it is paired with another client of the same
/// prefix and knows its key.
async fn login(ctx: &Ctx, tag: char, index: usize) -> Result<Login> {
    let prefix = format!("{}{tag}", ctx.run_id);
    let nick = nick(&prefix, index);
    let body = if ctx.security.e2e() {
        sealed_len(std::iter::once(ctx.size))
    } else {
        ctx.size
    };
    let Greeted {
        writer,
        mut reader,
        challenge,
        max_message,
    } = greet(ctx, index, body)
        .await
        .with_context(|| format!("logging in as {nick}"))?;
    let identity = ctx.security.identity(tag, index);
    let proof = identity.sign_login(&challenge, &nick);
    let login = encode_to_vec(&Frame::Nick {
        nick: nick.clone(),
        key: identity.public_key(),
        proof,
    });
    writer.send(&login).await?;
    let mut state = Pairing::default();
    let info = reader
        .next(|event| pairing(&mut state, &prefix, event))
        .await
        .with_context(|| format!("logging in as {nick}"))?;
    reader.keep_bookkeeping(false);
    Ok(Login {
        index,
        nick,
        identity,
        companion: info.companion,
        companion_key: info.companion_key,
        last_seq: info.last_seq,
        max_message,
        writer,
        reader,
    })
}

/// One step of waiting to be paired: done once the `Conversation` with our companion came.
fn pairing(
    state: &mut Pairing,
    prefix: &str,
    event: Event<'_>,
) -> Result<Option<ConversationInfo>> {
    match event {
        Event::Frame(Frame::NickOk { .. }) => state.named = true,
        Event::Frame(Frame::Waiting) => {}
        Event::Frame(Frame::Paired(other)) if other.starts_with(prefix) && state.named => {
            state.companion = Some(other);
        }
        Event::Frame(Frame::Paired(other)) => state.stranger = Some(other),
        Event::Frame(Frame::Conversation(info))
            if state.companion.as_deref() == Some(info.companion.as_str()) =>
        {
            return Ok(Some(info));
        }
        Event::Frame(Frame::Conversation(info))
            if state.stranger.as_deref() == Some(info.companion.as_str()) => {}
        Event::Frame(Frame::Left { .. }) => {
            state.stranger = None;
            state.companion = None;
        }
        // A leftover client from an earlier run may still send; not ours to check.
        Event::Message { .. } if state.stranger.is_some() => {}
        other => bail!("unexpected {other:?} while logging in"),
    }
    Ok(None)
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
