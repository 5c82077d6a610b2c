//! What a typed line means: a command or a message. Pure; no terminal, no network.

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
}

/// A client command, as listed by `/help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Leave the chat and quit.
    Exit,
    /// List the commands.
    Help,
}

/// Every command with its one-line help, in the order `/help` shows them.
pub const COMMANDS: &[(&str, Command, &str)] = &[
    (
        "/exit",
        Command::Exit,
        "leave the chat and quit (also Ctrl+C or Ctrl+D)",
    ),
    ("/help", Command::Help, "show this list"),
];

/// The `/help` text, generated from `COMMANDS`.
pub fn help_lines() -> Vec<String> {
    let mut lines = vec!["Commands:".to_owned()];
    lines.extend(
        COMMANDS
            .iter()
            .map(|(name, _, help)| format!("  {name:<8} {help}")),
    );
    lines.push("  //text   send a message that starts with '/'".to_owned());
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
        let word = line.split_whitespace().next().unwrap_or(line);
        return COMMANDS
            .iter()
            .find(|(name, _, _)| name.eq_ignore_ascii_case(word))
            .map(|(_, command, _)| Input::Command(*command))
            .unwrap_or_else(|| Input::Unknown(word.to_owned()));
    }
    Input::Message(line.to_owned())
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
        assert_eq!(parse_line("/nope x"), Input::Unknown("/nope".into()));
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
