//! The runner: one loop that waits for whatever comes next (a frame, a typed line, a timer,
//! a reconnect attempt, disk work done), hands it to the app and carries out the effects. It
//! owns the timers: the heartbeat, the reconnect backoff and the wait for acks when leaving.
//! File chunks are taken from the disk readers only while the send queue is nearly empty, one
//! per wake-up, so typed lines and messages overtake them; frames from the network are taken
//! only while the file writer keeps up.

use std::time::Duration;

use p2pchat_proto::Frame;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, trace};

use crate::app::{App, Effect, Event, Style};
use crate::backoff::reconnect_delay;
use crate::describe::{describe_duration, describe_frame};
use crate::disk::Disk;
use crate::link::live;
use crate::link::{Link, Live, Retry};
use crate::net::{ConnectError, Connection, NetEvent, Outgoing, Welcome};
use crate::progress::Meter;
use crate::transport::Target;
use crate::ui::{InputEvent, Ui};
use crate::{host_port, jitter, line, show_warning, Options};

/// How long leaving waits for the relay to close the connection after `Bye`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long leaving waits for the relay to acknowledge what was sent before saying `Bye`.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Most typed lines handed to the app in one `Event::Lines` (they are packed into envelopes of
/// `MAX_BATCH_LINES` anyway; this only bounds the work of one wake-up).
const MAX_LINES_TOGETHER: usize = 256;
/// Frames handled before the app hears `Drained` anyway, so a relay that never pauses cannot
/// hold back receipts, `Received` and the user's input forever.
const MAX_BATCH: usize = 512;
/// File chunks handled in one batch: a transfer streams chunks without pause, and a batch that
/// took them all would keep typed lines waiting until the file is done.
const MAX_CHUNKS_TOGETHER: usize = 32;

/// What woke the loop up.
pub(crate) enum Wake {
    Net(Option<NetEvent>),
    App(Event),
    Ping,
    Attempt(Result<(Connection, Welcome), ConnectError>),
    /// Nothing to do but look again (room in the send queue).
    Again,
}

pub(crate) struct Chat {
    app: App,
    ui: Ui,
    link: Link,
    options: Options,
    target: String,
    relay: Target,
    heartbeat: Duration,
    last_sent: Instant,
    last_heard: Instant,
    want_input: bool,
    ack_deadline: Option<Instant>,
    /// Ctrl+C, listened to for the whole run: a `ctrl_c()` future made afresh in each `select!`
    /// misses a signal that comes while the loop is busy elsewhere (writing a pin file, say).
    interrupt: Option<tokio::signal::unix::Signal>,
    disk: Disk,
    meter: Meter,
}

impl Chat {
    /// The runner for a first connection that is up and greeted.
    pub(crate) fn new(
        app: App,
        ui: Ui,
        connection: Live,
        options: Options,
        relay: Target,
        heartbeat: Duration,
        outgoing: std::path::PathBuf,
    ) -> Self {
        let meter = Meter::new(ui.is_interactive());
        Self {
            app,
            ui,
            disk: Disk::new(outgoing),
            meter,
            link: Link::Up(connection),
            target: host_port(&options.host, options.port),
            options,
            relay,
            heartbeat,
            last_sent: Instant::now(),
            last_heard: Instant::now(),
            want_input: false,
            ack_deadline: None,
            interrupt: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .ok(),
        }
    }

    pub(crate) async fn run(mut self) -> i32 {
        let effects = self.app.start();
        if let Some(code) = self.apply(effects) {
            return self.close(code).await;
        }
        loop {
            let outcome = match self.next_wake().await {
                Wake::Net(event) => self.on_net(event),
                Wake::App(event) => {
                    let effects = self.app.handle(event);
                    self.apply(effects)
                }
                Wake::Ping => {
                    self.send(Frame::Ping(0));
                    None
                }
                Wake::Attempt(result) => self.on_attempt(result),
                Wake::Again => None,
            };
            if let Some(code) = outcome {
                return self.close(code).await;
            }
        }
    }

    async fn next_wake(&mut self) -> Wake {
        let outgoing: Option<Outgoing> = match &self.link {
            Link::Up(live) => Some(live.tasks.outgoing.clone()),
            Link::Down(_) => None,
        };
        let socket_room = outgoing.as_ref().is_none_or(Outgoing::has_room);
        // Without a connection, pieces read are drained (the app drops them) so readers end.
        let bulk_room = outgoing.as_ref().is_none_or(Outgoing::has_bulk_room);
        let reading = self.disk.is_reading();
        let write_room = self.disk.has_write_room();
        let disk_room = self.disk.write_room.clone();
        let app_room = self.app.accepts_input();
        let ack_deadline = self.ack_deadline;
        // Ping well within the relay's heartbeat so it never mistakes quiet for dead; give up
        // on the relay once it has been silent for a whole interval despite our pings.
        let ping_at = self.last_sent + self.heartbeat / 3;
        let dead_at = self.last_heard + self.heartbeat;
        let heartbeat = self.heartbeat;
        let interrupt = self.interrupt.as_mut();
        let interrupted = async move {
            match interrupt {
                Some(signal) => {
                    signal.recv().await;
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        let relay = &self.relay;
        let link = &mut self.link;
        let link = async move {
            match link {
                Link::Up(live) => tokio::select! {
                    event = live.events.recv() => Wake::Net(event),
                    _ = sleep_until(ping_at.min(dead_at)) => {
                        if Instant::now() >= dead_at {
                            Wake::App(Event::ConnectionLost(format!(
                                "the server stopped answering (nothing heard for {}s)",
                                heartbeat.as_secs()
                            )))
                        } else {
                            Wake::Ping
                        }
                    }
                },
                Link::Down(retry) => Wake::Attempt(retry.next(relay).await),
            }
        };
        let (disk_events, chunks) = (&mut self.disk.events, &mut self.disk.chunks);
        tokio::select! {
            wake = link, if write_room => wake,
            Some(event) = disk_events.recv() => Wake::App(event),
            Some(chunk) = chunks.recv(), if bulk_room => {
                self.disk.chunk_taken(&chunk);
                Wake::App(chunk)
            }
            _ = bulk(outgoing.as_ref()), if reading && !bulk_room => Wake::Again,
            _ = disk_room.notified(), if !write_room => Wake::Again,
            input = self.ui.next_input(), if self.want_input && socket_room && app_room => {
                self.want_input = false;
                Wake::App(match input {
                    // Lines already waiting behind this one go with it, to be packed together.
                    InputEvent::Line(text) if self.app.takes_lines_together() => {
                        let mut lines = vec![text];
                        let room = self.app.input_room().saturating_sub(1);
                        lines.extend(self.ui.ready_lines(room.min(MAX_LINES_TOGETHER)));
                        Event::Lines(lines)
                    }
                    InputEvent::Line(text) => Event::Line(text),
                    InputEvent::BadLine => Event::BadLine,
                    InputEvent::Ended => Event::InputEnded,
                    InputEvent::Interrupted => Event::Interrupted,
                })
            }
            _ = room(outgoing.as_ref()), if self.want_input && !socket_room => Wake::Again,
            _ = interrupted => Wake::App(Event::Interrupted),
            _ = deadline(ack_deadline) => {
                self.ack_deadline = None;
                Wake::App(Event::AckWaitOver)
            }
        }
    }

    /// Hands the app a batch of net events: the first, then whatever else has arrived, then
    /// `Drained`, so receipts and `Received` go out once per batch.
    fn on_net(&mut self, first: Option<NetEvent>) -> Option<i32> {
        self.last_heard = Instant::now();
        let mut next = Some(first);
        let (mut handled, mut chunks) = (0, 0);
        while let Some(net) = next.take() {
            let event = match net {
                Some(NetEvent::Frame(frame)) => {
                    chunks += usize::from(matches!(frame, Frame::Chunk(_)));
                    trace!("received {}", describe_frame(&frame));
                    Some(Event::Frame(frame))
                }
                Some(NetEvent::Skipped(why)) => {
                    debug!("skipped a frame from the server: {why}");
                    None
                }
                Some(NetEvent::Closed(why)) => Some(Event::ConnectionLost(why)),
                None => Some(Event::ConnectionLost("the connection ended".into())),
            };
            if let Some(event) = event {
                let effects = self.app.handle(event);
                if let Some(code) = self.apply(effects) {
                    return Some(code);
                }
            }
            handled += 1;
            let Link::Up(live) = &mut self.link else {
                // The app gave this connection up for a new one.
                return None;
            };
            // Each frame may queue a write: stop while the file writer is behind.
            if handled < MAX_BATCH && chunks < MAX_CHUNKS_TOGETHER && self.disk.has_write_room() {
                next = live.events.try_recv().ok().map(Some);
            }
        }
        let effects = self.app.handle(Event::Drained);
        self.apply(effects)
    }

    fn on_attempt(&mut self, result: Result<(Connection, Welcome), ConnectError>) -> Option<i32> {
        match result {
            Ok((connection, welcome)) => {
                info!("reconnected to {}: {welcome:?}", self.target);
                if let Some(notice) = &welcome.notice {
                    self.ui.show(&line(Style::Notice, notice.clone()));
                }
                self.ui.show(&line(
                    Style::Plain,
                    format!("🔌 Reconnected to chat server at {}", self.target),
                ));
                self.link = Link::Up(live(connection));
                self.heartbeat = welcome.heartbeat;
                self.last_sent = Instant::now();
                self.last_heard = Instant::now();
                let effects = self.app.handle(Event::Reconnected {
                    max_message: welcome.max_message,
                    stored_history: welcome.stored_history,
                    challenge: welcome.challenge,
                });
                self.apply(effects)
            }
            Err(ConnectError::CertificateChanged(warning)) => {
                // Never retried: another attempt would only meet the same certificate, or
                // teach the user to wait out the warning.
                show_warning(&mut self.ui, &warning);
                let effects = self.app.handle(Event::ReconnectFailed(
                    "the relay's certificate has changed (see above); not reconnecting".into(),
                ));
                self.apply(effects)
            }
            Err(why) => {
                let Link::Down(retry) = &mut self.link else {
                    return None;
                };
                let now = Instant::now();
                if now >= retry.give_up_at {
                    let why = format!(
                        "{why}; gave up after {}",
                        describe_duration(self.options.retry_for)
                    );
                    let effects = self.app.handle(Event::ReconnectFailed(why));
                    return self.apply(effects);
                }
                retry.attempt = retry.attempt.saturating_add(1);
                let delay = reconnect_delay(retry.attempt, jitter());
                retry.next_at = (now + delay).min(retry.give_up_at);
                debug!("reconnect attempt {} failed: {why}", retry.attempt);
                None
            }
        }
    }

    fn send(&mut self, frame: Frame) {
        if let Link::Up(live) = &self.link {
            trace!("sending {}", describe_frame(&frame));
            live.tasks.outgoing.send(frame);
            self.last_sent = Instant::now();
        }
    }

    /// Carries out effects in order; returns the exit status if one of them ends the chat.
    fn apply(&mut self, effects: Vec<Effect>) -> Option<i32> {
        let close = effects.iter().find_map(|effect| match effect {
            Effect::Close { code } => Some(*code),
            _ => None,
        });
        if close.is_some() {
            // The last lines must reach the screen even if the editor is mid-line.
            self.ui.finish(self.want_input);
        }
        // Interrupted downloads are looked for at once, so that their transfers are known
        // before the next frame (the offer again, say) is handled.
        let mut found = Vec::new();
        for effect in effects {
            match effect {
                Effect::FindParts {
                    dir,
                    companion,
                    key,
                } => found.push(Event::PartsFound(crate::resume::find_parts(
                    &dir, &companion, &key,
                ))),
                Effect::FindOffers { companion, key } => found.push(Event::OffersFound(
                    crate::offers::find(self.disk.outgoing(), &companion, &key),
                )),
                Effect::Show(line) => self.ui.show(&line),
                Effect::Send(frame) => self.send(frame),
                Effect::Prompt(prompt) => {
                    if !self.want_input {
                        self.ui.ask(prompt);
                        self.want_input = true;
                    }
                }
                Effect::Reconnect => self.go_down(),
                Effect::WaitForAcks => self.ack_deadline = Some(Instant::now() + ACK_WAIT),
                Effect::Close { .. } => {}
                Effect::Progress(progress) => {
                    if let Some(text) = self.meter.update(&progress, Instant::now()) {
                        self.ui.show(&line(Style::Plain, text));
                    }
                }
                Effect::StopReading { transfer }
                | Effect::PauseReading { transfer }
                | Effect::DiscardPart { transfer }
                | Effect::ClosePart { transfer } => {
                    self.meter.forget(&transfer);
                    self.disk.apply(effect);
                }
                file => self.disk.apply(file),
            }
        }
        for event in found {
            let effects = self.app.handle(event);
            if let Some(code) = self.apply(effects) {
                return Some(code);
            }
        }
        close
    }

    /// Drops the connection (its tasks stop) and schedules the first reconnect attempt.
    fn go_down(&mut self) {
        let now = Instant::now();
        info!("connection to {} lost; reconnecting", self.target);
        self.link = Link::Down(Retry::new(
            now + reconnect_delay(0, jitter()),
            now + self.options.retry_for,
        ));
    }

    /// Sends what is queued, closes our side, and waits (briefly) for the relay to close its
    /// side, so nothing we sent is lost to a reset.
    async fn close(mut self, code: i32) -> i32 {
        // Temporary files of transfers that stopped are deleted before the process ends.
        self.disk.finish(GOODBYE_TIMEOUT).await;
        if let Link::Up(live) = &mut self.link {
            live.tasks.outgoing.finish();
            let drained = async {
                while let Some(event) = live.events.recv().await {
                    if matches!(event, NetEvent::Closed(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, drained).await;
        }
        code
    }
}

/// Resolves when the writer has room again (never without a connection).
async fn room(outgoing: Option<&Outgoing>) {
    match outgoing {
        Some(outgoing) => outgoing.room().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the writer has room for file chunks again (never without a connection).
async fn bulk(outgoing: Option<&Outgoing>) {
    match outgoing {
        Some(outgoing) => outgoing.bulk_room().await,
        None => std::future::pending().await,
    }
}

/// Resolves at `at` (never for `None`).
async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
