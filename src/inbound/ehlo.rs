//! EHLO and HELO (RFC 5321 §4.1.1.1).

use super::session::{Flow, Session, Txn};
use crate::smtp::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn ehlo(&mut self, helo: String, esmtp: bool) -> Flow {
        // RFC 5321 §4.1.4: EHLO ends any transaction in progress.
        self.txn = Txn::Idle;
        let cfg = &self.shared.cfg.smtp;
        let greeting = format!("{} Hello {} [{}]", cfg.hostname, helo, self.peer.ip());
        self.conn.helo = Some(helo);
        self.conn.esmtp = esmtp;
        if !esmtp {
            return self.reply(Reply::plain(250, greeting));
        }
        let mut lines = vec![
            greeting,
            "PIPELINING".into(),
            format!("SIZE {}", cfg.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        // RFC 3207 §4.2: STARTTLS is not offered again once TLS is on.
        if !self.conn.tls {
            lines.push("STARTTLS".into());
        }
        self.reply(Reply::plain(250, lines.join("\n")))
    }
}
