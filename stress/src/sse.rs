//! A Server-Sent Events reader: bytes in (however the network cut them),
//! events out. Follows the `text/event-stream` rules a browser uses: lines
//! end in `\n`, `\r\n` or `\r`; `event:` names the event, `data:` lines are
//! joined with `\n`; a comment (`:`) is a keep-alive; a blank line sends
//! the event (an event without data is not sent).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the server named none.
    pub event: String,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct EventParser {
    /// The unfinished line.
    line: Vec<u8>,
    /// The last byte seen was a `\r` (a `\n` right after it ends nothing).
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    /// Comment lines seen (keep-alives).
    pub comments: u64,
}

impl EventParser {
    /// Reads `bytes`, appending every event they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&line, out);
                    self.line = line;
                    self.line.clear();
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
    }

    fn line_ended(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                out.push(SseEvent {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    },
                    data,
                });
            }
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pieces: &[&[u8]]) -> (Vec<SseEvent>, u64) {
        let mut parser = EventParser::default();
        let mut out = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut out);
        }
        (out, parser.comments)
    }

    fn status(data: &str) -> SseEvent {
        SseEvent {
            event: "status".into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream =
            b"event: status\ndata: {\"a\":1}\n\n:\n\nevent: status\r\ndata: {\"a\":2}\r\n\r\n";
        let whole = parse(&[stream]);
        assert_eq!(whole.0, vec![status("{\"a\":1}"), status("{\"a\":2}")]);
        assert_eq!(whole.1, 1);
        for cut in 0..stream.len() {
            assert_eq!(
                parse(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse(&bytewise), whole);
    }

    #[test]
    fn data_lines_join_and_lone_cr_ends_a_line() {
        let (events, _) = parse(&[b"data: a\rdata:b\ndata:  c\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: "message".into(),
                data: "a\nb\n c".into()
            }]
        );
        // No data: nothing is sent, and the name does not leak on.
        let (events, _) = parse(&[b"event: status\n\ndata: x\n\n"]);
        assert_eq!(events[0].event, "message");
    }
}
