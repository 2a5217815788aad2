//! [`Coalescing`]: the byte stream of a served connection, presented to HTTP/2 so that
//! small frames share one write.
//!
//! h2 copies a DATA frame into its write buffer only when the payload is shorter than its
//! chaining threshold: 256 bytes when the stream has vectored writes, 1 KiB when it has
//! not. A longer payload is chained behind the buffer instead, and the buffer takes no
//! further frame until that payload is written. A verification answer is a few hundred
//! bytes, so with 64 calls in flight on one connection every answer cost its own
//! `writev`, about two system calls per call in all. Behind this wrapper, which reports
//! no vectored writes, answers under 1 KiB are copied (a few hundred bytes each) and the
//! answers ready together leave in one write; larger payloads are still chained.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's stream (TCP or TLS) that tells its writers to copy small frames into
/// one buffer rather than hand the kernel a list of pieces. Reads and writes pass through.
#[derive(Debug)]
pub struct Coalescing<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for Coalescing<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalescing<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn bytes_pass_through_both_ways_and_vectored_writes_are_not_offered() {
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (Coalescing(a), Coalescing(b));
        assert!(!a.is_write_vectored());
        a.write_all(b"answer").await.unwrap();
        a.flush().await.unwrap();
        let mut got = [0u8; 6];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");
        b.write_all(b"ok").await.unwrap();
        b.shutdown().await.unwrap();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"ok");
    }
}
