//! Buffered line and block reading shared by the inbound session and the
//! outbound client. The buffer is exposed so callers can tell whether a peer
//! pipelined bytes it should not have (RFC 3207 §5, RFC 2920 §3.1).

use tokio::io::{AsyncRead, AsyncReadExt};

pub struct LineBuf {
    buf: Vec<u8>,
    start: usize,
}

#[derive(Debug)]
pub enum ReadError {
    Eof,
    TooLong,
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuf {
    pub fn new() -> LineBuf {
        LineBuf { buf: Vec::new(), start: 0 }
    }

    /// Bytes received but not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.buf.len() {
            self.clear();
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        // Idle sessions should not keep a large buffer alive.
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
    }

    /// Reads more bytes from `io`; Eof when the peer closed.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<usize, ReadError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(if self.buf.capacity() < 4096 { 4096 } else { self.buf.capacity() });
        }
        match io.read_buf(&mut self.buf).await? {
            0 => Err(ReadError::Eof),
            n => Ok(n),
        }
    }

    /// One line without its line end (CRLF, or a bare LF tolerated for
    /// commands). Lines over `max` octets are consumed and reported.
    pub async fn read_line<R: AsyncRead + Unpin>(&mut self, io: &mut R, max: usize) -> Result<String, ReadError> {
        let mut scanned = 0;
        loop {
            let pending = self.pending();
            if let Some(pos) = pending[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let line = &pending[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let result = match line.len() > max {
                    true => Err(ReadError::TooLong),
                    false => Ok(String::from_utf8_lossy(line).into_owned()),
                };
                self.consume(end + 1);
                return result;
            }
            scanned = pending.len();
            if scanned > max + 2 {
                // Drop what we have and keep discarding until the line ends.
                self.clear();
                self.skip_line(io).await?;
                return Err(ReadError::TooLong);
            }
            self.fill(io).await?;
        }
    }

    async fn skip_line<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<(), ReadError> {
        loop {
            self.fill(io).await?;
            if let Some(pos) = self.pending().iter().position(|&b| b == b'\n') {
                self.consume(pos + 1);
                return Ok(());
            }
            self.clear();
        }
    }
}
