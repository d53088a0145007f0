//! The clients: `send`, `chat` and `talk`, each a small mio loop of its own.

pub mod chat;
pub mod send;
pub mod talk;
