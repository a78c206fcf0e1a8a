//! Actors with bounded mailboxes, ask with timeout, supervision and a local registry.
