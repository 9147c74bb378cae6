//! MAIL FROM (RFC 5321 §4.1.1.2) with SIZE, BODY and SMTPUTF8.

use super::session::{Envelope, Flow, Session, Txn};
use crate::smtp::reply::replies;
use crate::smtp::{MailParams, Mailbox, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn mail(&mut self, from: Option<Mailbox>, params: MailParams) -> Flow {
        if self.conn.helo.is_none() {
            return self.reply(replies::bad_sequence("Send EHLO or HELO first"));
        }
        if !matches!(self.txn, Txn::Idle) {
            return self.reply(replies::bad_sequence("Sender already specified"));
        }
        // RFC 1870 §6.3: refuse a declared size above the limit at once.
        if params.size.is_some_and(|s| s > self.shared.cfg.smtp.max_message_size as u64) {
            return self.reply(replies::too_big());
        }
        // RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter.
        if !params.smtputf8 && from.as_ref().is_some_and(|f| !f.to_string().is_ascii()) {
            return self.reply(Reply::new(553, "6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        let declared = params.size.unwrap_or(0);
        if let Some(r) = super::accept::storage_check(&self.shared, declared) {
            return self.reply(r);
        }
        let sender = from.as_ref().map_or("<>".to_string(), |f| f.to_string());
        self.txn = Txn::Mail(Envelope { from, params, rcpts: Vec::new() });
        self.reply(Reply::new(250, "1.0", format!("Sender <{}> OK", sender.trim_matches(['<', '>']))))
    }
}
