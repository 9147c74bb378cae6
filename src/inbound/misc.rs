//! The small verbs: RSET, NOOP, VRFY, EXPN, HELP, QUIT, AUTH and STARTTLS.

use super::session::{Flow, Session, Txn};
use crate::smtp::reply::replies;
use crate::smtp::{Command, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn simple(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Rset => {
                self.txn = Txn::Idle;
                self.reply(replies::ok())
            }
            Command::Noop => self.reply(replies::ok()),
            // RFC 5321 §3.5.3: 252 when the server will not verify.
            Command::Vrfy => {
                self.reply(Reply::new(252, "1.5", "Cannot VRFY user, but will accept message and attempt delivery"))
            }
            Command::Expn => self.reply(Reply::new(502, "5.1", "EXPN not available")),
            Command::Auth => self.reply(Reply::new(502, "5.1", "AUTH not available on this service")),
            Command::Help => self.reply(Reply::new(
                214,
                "0.0",
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS\nSee RFC 5321",
            )),
            Command::Quit => {
                let bye = format!("{} Service closing transmission channel", self.shared.cfg.smtp.hostname);
                self.reply(Reply::new(221, "0.0", bye));
                Flow::Close
            }
            _ => unreachable!("dispatched elsewhere"),
        }
    }

    pub fn starttls(&mut self) -> Flow {
        if self.conn.tls {
            return self.reply(replies::bad_sequence("TLS already active"));
        }
        if !self.conn.esmtp {
            return self.reply(replies::bad_sequence("Send EHLO first"));
        }
        // CVE-2011-0411: bytes sent after STARTTLS but before the handshake
        // must not be read as commands of the TLS session (RFC 3207 §5).
        if !self.buf.pending().is_empty() {
            self.reply(replies::improper_pipelining());
            return Flow::Close;
        }
        self.reply(Reply::new(220, "0.0", "Ready to start TLS"));
        Flow::StartTls
    }
}
