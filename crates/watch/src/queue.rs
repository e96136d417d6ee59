//! The bounded buffer between the engine and one watcher's consumer.
//!
//! The stream task pushes, the [`Watcher`](crate::Watcher) pops. It is a
//! small mutex-protected deque rather than a channel for two reasons:
//!
//! * **Lag detection without blocking.** A push that does not fit returns
//!   [`Pushed::Full`] at once (the shared stream never waits for one slow
//!   consumer) and marks the queue *lagging*; the consumer, when it has
//!   emptied the queue, tells the engine so that the watcher can be
//!   re-created from its next revision.
//! * **Memory.** An idle watcher costs one small allocation; a channel
//!   would pre-allocate a block of slots per watcher.
//!
//! Capacity counts events (a batch costs its event count, at least 1). A
//! batch is always accepted into an empty queue, however large, so a
//! watcher always makes progress.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use etcd_tower_core::EtcdError;

use crate::watcher::WatchBatch;

/// What a watcher's consumer receives.
pub(crate) type Item = Result<WatchBatch, EtcdError>;

/// The outcome of a push.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued.
    Accepted,
    /// Did not fit; the queue is now marked lagging.
    Full,
    /// The consumer is gone; nothing was queued.
    ConsumerGone,
}

/// One watcher's buffer; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Queue {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    items: VecDeque<Item>,
    /// Sum of the costs of the queued items.
    load: usize,
    capacity: usize,
    waker: Option<Waker>,
    /// A push did not fit; cleared (and reported) when the consumer has
    /// emptied the queue.
    lagging: bool,
    /// Nothing more will be pushed: the stream ends after the queued items.
    finished: bool,
    consumer_gone: bool,
    /// The consumer asked for a progress notification and the engine has
    /// not taken the request yet.
    progress_asked: bool,
}

/// What a pop found.
#[derive(Debug)]
pub(crate) struct Popped {
    /// The next item, the end, or pending.
    pub(crate) item: Poll<Option<Item>>,
    /// The queue was lagging and is now empty: the engine should re-create
    /// the watcher.
    pub(crate) drained_after_lag: bool,
}

fn cost(batch: &WatchBatch) -> usize {
    batch.events().len().max(1)
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                load: 0,
                capacity: capacity.max(1),
                waker: None,
                lagging: false,
                finished: false,
                consumer_gone: false,
                progress_asked: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a batch of events, or marks the queue lagging if it does not
    /// fit.
    pub(crate) fn push_events(&self, batch: WatchBatch) -> Pushed {
        let mut state = self.lock();
        if state.consumer_gone || state.finished {
            return Pushed::ConsumerGone;
        }
        let cost = cost(&batch);
        if !state.items.is_empty() && state.load.saturating_add(cost) > state.capacity {
            state.lagging = true;
            return Pushed::Full;
        }
        state.load = state.load.saturating_add(cost);
        state.items.push_back(Ok(batch));
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Pushed::Accepted
    }

    /// Queues a progress notification if it fits; a full queue skips it
    /// (it carries no event, and a newer one will come).
    pub(crate) fn push_progress(&self, batch: WatchBatch) -> bool {
        let mut state = self.lock();
        if state.consumer_gone || state.finished || state.lagging {
            return false;
        }
        if !state.items.is_empty() && state.load.saturating_add(1) > state.capacity {
            return false;
        }
        state.load = state.load.saturating_add(1);
        state.items.push_back(Ok(batch));
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Ends the stream after the queued items, with `error` as its last
    /// item. Does nothing if it already ended.
    pub(crate) fn finish(&self, error: Option<EtcdError>) {
        let mut state = self.lock();
        if state.finished {
            return;
        }
        state.finished = true;
        if let Some(error) = error {
            if !state.consumer_gone {
                state.items.push_back(Err(error));
            }
        }
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Marks a progress request as asked; `false` if one is already
    /// waiting for the engine (so each watcher has at most one in flight).
    pub(crate) fn ask_progress(&self) -> bool {
        !std::mem::replace(&mut self.lock().progress_asked, true)
    }

    /// The engine took the watcher's progress request.
    pub(crate) fn progress_taken(&self) {
        self.lock().progress_asked = false;
    }

    /// Whether the queue is marked lagging.
    pub(crate) fn is_lagging(&self) -> bool {
        self.lock().lagging
    }

    /// The consumer takes the next item.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Popped {
        let mut state = self.lock();
        let Some(item) = state.items.pop_front() else {
            if state.finished {
                return Popped {
                    item: Poll::Ready(None),
                    drained_after_lag: false,
                };
            }
            match &mut state.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            return Popped {
                item: Poll::Pending,
                drained_after_lag: false,
            };
        };
        if let Ok(batch) = &item {
            state.load = state.load.saturating_sub(cost(batch));
        }
        let drained_after_lag = state.lagging && state.items.is_empty();
        if drained_after_lag {
            state.lagging = false;
        }
        Popped {
            item: Poll::Ready(Some(item)),
            drained_after_lag,
        }
    }

    /// The consumer went away: drop what is queued, accept nothing more.
    pub(crate) fn close_consumer(&self) {
        let mut state = self.lock();
        state.consumer_gone = true;
        state.items.clear();
        state.load = 0;
        state.waker = None;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use etcd_tower_core::proto::mvccpb::Event;
    use etcd_tower_core::ErrorKind;
    use futures_util::task::noop_waker;

    fn batch(events: usize) -> WatchBatch {
        WatchBatch::new(Default::default(), vec![Event::default(); events], false)
    }

    fn pop(queue: &Queue) -> Popped {
        let waker = noop_waker();
        queue.poll_pop(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_full_queue_lags_and_reports_when_drained() {
        let queue = Queue::new(3);
        assert_eq!(queue.push_events(batch(2)), Pushed::Accepted);
        assert_eq!(queue.push_events(batch(1)), Pushed::Accepted);
        assert_eq!(queue.push_events(batch(1)), Pushed::Full);
        assert!(queue.is_lagging());
        // Progress is skipped while lagging.
        assert!(!queue.push_progress(batch(0)));
        let first = pop(&queue);
        assert!(matches!(first.item, Poll::Ready(Some(Ok(_)))));
        assert!(!first.drained_after_lag);
        let second = pop(&queue);
        assert!(second.drained_after_lag, "empty after lagging");
        assert!(!queue.is_lagging());
        assert!(pop(&queue).item.is_pending());
    }

    #[test]
    fn an_empty_queue_takes_any_batch() {
        let queue = Queue::new(2);
        assert_eq!(queue.push_events(batch(10)), Pushed::Accepted);
        assert_eq!(queue.push_events(batch(1)), Pushed::Full);
    }

    #[test]
    fn finish_ends_after_the_queued_items() {
        let queue = Queue::new(8);
        assert_eq!(queue.push_events(batch(1)), Pushed::Accepted);
        queue.finish(Some(EtcdError::client(ErrorKind::Closed, "closed")));
        queue.finish(None);
        assert!(matches!(pop(&queue).item, Poll::Ready(Some(Ok(_)))));
        assert!(matches!(pop(&queue).item, Poll::Ready(Some(Err(_)))));
        assert!(matches!(pop(&queue).item, Poll::Ready(None)));
        assert_eq!(queue.push_events(batch(1)), Pushed::ConsumerGone);
    }

    #[test]
    fn a_closed_consumer_accepts_nothing() {
        let queue = Queue::new(8);
        queue.close_consumer();
        assert_eq!(queue.push_events(batch(1)), Pushed::ConsumerGone);
        assert!(!queue.push_progress(batch(0)));
    }
}
