//! The byte budget: one bound on the request bodies golive holds in memory at once, across
//! every connection. A body is charged before its bytes are kept (its declared length up front,
//! or each growth of its buffer for a chunked body) and the charge is given back when the
//! request is answered. A request that cannot get its bytes is answered 503 with
//! `Retry-After`, having kept nothing.
//!
//! Webhook deliveries are preferred: API bodies may hold at most half the budget (their own
//! semaphore), so the other half is always there for GitLab, which disables a hook after four
//! consecutive failures.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who asks for bytes: deliveries may use the whole budget, API bodies half of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimant {
    Delivery,
    Api,
}

/// The budget, shared by every request of a router.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    all: Arc<Semaphore>,
    api: Arc<Semaphore>,
}

/// Bytes held by one request; given back when dropped.
#[derive(Debug, Default)]
pub(crate) struct Reservation {
    all: Option<OwnedSemaphorePermit>,
    api: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// How many bytes are held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.all.as_ref().map(OwnedSemaphorePermit::num_permits).unwrap_or(0)
    }
}

impl BodyBudget {
    pub(crate) fn new(total_bytes: usize) -> Self {
        let total_bytes = total_bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget { all: Arc::new(Semaphore::new(total_bytes)), api: Arc::new(Semaphore::new(total_bytes / 2)) }
    }

    /// Bytes free now.
    #[cfg(test)]
    pub(crate) fn available_bytes(&self) -> usize {
        self.all.available_permits()
    }

    /// Adds `bytes` to `reservation`, or leaves it as it was and answers false.
    pub(crate) fn try_grow(&self, reservation: &mut Reservation, claimant: Claimant, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(count) = u32::try_from(bytes) else { return false };
        let api = match claimant {
            Claimant::Delivery => None,
            Claimant::Api => match self.api.clone().try_acquire_many_owned(count) {
                Ok(permit) => Some(permit),
                Err(_) => return false,
            },
        };
        let Ok(all) = self.all.clone().try_acquire_many_owned(count) else {
            // `api` is dropped here: its bytes go back.
            return false;
        };
        merge(&mut reservation.all, all);
        if let Some(api) = api {
            merge(&mut reservation.api, api);
        }
        true
    }
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
    match held {
        Some(permit) => permit.merge(more),
        None => *held = Some(more),
    }
}

/// The error a metered body yields when the budget has no bytes for its next frame (which is
/// dropped unkept): the frame's size in bytes.
#[derive(Debug, thiserror::Error)]
#[error("golive holds as many request bodies as its byte budget allows")]
pub(crate) struct OverBudget(pub(crate) usize);

/// An API request body charged frame by frame against the budget (its buffer grows the same
/// way); the charge lives in `held`, which the request's guard keeps until it is answered.
pub(crate) struct MeteredBody {
    inner: Body,
    budget: Arc<BodyBudget>,
    held: Arc<Mutex<Reservation>>,
}

impl MeteredBody {
    pub(crate) fn wrap(inner: Body, budget: Arc<BodyBudget>, held: Arc<Mutex<Reservation>>) -> Body {
        Body::new(MeteredBody { inner, budget, held })
    }
}

impl http_body::Body for MeteredBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map(Bytes::len).unwrap_or(0);
                let mut held = this.held.lock().expect("reservation lock");
                if this.budget.try_grow(&mut held, Claimant::Api, size) {
                    Poll::Ready(Some(Ok(frame)))
                } else {
                    Poll::Ready(Some(Err(Box::new(OverBudget(size)))))
                }
            }
            // The inner error is passed on unwrapped, so a reader still finds a timeout in it.
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into_inner()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bodies_get_at_most_half_and_deliveries_the_rest() {
        let budget = BodyBudget::new(1000);
        let mut api = Reservation::default();
        assert!(budget.try_grow(&mut api, Claimant::Api, 400));
        assert!(budget.try_grow(&mut api, Claimant::Api, 100));
        assert!(!budget.try_grow(&mut api, Claimant::Api, 1), "API bodies hold at most half");
        assert_eq!(api.bytes(), 500);
        let mut delivery = Reservation::default();
        assert!(budget.try_grow(&mut delivery, Claimant::Delivery, 500));
        assert!(!budget.try_grow(&mut delivery, Claimant::Delivery, 1), "nothing is left");
        assert_eq!(budget.available_bytes(), 0);
        drop(api);
        assert_eq!(budget.available_bytes(), 500, "an answered request gives its bytes back");
        let mut other = Reservation::default();
        assert!(!budget.try_grow(&mut other, Claimant::Delivery, 501));
        assert_eq!(other.bytes(), 0, "a refused growth holds nothing");
        assert!(budget.try_grow(&mut other, Claimant::Delivery, 500));
    }
}
