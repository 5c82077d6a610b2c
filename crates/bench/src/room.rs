//! The fanout scenario's room on each target: R subscribers of one Redis channel or NATS
//! subject and a publishing connection, or R + 1 members of a p2pchat room, the first of them
//! the sender.
//!
//! p2pchat: each member sends `Join` and then its `Nick` (with an identity of its own) in one
//! write, as `p2pchat client --room` does, so the relay keeps it out of pairing from the start
//! (docs/PROTOCOL.md §6.15), then waits for `Room` and the last `Members` frame. Pairing
//! frames, which a relay would send a client whose `Join` came late, are ignored.
//!
//! A joined member is parked: a task reads and drops what the relay sends it (the room's news
//! of every later member) until the run starts, so a big room's set-up never leaves a member's
//! queue at the relay growing, and the reader is handed back intact (`Reader::next` is
//! cancel-safe).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use p2pchat_proto::{encode_to_vec, Frame};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::{Target, MAX_MEMBERS};
use crate::conn::{Event, Reader, Writer};
use crate::p2p::{greet, Greeted};
use crate::report::Progress;
use crate::targets::{bounded, pubsub_side, Ctx};
use crate::wire::{Encoder, Proto};

/// The connections of one room, made and ready.
pub struct Room {
    /// Where the sender writes.
    pub sender: Writer,
    /// What comes back to the sender: Redis's `PUBLISH` replies, else drained.
    pub replies: Reader,
    /// One per member.
    pub receivers: Vec<Reader>,
    /// Every connection's write side: held until the run ends, and pinged (p2pchat).
    pub writers: Vec<Writer>,
    /// How a message is framed for the target.
    pub encoder: Encoder,
}

/// A p2pchat room: `members + 1` clients join room `<run>f<round>`; the first is the sender.
pub async fn p2p_room(
    ctx: &Arc<Ctx>,
    members: usize,
    round: usize,
    body: usize,
    progress: &Progress,
) -> Result<Room> {
    let name = format!("{}f{round}", ctx.run_id);
    let (go, parked) = watch::channel(false);
    let shared = ctx.clone();
    let joined: Vec<Parked> = bounded(members + 1, ctx.concurrency, progress, |_| {}, {
        let name = name.clone();
        move |k| {
            let ctx = shared.clone();
            let (name, parked) = (name.clone(), parked.clone());
            async move {
                let nick = format!("{name}.{k}");
                let key_index = round * (MAX_MEMBERS + 1) + k;
                join(&ctx, k, nick, key_index, &name, body, parked).await
            }
        }
    })
    .await?;
    go.send_replace(true);
    let mut connections = Vec::with_capacity(joined.len());
    for member in joined {
        connections.push(member.resume().await?);
    }
    let writers = connections.iter().map(|(w, _)| w.clone()).collect();
    let mut connections = connections.into_iter();
    let (sender, replies) = connections.next().context("no sender joined")?;
    Ok(Room {
        sender,
        replies,
        receivers: connections.map(|(_, reader)| reader).collect(),
        writers,
        encoder: Encoder::new(Proto::Framed, "", body),
    })
}

/// `members` subscribers of one Redis channel or NATS subject, and a publishing connection.
pub async fn pubsub_room(
    ctx: &Arc<Ctx>,
    members: usize,
    round: usize,
    progress: &Progress,
) -> Result<Room> {
    let topic = match ctx.target {
        Target::Nats => format!("{}.f.{round}", ctx.run_id),
        _ => format!("{}:f:{round}", ctx.run_id),
    };
    let shared = ctx.clone();
    let listen = topic.clone();
    let sides = bounded(
        members,
        ctx.concurrency,
        progress,
        |_| {},
        move |k| {
            let (ctx, listen) = (shared.clone(), listen.clone());
            async move { pubsub_side(&ctx, k, Some(&listen), false, "").await }
        },
    )
    .await?;
    let publisher = pubsub_side(ctx, members, None, true, &topic).await?;
    progress.add(1);
    let mut writers = Vec::with_capacity(members + 1);
    let mut receivers = Vec::with_capacity(members);
    for side in sides {
        let inbox = side.inbox.context("a subscriber without a connection")?;
        writers.push(inbox.writer());
        receivers.push(inbox);
    }
    let sender = publisher
        .writer
        .context("the publisher has no connection")?;
    let replies = match ctx.target {
        Target::Redis => publisher.acks,
        _ => publisher.inbox,
    }
    .context("the publisher reads no replies")?;
    writers.push(sender.clone());
    Ok(Room {
        sender,
        replies,
        receivers,
        writers,
        encoder: Encoder::new(ctx.proto(), &topic, ctx.size),
    })
}

/// A member that joined the room, its reader parked until `Parked::resume`.
pub struct Parked {
    /// Its nickname.
    pub nick: String,
    /// Write side.
    pub writer: Writer,
    reader: ParkedReader,
}

/// The parking task, aborted if dropped before it is resumed (a failed set-up).
struct ParkedReader(Option<JoinHandle<Result<Reader>>>);

impl Drop for ParkedReader {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl Parked {
    /// The reader back, once `go` said so; fails if a message arrived before that or the
    /// connection failed while parked.
    pub async fn resume(mut self) -> Result<(Writer, Reader)> {
        let task = self.reader.0.take().context("resumed twice")?;
        let reader = task
            .await
            .context("a parked member's task failed")?
            .with_context(|| format!("{} while waiting for the run to start", self.nick))?;
        Ok((self.writer.clone(), reader))
    }
}

/// Where a member stands while it joins.
#[derive(Default)]
struct Joining {
    named: bool,
    in_room: bool,
}

/// Logs in connection `index` as `nick` with the identity of `key_index` (tag `f`), joins
/// `room`, and parks the reader until `go` turns true. `body` is the largest message body the
/// member will send.
pub async fn join(
    ctx: &Ctx,
    index: usize,
    nick: String,
    key_index: usize,
    room: &str,
    body: usize,
    go: watch::Receiver<bool>,
) -> Result<Parked> {
    let context = || format!("{nick} joining room {room}");
    let Greeted {
        writer,
        mut reader,
        challenge,
        ..
    } = greet(ctx, index, body).await.with_context(context)?;
    let identity = ctx.security.identity('f', key_index);
    let mut out = encode_to_vec(&Frame::Join(room.to_owned()));
    out.extend_from_slice(&encode_to_vec(&Frame::Nick {
        nick: nick.clone(),
        key: identity.public_key(),
        proof: identity.sign_login(&challenge, &nick),
    }));
    writer.send(&out).await?;
    reader.keep_bookkeeping(false);
    let mut state = Joining::default();
    reader
        .next(|event| joining(&mut state, event))
        .await
        .with_context(context)?;
    let task = tokio::spawn(park(reader, go));
    Ok(Parked {
        nick,
        writer,
        reader: ParkedReader(Some(task)),
    })
}

/// One step of joining: done with the last `Members` frame after `Room`.
fn joining(state: &mut Joining, event: Event<'_>) -> Result<Option<()>> {
    match event {
        Event::Frame(Frame::NickOk { .. }) => state.named = true,
        Event::Frame(Frame::Room(_)) if state.named => state.in_room = true,
        Event::Frame(Frame::Members { more, .. }) if state.in_room => {
            return Ok((!more).then_some(()));
        }
        Event::Frame(
            Frame::Waiting
            | Frame::WaitingFor(_)
            | Frame::Paired(_)
            | Frame::Left { .. }
            | Frame::RoomNews(_),
        ) => {}
        // A leftover client of an earlier run, paired with us for a moment, may still send.
        Event::Message { .. } if !state.in_room => {}
        Event::Said { .. } => bail!("a message in what should be a new room"),
        other => bail!("unexpected {other:?} while joining"),
    }
    Ok(None)
}

/// Reads and drops the room's news until `go` turns true; then hands the reader back.
async fn park(mut reader: Reader, mut go: watch::Receiver<bool>) -> Result<Reader> {
    let drop_news = reader.next(|event| match event {
        Event::Frame(_) => Ok(None::<()>),
        other => bail!("unexpected {other:?} before the run started"),
    });
    tokio::select! {
        read = drop_news => {
            read?;
            bail!("the parked reader stopped");
        }
        started = go.wait_for(|&go| go) => {
            started.context("the run was called off")?;
        }
    }
    Ok(reader)
}
