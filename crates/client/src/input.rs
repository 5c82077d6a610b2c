//! What a typed line means: a command or a message. Pure; no terminal, no network.

use crate::history::{DEFAULT_PAGE, MAX_PAGE};

/// One line of user input, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing but white space: nothing is sent.
    Empty,
    /// A chat message, as typed (a leading `//` stands for a literal `/`).
    Message(String),
    /// A command.
    Command(Command),
    /// `/something` that is not a command.
    Unknown(String),
    /// A command with arguments it does not take; the text is its usage.
    Usage(String),
}

/// A client command, as listed by `/help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Leave the chat and quit.
    Exit,
    /// List the commands.
    Help,
    /// Ask who is online.
    Who,
    /// Chat with this nickname (`None`: with whoever comes next).
    Chat(Option<String>),
    /// Show this many messages from before the oldest one shown.
    History(u32),
    /// Show the conversation's safety number and both keys' fingerprints.
    Verify,
    /// Show this client's nickname and key fingerprint.
    Whoami,
    /// Give up ownership of the nickname, so another key can register it.
    Release,
    /// Offer the file at this path to the companion.
    Send(String),
    /// Accept a file offer: the latest, or the one named or numbered.
    Accept(Option<String>),
    /// Decline a file offer: the latest, or the one named or numbered.
    Decline(Option<String>),
    /// Stop every file transfer under way.
    Cancel,
    /// Join (or create) this room.
    Join(String),
    /// Leave the current room for good.
    Leave,
    /// List the rooms.
    Rooms,
    /// Show the current room's members.
    Members,
    /// An order to the current room (owner only): invite, kick, ban, unban, invite-only.
    Room(p2pchat_proto::RoomAction, String),
}

/// Every command with its arguments and one-line help, in the order `/help` shows them.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "/exit",
        "",
        "leave the chat and quit (also Ctrl+C or Ctrl+D)",
    ),
    (
        "/who",
        "",
        "list who is online and whether they are chatting",
    ),
    (
        "/chat",
        "NAME",
        "chat with NAME (waits until they are free); /chat alone: anyone",
    ),
    (
        "/history",
        "[N]",
        "show N earlier messages of this conversation (default 20)",
    ),
    (
        "/verify",
        "",
        "show the safety number to compare with your companion (end-to-end check)",
    ),
    (
        "/whoami",
        "",
        "show your nickname and your key's fingerprint",
    ),
    (
        "/release",
        "",
        "give up your nickname: any key can register it once you leave",
    ),
    (
        "/send",
        "PATH…",
        "offer files (a directory: its files) to your companion, end-to-end encrypted",
    ),
    (
        "/accept",
        "[NAME|N|all]",
        "receive the latest file offered to you (or the one named, numbered, or all)",
    ),
    (
        "/decline",
        "[NAME|N|all]",
        "refuse a file offered to you (or all of them)",
    ),
    ("/cancel", "", "stop the file transfers under way"),
    (
        "/join",
        "ROOM",
        "go into ROOM (created if new: you own it); /leave leaves it for good",
    ),
    ("/rooms", "", "list the open rooms and yours"),
    (
        "/members",
        "",
        "list the members of your room and who is here",
    ),
    (
        "/invite",
        "NAME",
        "room owner: let NAME join (needed once the room is invite-only)",
    ),
    ("/kick", "NAME", "room owner: remove NAME from the room"),
    (
        "/ban",
        "NAME",
        "room owner: remove NAME and keep them out (/unban NAME)",
    ),
    (
        "/invite-only",
        "on|off",
        "room owner: only invited people may join, or anyone",
    ),
    ("/help", "", "show this list"),
];

/// The `/help` text, generated from `COMMANDS`.
pub fn help_lines() -> Vec<String> {
    let mut lines = vec!["Commands:".to_owned()];
    lines.extend(COMMANDS.iter().map(|(name, args, help)| {
        let usage = format!("{name} {args}");
        format!("  {usage:<18} {help}")
    }));
    lines.push("  //text             send a message that starts with '/'".to_owned());
    lines
}

/// Interprets one line (without its line ending).
pub fn parse_line(line: &str) -> Input {
    if line.trim().is_empty() {
        return Input::Empty;
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Input::Message(format!("/{literal}"));
    }
    if line.starts_with('/') {
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        // The whole rest of the line: "/chat two words" must be refused, not read as "two".
        let argument = Some(rest.trim().to_owned()).filter(|rest| !rest.is_empty());
        let command = match word.to_ascii_lowercase().as_str() {
            "/exit" => Command::Exit,
            "/help" => Command::Help,
            "/who" => Command::Who,
            "/chat" => Command::Chat(argument),
            "/verify" => Command::Verify,
            "/whoami" => Command::Whoami,
            "/release" => Command::Release,
            "/send" => match argument {
                Some(typed) => Command::Send(typed),
                None => return Input::Usage("/send PATH [PATH…]".into()),
            },
            "/accept" => Command::Accept(argument),
            "/decline" => Command::Decline(argument),
            "/cancel" => Command::Cancel,
            "/join" => match argument {
                Some(room) => Command::Join(room),
                None => return Input::Usage("/join ROOM".into()),
            },
            "/leave" => Command::Leave,
            "/rooms" => Command::Rooms,
            "/members" => Command::Members,
            "/invite" | "/kick" | "/ban" | "/unban" => {
                use p2pchat_proto::RoomAction;
                let action = match word.to_ascii_lowercase().as_str() {
                    "/invite" => RoomAction::Invite,
                    "/kick" => RoomAction::Kick,
                    "/ban" => RoomAction::Ban,
                    _ => RoomAction::Unban,
                };
                match argument {
                    Some(nick) => Command::Room(action, nick),
                    None => return Input::Usage(format!("{} NAME", word.to_ascii_lowercase())),
                }
            }
            "/invite-only" => match argument.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("on") => Command::Room(p2pchat_proto::RoomAction::InviteOnly, String::new()),
                Some("off") => Command::Room(p2pchat_proto::RoomAction::Open, String::new()),
                _ => return Input::Usage("/invite-only on|off".into()),
            },
            "/history" => match history_page(argument.as_deref()) {
                Some(n) => Command::History(n),
                None => {
                    return Input::Usage(format!("/history [N], N a number from 1 to {MAX_PAGE}"))
                }
            },
            _ => return Input::Unknown(word.to_owned()),
        };
        return Input::Command(command);
    }
    Input::Message(line.to_owned())
}

/// The `N` of `/history [N]`, if it is one.
fn history_page(argument: Option<&str>) -> Option<u32> {
    match argument {
        None => Some(DEFAULT_PAGE),
        Some(text) => text.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_a_message_kept_as_typed() {
        assert_eq!(parse_line("Sup"), Input::Message("Sup".into()));
        assert_eq!(
            parse_line("  two  spaces "),
            Input::Message("  two  spaces ".into())
        );
        assert_eq!(parse_line("Hi:>"), Input::Message("Hi:>".into()));
    }

    #[test]
    fn blank_lines_send_nothing() {
        assert_eq!(parse_line(""), Input::Empty);
        assert_eq!(parse_line("   \t"), Input::Empty);
    }

    #[test]
    fn commands_are_recognised() {
        assert_eq!(parse_line("/exit"), Input::Command(Command::Exit));
        assert_eq!(parse_line("/EXIT"), Input::Command(Command::Exit));
        assert_eq!(parse_line("/exit now"), Input::Command(Command::Exit));
        assert_eq!(parse_line("/help"), Input::Command(Command::Help));
        assert_eq!(parse_line("/who"), Input::Command(Command::Who));
        assert_eq!(
            parse_line("/chat Nick2"),
            Input::Command(Command::Chat(Some("Nick2".into())))
        );
        assert_eq!(parse_line("/chat"), Input::Command(Command::Chat(None)));
        assert_eq!(
            parse_line("/chat two words"),
            Input::Command(Command::Chat(Some("two words".into())))
        );
        assert_eq!(parse_line("/nope x"), Input::Unknown("/nope".into()));
        assert_eq!(parse_line("/verify"), Input::Command(Command::Verify));
        assert_eq!(parse_line("/Release"), Input::Command(Command::Release));
        assert_eq!(parse_line("/whoami"), Input::Command(Command::Whoami));
    }

    #[test]
    fn history_takes_an_optional_count() {
        assert_eq!(parse_line("/history"), Input::Command(Command::History(20)));
        assert_eq!(
            parse_line("/HISTORY 50"),
            Input::Command(Command::History(50))
        );
        for bad in [
            "/history 0",
            "/history lots",
            "/history 1001",
            "/history 5 6",
        ] {
            assert!(matches!(parse_line(bad), Input::Usage(_)), "{bad}");
        }
    }

    #[test]
    fn file_commands_take_their_arguments() {
        assert_eq!(
            parse_line("/send my report.pdf"),
            Input::Command(Command::Send("my report.pdf".into()))
        );
        assert_eq!(
            parse_line("/send '/tmp/a b.txt'"),
            Input::Command(Command::Send("'/tmp/a b.txt'".into())),
            "quotes are the runner's business: it knows which paths exist"
        );
        assert!(matches!(parse_line("/send"), Input::Usage(_)));
        assert_eq!(parse_line("/accept"), Input::Command(Command::Accept(None)));
        assert_eq!(
            parse_line("/decline 2"),
            Input::Command(Command::Decline(Some("2".into())))
        );
        assert_eq!(parse_line("/cancel"), Input::Command(Command::Cancel));
    }

    #[test]
    fn double_slash_sends_a_literal_slash() {
        assert_eq!(parse_line("//exit"), Input::Message("/exit".into()));
    }

    #[test]
    fn help_lists_every_command() {
        let help = help_lines().join("\n");
        for (name, _, _) in COMMANDS {
            assert!(help.contains(name));
        }
    }
}
