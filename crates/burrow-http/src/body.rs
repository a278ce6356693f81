//! [`Body`]: the one body type of requests and responses, streaming, boxed and `Send + Sync`, so a
//! body made on one shard can be read on another.
//!
//! Nothing here buffers a whole body except [`Body::collect_limited`], which exists for small
//! bodies (admin JSON, test assertions) and always takes a byte limit.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

/// The error type inside bodies: anything that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the limit the reader set.
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The stream failed (connection reset, a producer aborted it, ...).
    #[error("the body stream failed: {0}")]
    Stream(BoxError),
}

impl BodyError {
    /// Classifies an error from a body stream: a limit that a [`LimitedBody`] enforced further
    /// down stays [`BodyError::TooLarge`].
    pub fn from_stream(error: BoxError) -> BodyError {
        match error.downcast::<BodyError>() {
            Ok(error) => *error,
            Err(error) => BodyError::Stream(error),
        }
    }
}

/// A streaming HTTP body. Build one with [`Body::empty`], `From` (bytes, strings), [`Body::new`]
/// (any `http_body::Body`) or [`Body::channel`] (chunks pushed from a task).
pub struct Body {
    inner: BoxBody<Bytes, BoxError>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Body")
            .field("size_hint", &self.inner.size_hint())
            .finish_non_exhaustive()
    }
}

impl Body {
    /// A body with no bytes.
    pub fn empty() -> Body {
        Body::new(http_body_util::Empty::<Bytes>::new())
    }

    /// A body holding `bytes`.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Body {
        Body::new(http_body_util::Full::new(bytes.into()))
    }

    /// Wraps any body whose chunks are `Bytes`.
    pub fn new<B>(body: B) -> Body
    where
        B: HttpBody<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Body {
            inner: body.map_err(Into::into).boxed(),
        }
    }

    /// A body fed from a task: chunks sent on the [`BodySender`] arrive in order; dropping the
    /// sender ends the body; [`BodySender::abort`] fails it. At most `capacity` chunks wait
    /// between producer and consumer, so a slow reader slows the writer instead of growing memory.
    pub fn channel(capacity: usize) -> (BodySender, Body) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (
            BodySender { sender },
            Body::new(ChannelBody {
                receiver,
                done: false,
            }),
        )
    }

    /// Reads the whole body into memory, failing as soon as it passes `limit` bytes.
    pub async fn collect_limited(mut self, limit: u64) -> Result<Bytes, BodyError> {
        if self.inner.size_hint().lower() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        let mut buffer = BytesMut::new();
        while let Some(frame) = self.inner.frame().await {
            let frame = frame.map_err(BodyError::from_stream)?;
            if let Ok(data) = frame.into_data() {
                if buffer.len() as u64 + data.len() as u64 > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                buffer.extend_from_slice(&data);
            }
        }
        Ok(buffer.freeze())
    }

    /// The next data chunk, skipping trailers; `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            match self.inner.frame().await? {
                Err(error) => return Some(Err(BodyError::from_stream(error))),
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
            }
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::from_bytes(bytes)
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from_bytes(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from_bytes(text)
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::from_bytes(text)
    }
}

/// The writing end of [`Body::channel`].
#[derive(Debug)]
pub struct BodySender {
    sender: mpsc::Sender<Result<Bytes, BoxError>>,
}

/// The reader of a [`Body::channel`] went away; the chunk was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body's reader has gone away")]
pub struct ReaderGone;

impl BodySender {
    /// Sends one chunk, waiting while the channel is full.
    pub async fn send(&self, chunk: impl Into<Bytes>) -> Result<(), ReaderGone> {
        self.sender
            .send(Ok(chunk.into()))
            .await
            .map_err(|_| ReaderGone)
    }

    /// Ends the body with an error: the reader sees it instead of a clean end.
    pub async fn abort(self, error: impl Into<BoxError>) {
        let _ = self.sender.send(Err(error.into())).await;
    }
}

struct ChannelBody {
    receiver: mpsc::Receiver<Result<Bytes, BoxError>>,
    done: bool,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(context) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                self.done = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// A request body that fails once it passes `limit` bytes, and records that it did so that the
/// server can answer 413 whatever the handler made of the error.
pub(crate) struct LimitedBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> LimitedBody<B> {
    pub(crate) fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
            exceeded,
        }
    }
}

impl<B> HttpBody for LimitedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(context) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let length = data.len() as u64;
                    if length > self.remaining {
                        self.exceeded.store(true, Ordering::Relaxed);
                        let limit = self.limit;
                        return Poll::Ready(Some(Err(Box::new(BodyError::TooLarge { limit }))));
                    }
                    self.remaining -= length;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Body>();
        assert_send_sync::<http::Request<Body>>();
        assert_send_sync::<http::Response<Body>>();
        assert_send_sync::<BodySender>();
    }

    #[tokio::test]
    async fn collect_respects_the_limit() {
        let body = Body::from("hello world");
        assert_eq!(
            body.collect_limited(11).await.expect("fits"),
            Bytes::from("hello world")
        );
        let error = Body::from("hello world")
            .collect_limited(10)
            .await
            .expect_err("too long");
        assert!(
            matches!(error, BodyError::TooLarge { limit: 10 }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_channel_body_streams_in_order_and_can_be_aborted() {
        let (sender, mut body) = Body::channel(1);
        let producer = tokio::spawn(async move {
            for chunk in ["a", "b", "c"] {
                sender.send(chunk).await.expect("reader present");
            }
        });
        let mut seen = Vec::new();
        while let Some(chunk) = body.chunk().await {
            seen.push(chunk.expect("chunk"));
        }
        producer.await.expect("producer");
        assert_eq!(seen, ["a", "b", "c"]);

        let (sender, body) = Body::channel(4);
        sender.send("partial").await.expect("send");
        sender.abort("producer failed").await;
        let error = body.collect_limited(1_000).await.expect_err("aborted");
        assert!(error.to_string().contains("producer failed"), "{error}");
    }

    #[tokio::test]
    async fn a_limited_body_fails_past_the_limit_and_flags_it() {
        let (sender, inner) = Body::channel(4);
        let exceeded = Arc::new(AtomicBool::new(false));
        let body = Body::new(LimitedBody::new(inner, 5, Arc::clone(&exceeded)));
        tokio::spawn(async move {
            sender.send("abc").await.expect("send");
            sender.send("def").await.expect("send");
        });
        let error = body.collect_limited(100).await.expect_err("over the limit");
        assert!(error.to_string().contains("limit of 5 bytes"), "{error}");
        assert!(exceeded.load(Ordering::Relaxed));
    }
}
