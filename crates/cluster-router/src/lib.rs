//! Actor addresses, the envelope, routing, membership and gossip.
