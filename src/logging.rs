//! Log set-up: the server logs to stderr in the design's `date time - LEVEL - message` form (or
//! JSON); the client logs nowhere unless asked (`-v` to stderr, `--log-file`), so diagnostics
//! never mix with the chat view.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How server log lines look.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// `2026-11-25 15:45:22 - INFO - 🚀 Chat server started on localhost:8888`
    Text,
    /// One JSON object per line.
    Json,
}

/// `RUST_LOG` when set, else `level` for p2pchat's own crates and warnings from the rest.
fn filter(level: Level) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = level.as_str().to_lowercase();
        EnvFilter::new(format!(
            "warn,p2pchat={level},p2pchat_server={level},p2pchat_client={level}"
        ))
    })
}

/// Server logging to stderr.
pub fn init_server(level: Level, format: Format) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_writer(std::io::stderr);
    match format {
        Format::Text => builder.event_format(DesignFormat).init(),
        Format::Json => builder.json().init(),
    }
}

/// Client logging: to `file` if given, else to stderr only when `-v` was given.
pub fn init_client(level: Level, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .event_format(DesignFormat);
    if let Some(path) = file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("Could not open the log file {}", path.display()))?;
        builder.with_writer(std::sync::Mutex::new(file)).init();
    } else if level > Level::INFO {
        builder.with_writer(std::io::stderr).init();
    }
    Ok(())
}

/// The design's log line: local time, level, message.
struct DesignFormat;

impl<S, N> FormatEvent<S, N> for DesignFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        write!(writer, "{now} - {} - ", event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
