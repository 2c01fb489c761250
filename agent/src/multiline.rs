//! Joins lines into multiline events (Java stack traces): a line that matches the start
//! pattern begins a new event; other lines join the previous one. An event is complete when
//! the next one starts, or when no line joined it for the timeout.

use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::lines::Line;

/// Assembles events from lines of one file.
pub struct Multiline {
    start: Regex,
    timeout: Duration,
    max: usize,
    pending: Option<(Line, Instant)>,
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

    /// Takes the next line; an event it completes is appended to `out`.
    pub fn push(&mut self, line: Line, now: Instant, out: &mut Vec<Line>) {
        match &mut self.pending {
            Some((event, last)) if !self.start.is_match(&line.data) => {
                let room = self.max.saturating_sub(event.data.len());
                let joined = line.data.len() + 1;
                event.data.push(b'\n');
                event
                    .data
                    .extend_from_slice(&line.data[..line.data.len().min(room.saturating_sub(1))]);
                event.truncated |= line.truncated || joined > room;
                event.end = line.end;
                *last = now;
            }
            _ => {
                self.flush(out);
                self.pending = Some((line, now));
            }
        }
    }

    /// When the pending event times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, last)| *last + self.timeout)
    }

    /// Completes the pending event if it timed out.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Line>) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.flush(out);
        }
    }

    /// Completes the pending event now.
    pub fn flush(&mut self, out: &mut Vec<Line>) {
        if let Some((event, _)) = self.pending.take() {
            out.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(offset: u64, data: &str) -> Line {
        Line {
            offset,
            end: offset + data.len() as u64 + 1,
            data: data.as_bytes().to_vec(),
            truncated: false,
            excluded: false,
        }
    }

    #[test]
    fn stack_trace_joins_and_times_out() {
        let mut m = Multiline::new(
            Regex::new(r"^\d{4}-").unwrap(),
            Duration::from_millis(100),
            1024,
        );
        let t = Instant::now();
        let mut out = Vec::new();
        m.push(l(0, "2026-01-01 ERROR boom"), t, &mut out);
        m.push(l(22, "  at a.b(C.java:1)"), t, &mut out);
        m.push(l(41, "  at d.e(F.java:2)"), t, &mut out);
        assert!(out.is_empty());
        m.push(l(60, "2026-01-01 INFO next"), t, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].data,
            b"2026-01-01 ERROR boom\n  at a.b(C.java:1)\n  at d.e(F.java:2)"
        );
        assert_eq!((out[0].offset, out[0].end), (0, 60));
        m.flush_due(t + Duration::from_millis(50), &mut out);
        assert_eq!(out.len(), 1);
        m.flush_due(t + Duration::from_millis(100), &mut out);
        assert_eq!(out[1].data, b"2026-01-01 INFO next");
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn event_is_cut_at_max() {
        let mut m = Multiline::new(Regex::new("^S").unwrap(), Duration::from_secs(1), 10);
        let t = Instant::now();
        let mut out = Vec::new();
        m.push(l(0, "S1234"), t, &mut out);
        m.push(l(6, "abcdefgh"), t, &mut out);
        m.flush(&mut out);
        assert_eq!(out[0].data, b"S1234\nabcd");
        assert!(out[0].truncated);
    }
}
