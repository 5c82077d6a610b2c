//! Making conversations on each target: a sender side and a receiver side, each with what it
//! needs to send and receive messages, whatever the server in between.
//!
//! - p2pchat: two logged-in clients the relay paired (see `p2p`), over TLS and sealing their
//!   messages end to end unless the run is in plaintext.
//! - splice: two raw connections the splice relay pairs in accept order (made one after the
//!   other so the order is the bench's).
//! - direct: the bench's own listener; the sender connects straight to the receiver.
//! - redis: `SUBSCRIBE` on one connection, `PUBLISH` on another (a subscribed connection cannot
//!   publish); two connections per side when both directions are used.
//! - nats: one connection per side; `SUB` then `PING`/`PONG` so the subscription is in place.
//! - Redis Streams (durable scenario): one connection per conversation appending to its own
//!   stream; nobody receives.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::args::Target;
use crate::conn::{connect, split, Event, Link, Reader, Writer};
use crate::e2e::{lines_that_fit, Codec};
use crate::p2p;
use crate::report::Progress;
use crate::security::RunSecurity;
use crate::wire::{Encoder, Proto};

/// What every conversation of a run shares.
pub struct Ctx {
    /// The server kind.
    pub target: Target,
    /// Where to connect (the bench's own listener for `direct`).
    pub addr: SocketAddr,
    /// Message payload size.
    pub size: usize,
    /// Unique per bench process: prefixes nicknames, channels and subjects.
    pub run_id: String,
    /// TLS and identities (p2pchat).
    pub security: Arc<RunSecurity>,
    /// Most messages per end-to-end envelope (`--batch`).
    pub batch: usize,
    /// Local addresses client sockets are spread over (empty: the kernel picks).
    pub sources: Vec<IpAddr>,
    /// Connections made at once while building many conversations.
    pub concurrency: usize,
    /// The bench's listener for `direct`.
    pub direct: Option<TcpListener>,
    /// Smallest heartbeat a p2pchat relay announced (ms), `u32::MAX` until one did.
    pub heartbeat_ms: AtomicU32,
}

/// One end of a conversation.
pub struct Side {
    /// Where this side sends messages (None: this side only receives).
    pub writer: Option<Writer>,
    /// Where messages for this side arrive (None: this side only sends).
    pub inbox: Option<Reader>,
    /// Redis only: the publishing connection's replies, one per message sent.
    pub acks: Option<Reader>,
    /// Encodes this side's outgoing messages and checks its incoming ones.
    pub codec: Codec,
    /// p2pchat: the conversation's last sequence number when this side joined.
    pub last_seq: Option<u64>,
}

/// A sender `a` and receiver `b` (and, for two-way scenarios, the other way round too).
pub struct Conversation {
    /// Conversation number, carried in every payload.
    pub id: u32,
    /// First side (sends in one-way scenarios).
    pub a: Side,
    /// Second side (receives in one-way scenarios).
    pub b: Side,
}

impl Ctx {
    /// The wire format messages travel in.
    pub fn proto(&self) -> Proto {
        match self.target {
            Target::P2pchat | Target::Splice | Target::Direct => Proto::Framed,
            Target::Redis => Proto::Redis,
            Target::Nats => Proto::Nats,
        }
    }

    /// Largest message body the bench sends or accepts: a payload, or an envelope.
    fn max_body(&self) -> u32 {
        let envelope = self.size + 128;
        u32::try_from(envelope)
            .unwrap_or(u32::MAX)
            .max(p2pchat_proto::DEFAULT_MAX_MESSAGE)
    }

    /// Largest message (or p2pchat frame) a reader accepts.
    pub fn max_len(&self) -> usize {
        p2pchat_proto::max_frame_len(self.max_body())
    }

    /// A plaintext codec for messages to `dest`.
    pub fn plain(&self, dest: &str) -> Codec {
        Codec::plain(Encoder::new(self.proto(), dest, self.size), self.size)
    }

    /// The codec of a p2pchat client: sealing to its companion in end-to-end mode.
    pub fn codec_of(&self, login: &p2p::Login) -> Result<Codec> {
        if !self.security.e2e() {
            return Ok(self.plain(""));
        }
        let limit = login.max_message.min(self.max_body());
        let lines = lines_that_fit(self.batch, self.size, limit);
        Ok(Codec::sealed(self.size, login.channel()?, lines))
    }

    /// The source address for the `k`-th connection.
    pub fn source(&self, k: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[k % self.sources.len()])
    }

    /// The relay's heartbeat, if a p2pchat relay announced one.
    pub fn heartbeat_ms(&self) -> Option<u32> {
        let beat = self.heartbeat_ms.load(Ordering::Relaxed);
        (beat != u32::MAX && beat > 0).then_some(beat)
    }

    fn side(&self, writer: Writer, reader: Reader, dest: &str) -> Side {
        Side {
            writer: Some(writer),
            inbox: Some(reader),
            acks: None,
            codec: self.plain(dest),
            last_seq: None,
        }
    }

    fn p2p_side(&self, login: p2p::Login) -> Result<Side> {
        Ok(Side {
            codec: self.codec_of(&login)?,
            last_seq: Some(login.last_seq),
            writer: Some(login.writer),
            inbox: Some(login.reader),
            acks: None,
        })
    }

    async fn raw(&self, k: usize) -> Result<(Writer, Reader)> {
        let stream = connect(self.addr, self.source(k)).await?;
        Ok(split(Link::Tcp(stream), self.proto(), self.max_len()))
    }
}

/// Runs `make(i)` for `i in 0..count`, at most `limit` at once, counting progress; results come
/// back in index order. `on_each` sees each result as it completes.
pub async fn bounded<T, F, Fut>(
    count: usize,
    limit: usize,
    progress: &Progress,
    mut on_each: impl FnMut(&T),
    make: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let mut slots: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    loop {
        while next < count && tasks.len() < limit.max(1) {
            let fut = make(next);
            let index = next;
            tasks.spawn(async move { (index, fut.await) });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (index, result) = joined.context("a connecting task failed")?;
        let value = result?;
        on_each(&value);
        progress.add(1);
        slots[index] = Some(value);
    }
    slots
        .into_iter()
        .map(|slot| slot.context("a connection was never made"))
        .collect()
}

/// Makes `count` conversations numbered from 0. `tag` keeps names unique per scenario; `duplex`
/// sets up both directions (only matters for Redis, which needs extra connections for it).
pub async fn build(
    ctx: &Arc<Ctx>,
    tag: char,
    count: usize,
    duplex: bool,
    progress: &Progress,
) -> Result<Vec<Conversation>> {
    if count > crate::payload::MAX_CONVERSATIONS as usize {
        bail!(
            "at most {} conversations",
            crate::payload::MAX_CONVERSATIONS
        );
    }
    match ctx.target {
        Target::P2pchat => {
            let logins = p2p::logins(ctx, tag, count * 2, progress, |_| {}).await?;
            let pairs = p2p::match_pairs(logins)?;
            pairs
                .into_iter()
                .enumerate()
                .map(|(id, (a, b))| {
                    Ok(Conversation {
                        id: id as u32,
                        a: ctx.p2p_side(a)?,
                        b: ctx.p2p_side(b)?,
                    })
                })
                .collect()
        }
        Target::Splice | Target::Direct => {
            let mut out = Vec::with_capacity(count);
            for id in 0..count {
                let (a, b) = if let Some(listener) = &ctx.direct {
                    let (a, b) = tokio::join!(ctx.raw(id * 2), listener.accept());
                    let (stream, _) = b.context("accepting the direct connection")?;
                    stream.set_nodelay(true)?;
                    (a?, split(Link::Tcp(stream), Proto::Framed, ctx.max_len()))
                } else {
                    (ctx.raw(id * 2).await?, ctx.raw(id * 2 + 1).await?)
                };
                out.push(Conversation {
                    id: id as u32,
                    a: ctx.side(a.0, a.1, ""),
                    b: ctx.side(b.0, b.1, ""),
                });
                progress.add(2);
            }
            Ok(out)
        }
        Target::Redis | Target::Nats => {
            let ctx2 = ctx.clone();
            // Progress counts connected sides, two per conversation, as for the other targets.
            bounded(
                count,
                ctx.concurrency,
                progress,
                |_| progress.add(1),
                move |id| {
                    let ctx = ctx2.clone();
                    async move { pubsub_conversation(&ctx, tag, id, duplex).await }
                },
            )
            .await
        }
    }
}

/// Makes `count` Redis Streams "conversations": side `a` appends to stream
/// `<run>:stream:<id>` and reads the replies; side `b` does nothing.
pub async fn streams(
    ctx: &Arc<Ctx>,
    count: usize,
    progress: &Progress,
) -> Result<Vec<Conversation>> {
    let shared = ctx.clone();
    bounded(
        count,
        ctx.concurrency,
        progress,
        |_| {},
        move |id| {
            let ctx = shared.clone();
            async move {
                let (writer, reader) = ctx.raw(id).await?;
                let key = format!("{}:stream:{id}", ctx.run_id);
                Ok(Conversation {
                    id: id as u32,
                    a: Side {
                        writer: Some(writer),
                        inbox: None,
                        acks: Some(reader),
                        codec: Codec::plain(Encoder::xadd(&key, ctx.size), ctx.size),
                        last_seq: None,
                    },
                    b: Side {
                        writer: None,
                        inbox: None,
                        acks: None,
                        codec: ctx.plain(""),
                        last_seq: None,
                    },
                })
            }
        },
    )
    .await
}

/// The channel (Redis) or subject (NATS) side `side` of conversation `id` listens on.
fn topic(ctx: &Ctx, tag: char, id: usize, side: char) -> String {
    match ctx.target {
        Target::Nats => format!("{}.{tag}.{id}.{side}", ctx.run_id),
        _ => format!("{}:{tag}:{id}:{side}", ctx.run_id),
    }
}

async fn pubsub_conversation(
    ctx: &Ctx,
    tag: char,
    id: usize,
    duplex: bool,
) -> Result<Conversation> {
    let to_a = topic(ctx, tag, id, 'a');
    let to_b = topic(ctx, tag, id, 'b');
    let a = pubsub_side(ctx, id * 4, duplex.then_some(&to_a), true, &to_b).await?;
    let b = pubsub_side(ctx, id * 4 + 2, Some(&to_b), duplex, &to_a).await?;
    Ok(Conversation {
        id: id as u32,
        a,
        b,
    })
}

/// One side: subscribed to `listen` if given, publishing to `dest` if `sends`.
pub async fn pubsub_side(
    ctx: &Ctx,
    k: usize,
    listen: Option<&String>,
    sends: bool,
    dest: &str,
) -> Result<Side> {
    let codec = ctx.plain(dest);
    if ctx.target == Target::Nats {
        let (writer, mut reader) = ctx.raw(k).await?;
        reader
            .next(|event| Ok(matches!(event, Event::Info).then_some(())))
            .await
            .context("waiting for the NATS INFO line")?;
        let mut hello = String::from("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n");
        if let Some(subject) = listen {
            hello.push_str(&format!("SUB {subject} 1\r\n"));
        }
        hello.push_str("PING\r\n");
        writer.send(hello.as_bytes()).await?;
        reader
            .next(|event| match event {
                Event::Pong => Ok(Some(())),
                Event::Info => Ok(None),
                other => bail!("unexpected {other:?} while subscribing"),
            })
            .await
            .context("waiting for NATS to confirm the connection")?;
        return Ok(Side {
            writer: Some(writer),
            inbox: Some(reader),
            acks: None,
            codec,
            last_seq: None,
        });
    }
    let mut side = Side {
        writer: None,
        inbox: None,
        acks: None,
        codec,
        last_seq: None,
    };
    if let Some(channel) = listen {
        let (writer, mut reader) = ctx.raw(k).await?;
        let command = format!(
            "*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        writer.send(command.as_bytes()).await?;
        reader
            .next(|event| match event {
                Event::Subscribed => Ok(Some(())),
                other => bail!("unexpected {other:?} while subscribing"),
            })
            .await
            .with_context(|| format!("subscribing to {channel}"))?;
        side.inbox = Some(reader);
    }
    if sends {
        let (writer, reader) = ctx.raw(k + 1).await?;
        side.writer = Some(writer);
        side.acks = Some(reader);
    }
    Ok(side)
}
