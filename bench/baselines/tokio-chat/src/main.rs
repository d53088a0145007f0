//! A line chat server in the style of tokio's chat example, on a
//! current-thread runtime: shared state behind a mutex maps each peer to an
//! unbounded channel; one task per client selects between a line from its
//! socket (`LinesCodec`) and a message from its channel, and a broadcast
//! sends every other peer its own copy of the line. It speaks the part of
//! sockloop's chat protocol that `sockloop bench chat` needs (see README.md).
//!
//!     tokio-chat PORT [--batch]
//!
//! binds 127.0.0.1:PORT (0: any free port) and prints `listening chat
//! 127.0.0.1:PORT`, as sockloop does. As in tokio's example, each line taken
//! from the channel is written and flushed on its own: one `write` per line
//! per recipient. With `--batch`, a task takes every line already waiting in
//! its channel into the codec's buffer and flushes them together, as a
//! reactor that writes once per turn does.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};

type Tx = mpsc::UnboundedSender<String>;
type Rx = mpsc::UnboundedReceiver<String>;

/// Everyone in #lobby, by guest number (numbers follow connection order).
struct Shared {
    peers: HashMap<u64, Tx>,
    last_guest: u64,
}

impl Shared {
    /// Every peer but `sender` gets its own copy of `message`.
    fn broadcast(&self, sender: u64, message: &str) {
        for (&guest, tx) in &self.peers {
            if guest != sender {
                let _ = tx.send(message.into());
            }
        }
    }

    /// `* users in #lobby: guest1, guest2, ...` in the order they joined.
    fn who(&self) -> String {
        let mut guests: Vec<u64> = self.peers.keys().copied().collect();
        guests.sort_unstable();
        let names: Vec<String> = guests.iter().map(|g| format!("guest{g}")).collect();
        format!("* users in #lobby: {}", names.join(", "))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(12346, |p| p.parse().expect("PORT"));
    let batch = std::env::args().nth(2).is_some_and(|a| a == "--batch");
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening chat {}", listener.local_addr()?);
    let state = Arc::new(Mutex::new(Shared {
        peers: HashMap::new(),
        last_guest: 0,
    }));

    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        // Join here, in accept order: the welcome is the first line in the
        // new peer's channel, and every later peer's join notice reaches it.
        let (tx, rx) = mpsc::unbounded_channel();
        let guest = {
            let mut state = state.lock().await;
            state.last_guest += 1;
            let guest = state.last_guest;
            // sockloop's welcome, word for word: its bench and client know a
            // chat server by it.
            let _ = tx.send(format!(
                "* welcome to sockloop chat, you are guest{guest} in #lobby; /help lists commands"
            ));
            state.broadcast(guest, &format!("* guest{guest} joined #lobby"));
            state.peers.insert(guest, tx);
            guest
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = process(&state, stream, guest, rx, batch).await;
            let mut state = state.lock().await;
            state.peers.remove(&guest);
            state.broadcast(guest, &format!("* guest{guest} left #lobby"));
        });
    }
}

/// One client's life: relay its lines, deliver what others send it.
async fn process(
    state: &Mutex<Shared>,
    stream: TcpStream,
    guest: u64,
    mut rx: Rx,
    batch: bool,
) -> Result<(), LinesCodecError> {
    let mut lines = Framed::new(stream, LinesCodec::new());
    loop {
        tokio::select! {
            Some(message) = rx.recv() => {
                if batch {
                    lines.feed(&message).await?;
                    while let Ok(more) = rx.try_recv() {
                        lines.feed(&more).await?;
                    }
                    SinkExt::<&str>::flush(&mut lines).await?;
                } else {
                    lines.send(&message).await?;
                }
            }
            result = lines.next() => match result {
                Some(Ok(line)) => match line.as_str() {
                    "" => {}
                    "bye" | "/quit" => return lines.send("* bye").await,
                    "/who" => {
                        let who = state.lock().await.who();
                        lines.send(&who).await?;
                    }
                    "/help" => lines.send("* commands (tokio-chat): /who, /quit").await?,
                    _ if line.starts_with('/') => {
                        lines.send("* error: tokio-chat knows only /who, /help and /quit").await?;
                    }
                    _ => state.lock().await.broadcast(guest, &format!("<guest{guest}> {line}")),
                },
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}
