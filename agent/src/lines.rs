//! Splits the bytes of a file into lines, with the byte offsets the registry and the
//! transfer's document ids rely on.
//!
//! A line ends at `\n`; a trailing `\r` is dropped; empty lines are skipped. A line longer
//! than the limit keeps its first `max` bytes and is marked truncated; the rest up to the
//! newline is skipped, so memory stays bounded whatever the file holds. Bytes are shipped as
//! they are (UTF-8 or not).

/// One line (or, after [`crate::multiline`], one event) read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// Byte offset just after its newline: where reading resumes once it is acknowledged.
    pub end: u64,
    /// The bytes, without the newline (and `\r`).
    pub data: Vec<u8>,
    /// The line was longer than the limit and was cut.
    pub truncated: bool,
    /// The entry's `include_lines`/`exclude_lines` drop it: not sent, but acknowledged.
    pub excluded: bool,
}

/// Turns a stream of bytes into [`Line`]s.
pub struct Splitter {
    max: usize,
    /// Offset of the first byte of the line being assembled.
    start: u64,
    /// Offset after the last byte fed.
    pos: u64,
    buf: Vec<u8>,
    truncated: bool,
}

impl Splitter {
    /// A splitter for bytes starting at file offset `offset`, cutting lines at `max` bytes.
    pub fn new(offset: u64, max: usize) -> Splitter {
        Splitter {
            max,
            start: offset,
            pos: offset,
            buf: Vec::new(),
            truncated: false,
        }
    }

    /// Offset after the last byte fed: where the next read continues.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds the next bytes of the file; complete lines are appended to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Line>) {
        while !bytes.is_empty() {
            let (segment, newline) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            self.take(segment);
            let used = segment.len() + usize::from(newline);
            self.pos += used as u64;
            bytes = &bytes[used..];
            if newline {
                self.emit(out);
            }
        }
    }

    /// Ends the partial last line, if any (the file was rotated away or deleted).
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.buf.is_empty() || self.truncated {
            self.emit(out);
        }
    }

    fn take(&mut self, segment: &[u8]) {
        let room = self.max.saturating_sub(self.buf.len());
        if segment.len() > room {
            self.truncated = true;
        }
        self.buf
            .extend_from_slice(&segment[..segment.len().min(room)]);
    }

    fn emit(&mut self, out: &mut Vec<Line>) {
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if !self.buf.is_empty() || self.truncated {
            out.push(Line {
                offset: self.start,
                end: self.pos,
                data: std::mem::take(&mut self.buf),
                truncated: self.truncated,
                excluded: false,
            });
        }
        self.buf.clear();
        self.truncated = false;
        self.start = self.pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<Line>, Splitter) {
        let mut s = Splitter::new(100, max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut out);
        }
        (out, s)
    }

    fn line(offset: u64, end: u64, data: &[u8], truncated: bool) -> Line {
        Line {
            offset,
            end,
            data: data.to_vec(),
            truncated,
            excluded: false,
        }
    }

    #[test]
    fn offsets_crlf_and_empty_lines() {
        let (out, s) = split(&[b"ab\r\n\n\r\nc", b"d\nef"], 1024);
        assert_eq!(
            out,
            [line(100, 104, b"ab", false), line(107, 110, b"cd", false)]
        );
        assert_eq!(s.position(), 112);
    }

    #[test]
    fn partial_line_waits_then_finishes() {
        let (mut out, mut s) = split(&[b"x\npart"], 1024);
        assert_eq!(out.len(), 1);
        s.finish(&mut out);
        assert_eq!(out[1], line(102, 106, b"part", false));
        s.finish(&mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn long_line_is_cut_and_the_rest_skipped() {
        let (out, _) = split(&[b"0123456789", b"abcdef\nok\n"], 8);
        assert_eq!(
            out,
            [
                line(100, 117, b"01234567", true),
                line(117, 120, b"ok", false)
            ]
        );
    }

    #[test]
    fn non_utf8_passes_through() {
        let (out, _) = split(&[b"\xff\xfe bad \xc3\x28\n"], 1024);
        assert_eq!(out[0].data, b"\xff\xfe bad \xc3\x28");
    }
}
