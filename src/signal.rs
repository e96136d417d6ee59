//! Typed values that layers exchange through request and response
//! extensions, so that they can cooperate without depending on each other.
//!
//! The watch engine and the auth layer are the main users: the engine must
//! tell a watch stream opened with a stale token from a genuine permission
//! denial, and it does so from these structural signals, never from the
//! server's message text.

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
