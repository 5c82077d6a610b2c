//! The frames half of `App`: every frame from the relay, dispatched in order, with the news of
//! the conversation held back while a history answer is on its way so the screen keeps the
//! relay's order. Pure, like the rest of `App`.

use p2pchat_proto::Frame;

use super::{printable, show, typing, App, Effect, Style};

impl App {
    pub(super) fn on_frame(&mut self, frame: Frame) -> Vec<Effect> {
        // What the screen shows about the conversation waits, in order, behind a history answer
        // on its way: messages and news of the companion.
        let waits = matches!(
            frame,
            Frame::Message(_)
                | Frame::Waiting
                | Frame::Paired(_)
                | Frame::WaitingFor(_)
                | Frame::Conversation(_)
                | Frame::Left { .. }
        );
        let mut effects = Vec::new();
        if waits && self.history.holding() {
            if self.held_frames.len() < crate::history::MAX_HELD_BACK {
                self.held_frames.push_back(frame);
                return effects;
            }
            // The answer is taking too long: show what waited, and what comes, at once.
            self.history.stop_holding();
            effects = self.release_held_frames();
        }
        let ends_history = matches!(frame, Frame::HistoryEnd { .. });
        effects.extend(self.handle_frame(frame));
        if ends_history || !self.history.holding() {
            effects.extend(self.release_held_frames());
        }
        effects
    }

    /// Handles the frames held back while history loaded, in order (one may start loading the
    /// next conversation's history, holding back those after it again).
    pub(super) fn release_held_frames(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        for frame in std::mem::take(&mut self.held_frames) {
            effects.extend(self.on_frame(frame));
        }
        effects
    }

    fn handle_frame(&mut self, frame: Frame) -> Vec<Effect> {
        match frame {
            Frame::NickOk { nick, token } => self.on_nick_ok(nick, token),
            Frame::Waiting => self.on_waiting(),
            Frame::Paired(nick) => self.on_paired(&nick),
            Frame::WaitingFor(nick) => self.on_waiting_for(&nick),
            Frame::Conversation(info) => self.on_conversation(info),
            Frame::Message(message) => self.show_message(message),
            Frame::Chunk(chunk) => self.on_chunk(chunk),
            Frame::Released(nick) => vec![show(
                Style::Notice,
                format!(
                    "🔓 Nickname {} released: any key can register it once you leave.",
                    printable(&nick)
                ),
            )],
            Frame::Ack { count, first_seq } => self.on_ack(count, first_seq),
            Frame::Delivered(through) => {
                self.receipts.delivered_through(through);
                Vec::new()
            }
            Frame::Earlier(message) => {
                self.history.earlier(message);
                Vec::new()
            }
            Frame::HistoryEnd { more, .. } => match self.history.end(more) {
                Some(page) => self.print_page(page),
                None => Vec::new(),
            },
            Frame::Online { total, entries } => {
                vec![show(Style::Notice, typing::online_line(total, &entries))]
            }
            Frame::Left { reason, nick } => self.on_left(reason, &nick),
            Frame::Ping(token) => vec![Effect::Send(Frame::Pong(token))],
            Frame::Shutdown(why) => {
                let why = printable(&why);
                if self.reconnect {
                    return self
                        .on_connection_lost(&format!("the server is shutting down ({why})"));
                }
                self.fail(format!("🛑 The chat server is shutting down ({why})"))
            }
            Frame::Error { code, fatal, text } => self.on_error(code, fatal, &text),
            Frame::Pong(_)
            | Frame::Hello { .. }
            | Frame::Welcome { .. }
            | Frame::Nick { .. }
            | Frame::Resume { .. }
            | Frame::Release
            | Frame::Bye
            | Frame::Who
            | Frame::ChatWith(_)
            | Frame::Received(_)
            | Frame::History { .. }
            | Frame::Join(_)
            | Frame::Part
            | Frame::RoomAdmin { .. }
            | Frame::Rooms => Vec::new(),
            Frame::Room(info) => self.on_room(info),
            Frame::Members { more, entries } => self.on_members(more, entries),
            Frame::Said(message) => self.on_said(message),
            Frame::RoomNews(news) => self.on_room_news(news),
            Frame::RoomList { total, entries } => {
                vec![show(
                    Style::Notice,
                    super::rooming::rooms_line(total, &entries),
                )]
            }
        }
    }
}
