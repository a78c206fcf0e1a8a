//! Jobs, worker pools, the Coordinator, dispatch strategies, retries, timeouts and statistics.
