//! Authenticated WebSocket links between cluster nodes: sans-IO codec, handshake, heartbeats, reconnect.
