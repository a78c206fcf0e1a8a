//! A client's window: how many of its frames are still unanswered.
//!
//! The transport reads a client's socket only while the client has room in
//! its window (fewer than `client_window` frames read whose answer has not
//! yet been written to its socket). An answer returns one unit of credit
//! when the writer has handed it to the socket, not when it is queued: a
//! client that stops reading therefore stops being read after at most
//! `client_window` frames, and the answers it owes room for stay bounded.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The credit of one client connection, shared by its reader and writer.
#[derive(Debug)]
pub(crate) struct ClientWindow {
    unanswered: AtomicUsize,
    limit: usize,
    room: Notify,
}

impl ClientWindow {
    /// A window of `limit` unanswered frames (at least 1).
    pub(crate) fn new(limit: usize) -> Self {
        ClientWindow {
            unanswered: AtomicUsize::new(0),
            limit: limit.max(1),
            room: Notify::new(),
        }
    }

    /// Whether another frame may be read now.
    pub(crate) fn has_room(&self) -> bool {
        self.unanswered.load(Ordering::Acquire) < self.limit
    }

    /// Waits until another frame may be read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub(crate) async fn room(&self) {
        // `notify_one` stores a permit when nobody waits, so an answer
        // written between the check and the wait is not missed.
        while !self.has_room() {
            self.room.notified().await;
        }
    }

    /// One frame was read: it is unanswered until [`answered`](Self::answered).
    pub(crate) fn take(&self) {
        self.unanswered.fetch_add(1, Ordering::AcqRel);
    }

    /// One answer reached the socket. Saturates at zero: a request that is
    /// answered several times (progress reports, attached results) returns
    /// its credit with its first answer.
    pub(crate) fn answered(&self) {
        let before = self
            .unanswered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before.is_ok() {
            self.room.notify_one();
        }
    }

    /// Frames read and not yet answered.
    #[cfg(test)]
    pub(crate) fn unanswered(&self) -> usize {
        self.unanswered.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn counts_and_saturates() {
        let w = ClientWindow::new(2);
        assert!(w.has_room());
        w.take();
        w.take();
        assert!(!w.has_room());
        w.answered();
        assert!(w.has_room());
        w.answered();
        w.answered();
        assert_eq!(w.unanswered(), 0, "never below zero");
        assert!(ClientWindow::new(0).has_room(), "a zero limit means one");
    }

    #[tokio::test]
    async fn a_reader_waits_for_an_answer() {
        let w = Arc::new(ClientWindow::new(1));
        w.take();
        let waiter = tokio::spawn({
            let w = Arc::clone(&w);
            async move { w.room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        w.answered();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
