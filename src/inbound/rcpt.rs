//! RCPT TO (RFC 5321 §4.1.1.3): the relay check, the recipient limit and
//! optional verification against the next hop.

use super::session::{Flow, Session, Txn};
use crate::queue::verify::Verdict;
use crate::smtp::reply::replies;
use crate::smtp::{Mailbox, Reply};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub async fn rcpt(&mut self, mut to: Mailbox) -> Flow {
        let Txn::Mail(env) = &self.txn else {
            return self.reply(replies::bad_sequence("Send MAIL FROM first"));
        };
        let cfg = &self.shared.cfg;
        if env.rcpts.len() >= cfg.smtp.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client
            // sends the rest in another transaction.
            return self.reply(Reply::new(452, "5.3", "Too many recipients"));
        }
        if to.domain.is_empty() {
            // <postmaster> (RFC 5321 §4.5.1) goes to the first accepted domain.
            to.domain = cfg.relay.domains[0].to_lowercase();
        }
        if !env.params.smtputf8 && !to.to_string().is_ascii() {
            return self.reply(Reply::new(553, "6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        // No open relay: only the configured domains are accepted.
        if !cfg.relay.domains.iter().any(|d| d.eq_ignore_ascii_case(&to.domain)) {
            return self.reply(Reply::new(550, "7.1", format!("<{to}>: Relay access denied")));
        }
        if cfg.relay.verify_recipients {
            match self.shared.verifier.check(self.shared.queue.ctx(), &to.to_string()).await {
                Verdict::Accept => {}
                Verdict::Reject(why) => {
                    tracing::info!(client = %self.peer.ip(), rcpt = %to, reply = %why, "recipient refused by verification");
                    return self.reply(Reply::new(
                        550,
                        "1.1",
                        format!("<{to}>: Recipient address rejected: User unknown"),
                    ));
                }
                Verdict::Unknown(why) => {
                    tracing::warn!(client = %self.peer.ip(), rcpt = %to, error = %why, "recipient verification failed");
                    return self.reply(Reply::new(
                        451,
                        "4.3",
                        format!("<{to}>: Recipient verification unavailable, try again later"),
                    ));
                }
            }
        }
        let Txn::Mail(env) = &mut self.txn else { unreachable!("checked above") };
        let reply = Reply::new(250, "1.5", format!("Recipient <{to}> OK"));
        if !env.rcpts.contains(&to) {
            env.rcpts.push(to);
        }
        self.reply(reply)
    }
}
