//! Typed values that layers exchange through request and response
//! extensions, so that they can cooperate without depending on each other.
//!
//! The watch engine and the auth layer are the main users: the engine must
//! tell a watch stream opened with a stale token from a genuine permission
//! denial, and it does so from these structural signals, never from the
//! server's message text.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which auth token a call or stream was sent with.
///
/// A number that grows each time the auth layer obtains a new token. The
/// auth layer inserts it into the response extensions of every stream it
/// opens, and of every unary call whose request carries
/// [`ReportTokenGeneration`]. A stack without an auth layer reports none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenGeneration(pub u64);

/// Put in a request's extensions to ask the auth layer to report the
/// [`TokenGeneration`] the call was finally sent with (after any refresh).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportTokenGeneration;

/// Put in a request's extensions to tell the auth layer that the token of
/// this generation is suspected stale: a stream opened with it was refused,
/// while a probe with the same token succeeded (simple tokens live in each
/// member's memory, so the probe may have reached another member that still
/// knows the token). The layer obtains a new token before sending this call,
/// unless it already holds a newer one; concurrent renewals of the same
/// generation share one `Authenticate`. A stack without an auth layer
/// ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewToken(pub TokenGeneration);

/// The generation of the token the auth layer holds *now*, readable at any
/// time.
///
/// A stream's [`TokenGeneration`] says which token it was opened with; this
/// says which token a stream opened now would carry. The auth layer puts a
/// clone of its cell into the response extensions of every stream it opens
/// (beside the stream's `TokenGeneration`) and advances it whenever it
/// obtains a token, whichever call caused the login. The watch engine keeps
/// the cell: before it sends a create on an open stream, or when the server
/// refuses one, a stream whose token has been replaced meanwhile (it
/// expired, and a unary call logged in again) is re-opened at once with the
/// current token, instead of collecting a refusal and probing it. A stack
/// without an auth layer puts none.
///
/// ```
/// use etcd_tower_core::signal::{CurrentTokenGeneration, TokenGeneration};
///
/// let cell = CurrentTokenGeneration::default();
/// let seen_by_engine = cell.clone();
/// cell.advance(TokenGeneration(2));
/// cell.advance(TokenGeneration(1)); // never moves back
/// assert_eq!(seen_by_engine.get(), TokenGeneration(2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct CurrentTokenGeneration(Arc<AtomicU64>);

impl CurrentTokenGeneration {
    /// A cell holding `generation`.
    pub fn new(generation: TokenGeneration) -> Self {
        CurrentTokenGeneration(Arc::new(AtomicU64::new(generation.0)))
    }

    /// The generation of the token held now.
    pub fn get(&self) -> TokenGeneration {
        TokenGeneration(self.0.load(Ordering::Acquire))
    }

    /// Records that a token of `generation` is now held; a smaller value
    /// than the current one is ignored.
    pub fn advance(&self, generation: TokenGeneration) {
        self.0.fetch_max(generation.0, Ordering::AcqRel);
    }
}
