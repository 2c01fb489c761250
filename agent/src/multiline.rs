//! Joins lines into multiline events (Java stack traces): a line that matches the start
//! pattern begins a new event; other lines join the previous one. An event is complete when
//! the next one starts, or when no line joined it for the timeout.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::lines::{Line, Lines};

/// An event being assembled: its first line's offset, the end of its last line, its bytes.
struct Event {
    offset: u64,
    end: u64,
    data: Vec<u8>,
    truncated: bool,
}

/// Assembles events from lines of one file.
pub struct Multiline {
    start: Regex,
    timeout: Duration,
    max: usize,
    pending: Option<(Event, Instant)>,
}

impl Multiline {
    /// Events start at lines matching `start`; they are cut at `max` bytes like lines are.
    pub fn new(start: Regex, timeout: Duration, max: usize) -> Multiline {
        Multiline {
            start,
            timeout,
            max,
            pending: None,
        }
    }

    /// Takes the next line, `data` its bytes; an event it completes is appended to `out`.
    pub fn push(&mut self, line: &Line, data: &[u8], now: Instant, out: &mut Lines) {
        match &mut self.pending {
            Some((event, last)) if !self.start.is_match(data) => {
                let room = self.max.saturating_sub(event.data.len());
                let joined = data.len() + 1;
                event.data.push(b'\n');
                event
                    .data
                    .extend_from_slice(&data[..data.len().min(room.saturating_sub(1))]);
                event.truncated |= line.truncated || joined > room;
                event.end = line.end;
                *last = now;
            }
            _ => {
                self.flush(out);
                let event = Event {
                    offset: line.offset,
                    end: line.end,
                    data: data.to_vec(),
                    truncated: line.truncated,
                };
                self.pending = Some((event, now));
            }
        }
    }

    /// When the pending event times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, last)| *last + self.timeout)
    }

    /// Takes each of `lines` in order, as [`Multiline::push`] does.
    pub fn push_all(&mut self, lines: &Lines, now: Instant, out: &mut Lines) {
        for (line, data) in lines.iter() {
            self.push(line, data, now, out);
        }
    }

    /// Completes the pending event if it timed out.
    pub fn flush_due(&mut self, now: Instant, out: &mut Lines) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.flush(out);
        }
    }

    /// Completes the pending event now.
    pub fn flush(&mut self, out: &mut Lines) {
        if let Some((event, _)) = self.pending.take() {
            out.push(event.offset, event.end, &event.data, event.truncated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of `data` at `offset`, each followed by a newline.
    fn lines(items: &[(u64, &str)]) -> Lines {
        let mut out = Lines::default();
        for (offset, data) in items {
            out.push(
                *offset,
                offset + data.len() as u64 + 1,
                data.as_bytes(),
                false,
            );
        }
        out
    }

    /// The events as (offset, end, text, truncated).
    fn events(out: &Lines) -> Vec<(u64, u64, String, bool)> {
        out.iter()
            .map(|(l, d)| {
                (
                    l.offset,
                    l.end,
                    String::from_utf8_lossy(d).into_owned(),
                    l.truncated,
                )
            })
            .collect()
    }

    #[test]
    fn stack_trace_joins_and_times_out() {
        let mut m = Multiline::new(
            Regex::new(r"^\d{4}-").unwrap(),
            Duration::from_millis(100),
            1024,
        );
        let t = Instant::now();
        let mut out = Lines::default();
        let input = lines(&[
            (0, "2026-01-01 ERROR boom"),
            (22, "  at a.b(C.java:1)"),
            (41, "  at d.e(F.java:2)"),
            (60, "2026-01-01 INFO next"),
        ]);
        let mut input = input.iter();
        for (line, data) in input.by_ref().take(3) {
            m.push(line, data, t, &mut out);
        }
        assert!(out.is_empty());
        let (line, data) = input.next().unwrap();
        m.push(line, data, t, &mut out);
        let trace = "2026-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)";
        assert_eq!(events(&out), [(0, 60, trace.to_string(), false)]);
        m.flush_due(t + Duration::from_millis(50), &mut out);
        assert_eq!(out.len(), 1);
        m.flush_due(t + Duration::from_millis(100), &mut out);
        assert_eq!(
            events(&out)[1],
            (60, 81, "2026-01-01 INFO next".into(), false)
        );
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn event_is_cut_at_max() {
        let mut m = Multiline::new(Regex::new("^S").unwrap(), Duration::from_secs(1), 10);
        let t = Instant::now();
        let mut out = Lines::default();
        m.push_all(&lines(&[(0, "S1234"), (6, "abcdefgh")]), t, &mut out);
        m.flush(&mut out);
        assert_eq!(events(&out), [(0, 15, "S1234\nabcd".into(), true)]);
    }
}
