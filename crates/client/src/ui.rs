//! The line-mode terminal: prints chat lines and reads typed lines.
//!
//! Interactive (stdin is a terminal): rustyline edits the line being typed, and lines arriving
//! meanwhile are printed above the prompt through its external printer, which redraws the prompt
//! and the half-typed text. A guard restores the terminal's settings when the client ends, even if
//! it ends while a line is being edited. Scripted (stdin is not a terminal): no prompts, no
//! colours, one line per event on stdout, input read as lines from stdin.

use std::io::{BufRead, Write};

use owo_colors::OwoColorize;
use rustyline::error::ReadlineError;
use rustyline::ExternalPrinter;
use tokio::sync::mpsc;

use crate::app::{Line, Prompt, Style};

/// A line of input, or why there is none.
#[derive(Debug)]
pub enum InputEvent {
    /// A typed line, without its line ending.
    Line(String),
    /// A line that was not UTF-8.
    BadLine,
    /// End of input.
    Ended,
    /// Ctrl+C while editing.
    Interrupted,
}

type Printer = Box<dyn ExternalPrinter + Send>;

/// The terminal, in one of its two modes.
pub struct Ui {
    inputs: mpsc::Receiver<InputEvent>,
    /// An input event taken off the queue while looking for more lines, to be returned next.
    pending: Option<InputEvent>,
    prompts: Option<std::sync::mpsc::Sender<Prompt>>,
    printer: Option<Printer>,
    colour: bool,
    guard: Option<TerminalGuard>,
}

impl Ui {
    /// The interactive UI when stdin is a terminal and the line editor starts; else scripted.
    pub fn new(interactive: bool) -> Self {
        if interactive {
            if let Some(ui) = Self::interactive() {
                return ui;
            }
        }
        Self::scripted()
    }

    fn interactive() -> Option<Self> {
        let guard = TerminalGuard::save();
        let mut editor = rustyline::DefaultEditor::new().ok()?;
        let printer: Printer = Box::new(editor.create_external_printer().ok()?);
        let (prompts, prompt_rx) = std::sync::mpsc::channel::<Prompt>();
        let (tx, inputs) = mpsc::channel(1);
        std::thread::spawn(move || {
            while let Ok(prompt) = prompt_rx.recv() {
                let event = match editor.readline(prompt.text()) {
                    Ok(line) => {
                        if prompt == Prompt::Message && !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        InputEvent::Line(line)
                    }
                    Err(ReadlineError::Interrupted) => InputEvent::Interrupted,
                    Err(_) => InputEvent::Ended,
                };
                if tx.blocking_send(event).is_err() {
                    break;
                }
            }
        });
        let colour = std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
        Some(Self {
            inputs,
            pending: None,
            prompts: Some(prompts),
            printer: Some(printer),
            colour,
            guard,
        })
    }

    fn scripted() -> Self {
        // Room for a batch of piped lines to be ready at once (see `ready_lines`).
        let (tx, inputs) = mpsc::channel(64);
        std::thread::spawn(move || read_stdin_lines(tx));
        Self {
            inputs,
            pending: None,
            prompts: None,
            printer: None,
            colour: false,
            guard: None,
        }
    }

    /// Whether prompts and the line editor are in use.
    pub fn is_interactive(&self) -> bool {
        self.prompts.is_some()
    }

    /// Prints a line of the chat view without disturbing the line being typed.
    pub fn show(&mut self, line: &Line) {
        let text = self.paint(line);
        match &mut self.printer {
            Some(printer) => {
                if printer.print(format!("{text}\n")).is_err() {
                    print_plain(&text);
                }
            }
            None => print_plain(&text),
        }
    }

    fn paint(&self, line: &Line) -> String {
        if !self.colour {
            return line.text.clone();
        }
        match line.style {
            Style::Plain => line.text.clone(),
            Style::Companion => line.text.cyan().to_string(),
            Style::Earlier => line.text.dimmed().to_string(),
            Style::Notice => line.text.yellow().to_string(),
            Style::Error => line.text.red().bold().to_string(),
        }
    }

    /// Asks for the next line (interactive mode shows `prompt`; scripted mode has none).
    pub fn ask(&mut self, prompt: Prompt) {
        if let Some(prompts) = &self.prompts {
            let _ = prompts.send(prompt);
        }
    }

    /// The next input event, once one was asked for.
    pub async fn next_input(&mut self) -> InputEvent {
        if let Some(event) = self.pending.take() {
            return event;
        }
        self.inputs.recv().await.unwrap_or(InputEvent::Ended)
    }

    /// Up to `max` further lines that are already there (piped or pasted input), without
    /// waiting; anything else that is there (end of input) is kept for `next_input`.
    pub fn ready_lines(&mut self, max: usize) -> Vec<String> {
        let mut lines = Vec::new();
        while lines.len() < max && self.pending.is_none() {
            match self.inputs.try_recv() {
                Ok(InputEvent::Line(line)) => lines.push(line),
                Ok(other) => self.pending = Some(other),
                Err(_) => break,
            }
        }
        lines
    }

    /// Restores the terminal and switches to plain printing for the last lines: the line editor
    /// may still be waiting for a key (`editing`), and it must not keep the terminal in raw mode.
    pub fn finish(&mut self, editing: bool) {
        if let Some(guard) = self.guard.take() {
            drop(guard);
            if editing {
                // Leave the half-typed line as it is and start the last lines below it.
                print_plain("");
            }
        }
        self.printer = None;
    }
}

/// Prints a line to stdout; a closed stdout (the reader went away) is not an error worth dying
/// for, so failures are ignored rather than panicking as `println!` would.
fn print_plain(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

fn read_stdin_lines(tx: mpsc::Sender<InputEvent>) {
    let mut stdin = std::io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let event = match stdin.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => InputEvent::Ended,
            Ok(_) => {
                let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                match std::str::from_utf8(line) {
                    Ok(text) => InputEvent::Line(text.to_owned()),
                    Err(_) => InputEvent::BadLine,
                }
            }
        };
        let ended = matches!(event, InputEvent::Ended);
        if tx.blocking_send(event).is_err() || ended {
            return;
        }
    }
}

/// The terminal settings from before the line editor touched them, put back on drop.
struct TerminalGuard {
    saved: nix::sys::termios::Termios,
}

impl TerminalGuard {
    fn save() -> Option<Self> {
        let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok()?;
        Some(Self { saved })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSADRAIN,
            &self.saved,
        );
    }
}
