//! The p2pchat terminal client.
//!
//! `app` decides what happens (pure; `events` are its inputs and outputs), `input` reads
//! commands (pure), `net` talks to the relay, `ui` draws and reads the terminal; `run` wires
//! them together and owns the timers: the heartbeat, the reconnect backoff and the wait for acks
//! when leaving.

pub mod app;
mod backoff;
pub mod events;
mod history;
mod inbox;
pub mod input;
mod link;
pub mod net;
mod outbox;
mod receipts;
pub mod ui;

use std::time::Duration;

use p2pchat_proto::Frame;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info, trace};

use crate::app::{App, Effect, Event, Line, Style};
use crate::backoff::reconnect_delay;
use crate::link::{live, Link, Retry};
use crate::net::{Connection, NetEvent, Outgoing, Welcome};
use crate::ui::{InputEvent, Ui};

/// How long leaving waits for the relay to close the connection after `Bye`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long leaving waits for the relay to acknowledge what was sent before saying `Bye`.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Frames handled before the app hears `Drained` anyway, so a relay that never pauses cannot
/// hold back receipts, `Received` and the user's input forever.
const MAX_BATCH: usize = 512;

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Relay host name or address.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Nickname to use instead of asking.
    pub nick: Option<String>,
    /// A particular companion to chat with (`--to`).
    pub to: Option<String>,
    /// Earlier messages shown when a conversation starts (`--history`; 0: none).
    pub history: u32,
    /// How long to keep trying to reconnect after losing the connection (0: exit instead).
    pub retry_for: Duration,
}

/// `host:port`, with brackets around an IPv6 address.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Runs the client until the user leaves or the connection ends; returns the exit status.
pub async fn run(options: Options) -> i32 {
    use std::io::IsTerminal;
    let scripted = !std::io::stdin().is_terminal();
    let mut ui = Ui::new(!scripted);
    let target = host_port(&options.host, options.port);
    let (connection, welcome) = match net::connect(&options.host, options.port).await {
        Ok(connected) => connected,
        Err(err) => {
            ui.finish(false);
            ui.show(&line(
                Style::Error,
                format!("❌ Could not connect to chat server at {target}: {err}"),
            ));
            return 1;
        }
    };
    info!("connected to {target}: {} ({welcome:?})", welcome.server);
    ui.show(&line(
        Style::Plain,
        format!("🔌 Connected to chat server at {target}"),
    ));
    ui.show(&line(Style::Plain, "Type /exit to quit"));
    ui.show(&line(Style::Plain, ""));
    let app = App::new(
        welcome.max_message,
        options.nick.clone(),
        !ui.is_interactive(),
    )
    .with_companion(options.to.clone())
    .with_history(options.history)
    .with_reconnect(!options.retry_for.is_zero())
    .with_stored_history(welcome.stored_history)
    .with_id_seed(random_seed());
    let heartbeat = welcome.heartbeat;
    let chat = Chat {
        app,
        ui,
        link: Link::Up(live(connection)),
        options,
        target,
        heartbeat,
        last_sent: Instant::now(),
        last_heard: Instant::now(),
        want_input: false,
        ack_deadline: None,
    };
    let code = chat.run().await;
    debug!("client exiting with status {code}");
    code
}

fn line(style: Style, text: impl Into<String>) -> Line {
    Line {
        style,
        text: text.into(),
    }
}

/// What woke the loop up.
enum Wake {
    Net(Option<NetEvent>),
    App(Event),
    Ping,
    Attempt(Result<(Connection, Welcome), String>),
    /// Nothing to do but look again (room in the send queue).
    Again,
}

struct Chat {
    app: App,
    ui: Ui,
    link: Link,
    options: Options,
    target: String,
    heartbeat: Duration,
    last_sent: Instant,
    last_heard: Instant,
    want_input: bool,
    ack_deadline: Option<Instant>,
}

impl Chat {
    async fn run(mut self) -> i32 {
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
        let app_room = self.app.accepts_input();
        let ack_deadline = self.ack_deadline;
        // Ping well within the relay's heartbeat so it never mistakes quiet for dead; give up
        // on the relay once it has been silent for a whole interval despite our pings.
        let ping_at = self.last_sent + self.heartbeat / 3;
        let dead_at = self.last_heard + self.heartbeat;
        let heartbeat = self.heartbeat;
        let (host, port) = (self.options.host.as_str(), self.options.port);
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
                Link::Down(retry) => Wake::Attempt(retry.next(host, port).await),
            }
        };
        tokio::select! {
            wake = link => wake,
            input = self.ui.next_input(), if self.want_input && socket_room && app_room => {
                self.want_input = false;
                Wake::App(match input {
                    InputEvent::Line(text) => Event::Line(text),
                    InputEvent::BadLine => Event::BadLine,
                    InputEvent::Ended => Event::InputEnded,
                    InputEvent::Interrupted => Event::Interrupted,
                })
            }
            _ = room(outgoing.as_ref()), if self.want_input && !socket_room => Wake::Again,
            _ = tokio::signal::ctrl_c() => Wake::App(Event::Interrupted),
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
        let mut handled = 0;
        while let Some(net) = next.take() {
            let event = match net {
                Some(NetEvent::Frame(frame)) => {
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
            if handled < MAX_BATCH {
                next = live.events.try_recv().ok().map(Some);
            }
        }
        let effects = self.app.handle(Event::Drained);
        self.apply(effects)
    }

    fn on_attempt(&mut self, result: Result<(Connection, Welcome), String>) -> Option<i32> {
        match result {
            Ok((connection, welcome)) => {
                info!("reconnected to {}: {welcome:?}", self.target);
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
                });
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
        for effect in effects {
            match effect {
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

/// Resolves at `at` (never for `None`).
async fn deadline(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A frame for the trace log, without what people wrote.
fn describe_frame(frame: &Frame) -> String {
    match frame {
        Frame::Message(message) => format!(
            "Message {{ seq: {}, id: {:02x?}, {} bytes }}",
            message.seq,
            &message.id[..4],
            message.text.len()
        ),
        Frame::Earlier(message) => format!(
            "Earlier {{ seq: {}, mine: {}, {} bytes }}",
            message.seq,
            message.mine,
            message.text.len()
        ),
        Frame::NickOk { nick, .. } => format!("NickOk {{ nick: {nick:?} }}"),
        Frame::Resume { nick, .. } => format!("Resume {{ nick: {nick:?} }}"),
        other => format!("{other:?}"),
    }
}

/// `5m`, `30s`, `1500ms`: a `--retry-for` value as the user would write it.
fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", duration.as_millis())
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A random number in `[0, 1)` for backoff jitter (none if the system has no randomness).
fn jitter() -> f64 {
    let mut bytes = [0; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Where this process's message ids start: random, so two clients never share ids. Without
/// system randomness the clock and process id stand in (ids only need to be unique).
fn random_seed() -> u128 {
    let mut bytes = [0; 16];
    if getrandom::fill(&mut bytes).is_ok() {
        return u128::from_be_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    nanos ^ (u128::from(std::process::id()) << 96)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(describe_duration(Duration::from_secs(300)), "5m");
        assert_eq!(describe_duration(Duration::from_secs(45)), "45s");
        assert_eq!(describe_duration(Duration::from_millis(1500)), "1500ms");
    }
}
