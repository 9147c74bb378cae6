//! The SMTP protocol without I/O: commands, replies, paths and the DATA/BDAT
//! content receiver. Everything here is pure and table-tested.

pub mod address;
pub mod command;
pub mod data;
pub mod reply;

pub use address::Mailbox;
pub use command::{Command, MailParams};
pub use reply::Reply;
