//! The message-content receiver for DATA and BDAT, without I/O.
//!
//! It undoes dot-stuffing (RFC 5321 §4.5.2), finds the end of DATA, and
//! checks every line. Only `CRLF . CRLF` ends DATA: a bare LF or bare CR is
//! never a line end here (RFC 5321 §2.3.8), so payloads such as `\n.\n` or
//! `\r\n.\n` cannot end the message early and smuggle a second one in. A
//! bare CR or LF marks the message as rejected; the receiver still consumes
//! input up to the real terminator so the session stays in sync.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    TooBig,
    LineTooLong,
    HeaderTooBig,
    BareNewline,
}

#[derive(Debug, Clone, Copy)]
pub struct DataLimits {
    pub max_size: usize,
    pub max_line: usize,
    pub max_header: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    LineStart,
    Dot,
    DotCr,
    Mid,
    Cr,
}

pub struct DataReceiver {
    state: State,
    dot_stuffed: bool,
    limits: DataLimits,
    line_len: usize,
    in_header: bool,
    header_len: usize,
    received: usize,
    error: Option<DataError>,
}

impl DataReceiver {
    /// A receiver for DATA: dot-stuffed and terminated by `CRLF.CRLF`.
    pub fn data(limits: DataLimits) -> Self {
        Self::new(limits, true)
    }

    /// A receiver for BDAT chunks: raw octets, no terminator (RFC 3030 §2).
    pub fn bdat(limits: DataLimits) -> Self {
        Self::new(limits, false)
    }

    fn new(limits: DataLimits, dot_stuffed: bool) -> Self {
        DataReceiver {
            state: State::LineStart,
            dot_stuffed,
            limits,
            line_len: 0,
            in_header: true,
            header_len: 0,
            received: 0,
            error: None,
        }
    }

    /// The first violation seen, if any.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    /// Feeds `input`, appending content to `out`. Returns `Some(n)` when the
    /// end of DATA was found after consuming `n` bytes of `input`; `None`
    /// when all of it was consumed and more is needed.
    pub fn ingest(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Mid {
                // Fast path: copy up to the next CR or LF in one go.
                let run = input[i..].iter().position(|&b| b == b'\r' || b == b'\n');
                let end = run.map_or(input.len(), |r| i + r);
                self.content(&input[i..end], out);
                i = end;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            if self.step(b, out) {
                return Some(i);
            }
        }
        None
    }

    /// Ends a BDAT transfer: a message must end with CRLF; a missing one is
    /// added, a dangling CR is a bare CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.state {
            State::Cr => self.fail(DataError::BareNewline),
            State::Mid => self.content(b"\r\n", out),
            _ => {}
        }
    }

    /// One byte of the state machine; true at the end of DATA.
    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        use State::*;
        match (self.state, b) {
            (LineStart, b'.') if self.dot_stuffed => self.state = Dot,
            (DotCr, b'\n') => return true,
            (DotCr, _) => {
                self.fail(DataError::BareNewline);
                self.state = Mid;
                self.other(b, out);
            }
            (Cr, b'\n') => self.line_end(out),
            (Cr, _) => {
                self.fail(DataError::BareNewline);
                self.state = Mid;
                self.other(b, out);
            }
            (Dot, b'\r') => self.state = DotCr,
            // The stuffed dot is dropped; the byte after it starts the line.
            (Dot, _) => {
                self.state = Mid;
                self.other(b, out);
            }
            (_, _) => self.other(b, out),
        }
        false
    }

    fn other(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' => self.state = State::Cr,
            // A bare LF never ends a line; the next byte is not at a line start.
            b'\n' => {
                self.fail(DataError::BareNewline);
                self.state = State::Mid;
            }
            _ => {
                self.state = State::Mid;
                self.content(&[b], out);
            }
        }
    }

    fn line_end(&mut self, out: &mut Vec<u8>) {
        if self.in_header && self.line_len == 0 {
            self.in_header = false;
        }
        self.line_len = 0;
        self.state = State::LineStart;
        self.push(b"\r\n", out);
    }

    /// Line content (never CR or LF).
    fn content(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.line_len += bytes.len();
        // RFC 5322 §2.1.1 limits lines to 998 octets; the limit is configurable.
        if self.line_len > self.limits.max_line {
            self.fail(DataError::LineTooLong);
        }
        self.push(bytes, out);
    }

    fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.received += bytes.len();
        if self.in_header {
            self.header_len += bytes.len();
            if self.header_len > self.limits.max_header {
                self.fail(DataError::HeaderTooBig);
            }
        }
        if self.received > self.limits.max_size {
            self.fail(DataError::TooBig);
        }
        if self.error.is_none() {
            out.extend_from_slice(bytes);
        }
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

/// Dot-stuffs canonical CRLF content for sending with DATA and appends the
/// terminator (RFC 5321 §4.5.2).
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 64 + 8);
    let mut line_start = true;
    for &b in content {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !content.is_empty() && !content.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DataLimits = DataLimits { max_size: 1 << 20, max_line: 998, max_header: 1000 };

    fn run(input: &[u8]) -> (Option<usize>, Vec<u8>, Option<DataError>) {
        let mut r = DataReceiver::data(LIMITS);
        let mut out = Vec::new();
        // Feed one byte at a time: the state must survive any split.
        let mut end = None;
        for (i, b) in input.iter().enumerate() {
            if r.ingest(std::slice::from_ref(b), &mut out).is_some() {
                end = Some(i + 1);
                break;
            }
        }
        (end, out, r.error())
    }

    #[test]
    fn plain_and_stuffed() {
        let (end, out, err) = run(b"A: b\r\n\r\n..x\r\n.\r\nMAIL");
        assert_eq!(end, Some(16));
        assert_eq!(out, b"A: b\r\n\r\n.x\r\n");
        assert_eq!(err, None);
        assert_eq!(run(b".\r\n").0, Some(3));
    }

    #[test]
    fn smuggling_payloads_never_end_data() {
        for p in [&b"a\n.\nMAIL"[..], b"a\r\n.\nMAIL", b"a\n.\r\nMAIL", b"a\r.\rMAIL", b"a\r\n.\rMAIL"] {
            let (end, _, err) = run(p);
            assert_eq!(end, None, "{p:?}");
            assert_eq!(err, Some(DataError::BareNewline), "{p:?}");
        }
        // After the smuggling attempt only the real terminator ends the message.
        let (end, _, err) = run(b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n");
        assert_eq!(end, Some(24));
        assert_eq!(err, Some(DataError::BareNewline));
    }

    #[test]
    fn limits() {
        let long = [b'x'; 999];
        let mut msg = b"\r\n".to_vec();
        msg.extend_from_slice(&long);
        msg.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&msg).2, Some(DataError::LineTooLong));
        let mut hdr = Vec::new();
        for _ in 0..20 {
            hdr.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789012345678901234\r\n");
        }
        hdr.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&hdr).2, Some(DataError::HeaderTooBig));
    }

    #[test]
    fn bdat_is_raw_and_checked() {
        let mut r = DataReceiver::bdat(LIMITS);
        let mut out = Vec::new();
        assert_eq!(r.ingest(b"A: b\r\n\r\n.x\r\n.\r", &mut out), None);
        assert_eq!(r.ingest(b"\nend", &mut out), None);
        r.finish(&mut out);
        assert_eq!(out, b"A: b\r\n\r\n.x\r\n.\r\nend\r\n");
        assert_eq!(r.error(), None);
        let mut r = DataReceiver::bdat(LIMITS);
        r.ingest(b"a\nb", &mut out);
        assert_eq!(r.error(), Some(DataError::BareNewline));
    }

    #[test]
    fn stuffing_round_trip() {
        let content = b"a\r\n.b\r\n..\r\n";
        let wire = dot_stuff(content);
        assert_eq!(wire, b"a\r\n..b\r\n...\r\n.\r\n");
        let (_, out, _) = run(&wire);
        assert_eq!(out, content);
    }

    /// Random inputs made of the interesting bytes, fed whole and in random
    /// chunks: the outcome must not depend on how the bytes were split.
    #[test]
    fn chunking_never_changes_the_outcome() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let input: Vec<u8> = (0..len).map(|_| b"\r\n.ab"[(next() % 5) as usize]).collect();
            let mut whole = DataReceiver::data(LIMITS);
            let mut out_whole = Vec::new();
            let end_whole = whole.ingest(&input, &mut out_whole);
            let mut split = DataReceiver::data(LIMITS);
            let mut out_split = Vec::new();
            let (mut pos, mut end_split) = (0, None);
            while pos < input.len() && end_split.is_none() {
                let n = 1 + (next() % 7) as usize;
                let chunk = &input[pos..(pos + n).min(input.len())];
                end_split = split.ingest(chunk, &mut out_split).map(|used| pos + used);
                pos += chunk.len();
            }
            assert_eq!(end_whole, end_split, "{input:?}");
            assert_eq!(out_whole, out_split, "{input:?}");
            assert_eq!(whole.error(), split.error(), "{input:?}");
            // The end is only ever right after CRLF.CRLF.
            if let Some(e) = end_whole {
                assert!(e >= 3 && &input[e - 3..e] == b".\r\n", "{input:?}");
                assert!(e == 3 || &input[e - 5..e - 3] == b"\r\n", "{input:?}");
            }
        }
    }
}
