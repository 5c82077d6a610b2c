//! The p2pchat terminal client.
//!
//! `app` decides what happens (pure), `input` reads commands (pure), `net` talks to the relay,
//! `ui` draws and reads the terminal; `run` wires them together and owns the timers.

pub mod app;
pub mod input;
pub mod net;
pub mod ui;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, info};

use crate::app::{App, Effect, Event, Line, Style};
use crate::net::{NetEvent, Outgoing};
use crate::ui::{InputEvent, Ui};

/// How long leaving waits for the relay to close the connection after `Bye`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

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
    let (events_tx, events) = mpsc::channel(256);
    let outgoing = connection.start(events_tx);
    let app = App::new(welcome.max_message, options.nick, !ui.is_interactive())
        .with_companion(options.to);
    let code = Chat {
        app,
        ui,
        outgoing,
        events,
        heartbeat: welcome.heartbeat,
        last_sent: Instant::now(),
        last_heard: Instant::now(),
        want_input: false,
    }
    .run()
    .await;
    debug!("client exiting with status {code}");
    code
}

fn line(style: Style, text: impl Into<String>) -> Line {
    Line {
        style,
        text: text.into(),
    }
}

struct Chat {
    app: App,
    ui: Ui,
    outgoing: Outgoing,
    events: mpsc::Receiver<NetEvent>,
    heartbeat: Duration,
    last_sent: Instant,
    last_heard: Instant,
    want_input: bool,
}

impl Chat {
    async fn run(mut self) -> i32 {
        let effects = self.app.start();
        if let Some(code) = self.apply(effects) {
            return self.close(code).await;
        }
        loop {
            // Ping well within the relay's heartbeat so it never mistakes quiet for dead; give up
            // on the relay once it has been silent for a whole interval despite our pings.
            let ping_at = self.last_sent + self.heartbeat / 3;
            let dead_at = self.last_heard + self.heartbeat;
            let room = self.outgoing.has_room();
            let event = tokio::select! {
                net = self.events.recv() => {
                    self.last_heard = Instant::now();
                    match net {
                        Some(NetEvent::Frame(frame)) => Event::Frame(frame),
                        Some(NetEvent::Skipped(why)) => {
                            debug!("skipped a frame from the server: {why}");
                            continue;
                        }
                        Some(NetEvent::Closed(why)) => Event::ConnectionLost(why),
                        None => Event::ConnectionLost("the connection ended".into()),
                    }
                }
                input = self.ui.next_input(), if self.want_input && room => {
                    self.want_input = false;
                    match input {
                        InputEvent::Line(text) => Event::Line(text),
                        InputEvent::BadLine => Event::BadLine,
                        InputEvent::Ended => Event::InputEnded,
                        InputEvent::Interrupted => Event::Interrupted,
                    }
                }
                _ = self.outgoing.room(), if self.want_input && !room => continue,
                _ = tokio::signal::ctrl_c() => Event::Interrupted,
                _ = sleep_until(ping_at.min(dead_at)) => {
                    if Instant::now() >= dead_at {
                        Event::ConnectionLost(format!(
                            "the server stopped answering (nothing heard for {}s)",
                            self.heartbeat.as_secs()
                        ))
                    } else {
                        self.send(p2pchat_proto::Frame::Ping(0));
                        continue;
                    }
                }
            };
            let effects = self.app.handle(event);
            if let Some(code) = self.apply(effects) {
                return self.close(code).await;
            }
        }
    }

    fn send(&mut self, frame: p2pchat_proto::Frame) {
        self.outgoing.send(frame);
        self.last_sent = Instant::now();
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
                Effect::Close { .. } => {}
            }
        }
        close
    }

    /// Sends what is queued, closes our side, and waits (briefly) for the relay to close its
    /// side, so nothing we sent is lost to a reset.
    async fn close(mut self, code: i32) -> i32 {
        self.outgoing.finish();
        let drained = async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, NetEvent::Closed(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, drained).await;
        code
    }
}
