//! Sans-IO protocol logic: line framing, TCP echo, UDP echo, chat and
//! daytime. Bytes
//! (and, where a rule needs it, a source address) go in; bytes to send and
//! actions for the reactor come out. Nothing in this module imports mio or
//! touches a socket, which is what lets the tests and fuzz targets drive every
//! state machine directly, with any chunking of input.

pub mod chat;
pub mod daytime;
pub mod echo;
pub mod line;
pub mod udp_echo;
