//! A TCP echo server the way tokio's echo example is written: accept in a
//! loop, one task per connection reading into its own buffer and writing it
//! all back, on a current-thread runtime (one thread, like sockloop). The
//! buffer is 64 KiB (the example's 1 KiB would handicap it on streaming).
//!
//!     tokio-echo PORT   binds 127.0.0.1:PORT (0: any free port) and prints
//!                       `listening tcp-echo 127.0.0.1:PORT`, as sockloop does.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(12345, |p| p.parse().expect("PORT"));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening tcp-echo {}", listener.local_addr()?);

    loop {
        let (mut socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0; 64 * 1024];
            loop {
                let n = match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if socket.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
