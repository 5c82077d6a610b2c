//! Words for the log and for messages: frames without what people wrote (bodies are envelopes
//! anyway, but their size is all the log needs), and durations as the user would type them.

use std::time::Duration;

use p2pchat_proto::Frame;

/// A frame for the trace log, without what people wrote.
pub fn describe_frame(frame: &Frame) -> String {
    match frame {
        Frame::Message(message) => format!(
            "Message {{ seq: {}, id: {:02x?}, {} bytes }}",
            message.seq,
            &message.id[..4],
            message.body.len()
        ),
        Frame::Earlier(message) => format!(
            "Earlier {{ seq: {}, mine: {}, {} bytes }}",
            message.seq,
            message.mine,
            message.body.len()
        ),
        Frame::NickOk { nick, .. } => format!("NickOk {{ nick: {nick:?} }}"),
        Frame::Resume { nick, .. } => format!("Resume {{ nick: {nick:?} }}"),
        Frame::Nick { nick, .. } => format!("Nick {{ nick: {nick:?} }}"),
        other => format!("{other:?}"),
    }
}

/// `5m`, `30s`, `1500ms`: a `--retry-for` value as the user would write it.
pub fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 {
        format!("{}ms", duration.as_millis())
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
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
