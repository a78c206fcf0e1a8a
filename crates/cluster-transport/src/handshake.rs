//! The node handshake as a sans-IO state machine (no sockets, no clock).
//!
//! ```text
//! dialer                                  listener
//!   Hello { version, node, nonce_d }  ->
//!                                     <-  Challenge { version, node, nonce_l, proof_l }
//!   (verify proof_l)
//!   Proof { proof_d }                 ->
//!                                         (verify proof_d, apply the duplicate rule)
//!                                     <-  Welcome | Duplicate
//! ```
//!
//! `proof_x = HMAC-SHA256(secret, label_x | nonce_d | nonce_l | dialer | listener)`
//! with distinct labels per role, so each side proves the secret over fresh
//! nonces bound to both names, and the secret never crosses the wire. Either
//! side may answer `Refuse { reason }` instead; a version mismatch states both
//! versions. The socket layer feeds received frames to `on_frame` and sends
//! what it returns; the timeout is the socket layer's business.

use crate::auth::{self, Role};
use crate::config::Secret;
use crate::error::HandshakeError;
use crate::wire::{Block, ControlFrame, RefuseReason};

/// Longest accepted node name, in bytes.
const MAX_NODE_NAME: usize = 255;

/// What the socket layer must do after feeding a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send this frame and wait for the next one.
    Reply(ControlFrame),
    /// Dialer: the listener gave its verdict; `accepted` is false for
    /// `Duplicate`. Listener: the dialer is authenticated; answer with
    /// `Welcome` or `Duplicate`.
    Done { peer: String, accepted: bool },
    /// The handshake failed; send `reply` (if any), then close.
    Fail {
        reply: Option<ControlFrame>,
        error: HandshakeError,
    },
}

/// Identity and secret shared by both roles.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub(crate) local: String,
    pub(crate) secret: Secret,
    pub(crate) version: u32,
}

#[derive(Debug)]
enum DialerState {
    AwaitChallenge { nonce: Block },
    AwaitVerdict { peer: String },
    Finished,
}

/// The dialing side.
#[derive(Debug)]
pub(crate) struct Dialer {
    params: Params,
    state: DialerState,
}

impl Dialer {
    /// Starts a handshake; returns the machine and the `Hello` to send.
    pub(crate) fn start(params: Params) -> (Dialer, ControlFrame) {
        let nonce = auth::nonce();
        let hello = ControlFrame::Hello {
            version: params.version,
            node: params.local.clone(),
            nonce,
        };
        (
            Dialer {
                params,
                state: DialerState::AwaitChallenge { nonce },
            },
            hello,
        )
    }

    /// The listener's name once its challenge has been verified.
    pub(crate) fn peer(&self) -> Option<&str> {
        match &self.state {
            DialerState::AwaitVerdict { peer } => Some(peer),
            _ => None,
        }
    }

    /// Feeds one received control frame.
    pub(crate) fn on_frame(&mut self, frame: ControlFrame) -> Step {
        match std::mem::replace(&mut self.state, DialerState::Finished) {
            DialerState::AwaitChallenge { nonce } => self.await_challenge(nonce, frame),
            DialerState::AwaitVerdict { peer } => Self::await_verdict(peer, frame, &self.params),
            DialerState::Finished => protocol_violation("frame after handshake end"),
        }
    }

    fn await_challenge(&mut self, dialer_nonce: Block, frame: ControlFrame) -> Step {
        let (version, peer, listener_nonce, proof) = match frame {
            ControlFrame::Challenge {
                version,
                node,
                nonce,
                proof,
            } => (version, node, nonce, proof),
            ControlFrame::Refuse { reason } => return refused_by_peer(reason, &self.params),
            _ => return protocol_violation("expected Challenge"),
        };
        if let Some(fail) = check_peer(&self.params, version, &peer) {
            return fail;
        }
        let p = &self.params;
        let expected = auth::proof(
            &p.secret,
            Role::Listener,
            &dialer_nonce,
            &listener_nonce,
            &p.local,
            &peer,
        );
        if !auth::verify_proof(&expected, &proof) {
            return auth_failed();
        }
        let mine = auth::proof(
            &p.secret,
            Role::Dialer,
            &dialer_nonce,
            &listener_nonce,
            &p.local,
            &peer,
        );
        self.state = DialerState::AwaitVerdict { peer };
        Step::Reply(ControlFrame::Proof { proof: mine })
    }

    fn await_verdict(peer: String, frame: ControlFrame, params: &Params) -> Step {
        match frame {
            ControlFrame::Welcome => Step::Done {
                peer,
                accepted: true,
            },
            ControlFrame::Duplicate => Step::Done {
                peer,
                accepted: false,
            },
            ControlFrame::Refuse { reason } => refused_by_peer(reason, params),
            _ => protocol_violation("expected Welcome or Duplicate"),
        }
    }
}

#[derive(Debug)]
enum ListenerState {
    AwaitHello,
    AwaitProof {
        dialer_nonce: Block,
        listener_nonce: Block,
        peer: String,
    },
    Finished,
}

/// The accepting side.
#[derive(Debug)]
pub(crate) struct Listener {
    params: Params,
    state: ListenerState,
}

impl Listener {
    /// A listener waiting for `Hello`.
    pub(crate) fn new(params: Params) -> Listener {
        Listener {
            params,
            state: ListenerState::AwaitHello,
        }
    }

    /// Feeds one received control frame.
    pub(crate) fn on_frame(&mut self, frame: ControlFrame) -> Step {
        match std::mem::replace(&mut self.state, ListenerState::Finished) {
            ListenerState::AwaitHello => self.await_hello(frame),
            ListenerState::AwaitProof {
                dialer_nonce,
                listener_nonce,
                peer,
            } => self.await_proof(frame, dialer_nonce, listener_nonce, peer),
            ListenerState::Finished => protocol_violation("frame after handshake end"),
        }
    }

    fn await_hello(&mut self, frame: ControlFrame) -> Step {
        let ControlFrame::Hello {
            version,
            node: peer,
            nonce: dialer_nonce,
        } = frame
        else {
            return protocol_violation("expected Hello");
        };
        if let Some(fail) = check_peer(&self.params, version, &peer) {
            return fail;
        }
        let p = &self.params;
        let listener_nonce = auth::nonce();
        let proof = auth::proof(
            &p.secret,
            Role::Listener,
            &dialer_nonce,
            &listener_nonce,
            &peer,
            &p.local,
        );
        let challenge = ControlFrame::Challenge {
            version: p.version,
            node: p.local.clone(),
            nonce: listener_nonce,
            proof,
        };
        self.state = ListenerState::AwaitProof {
            dialer_nonce,
            listener_nonce,
            peer,
        };
        Step::Reply(challenge)
    }

    fn await_proof(
        &mut self,
        frame: ControlFrame,
        dialer_nonce: Block,
        listener_nonce: Block,
        peer: String,
    ) -> Step {
        let proof = match frame {
            ControlFrame::Proof { proof } => proof,
            ControlFrame::Refuse { reason } => return refused_by_peer(reason, &self.params),
            _ => return protocol_violation("expected Proof"),
        };
        let p = &self.params;
        let expected = auth::proof(
            &p.secret,
            Role::Dialer,
            &dialer_nonce,
            &listener_nonce,
            &peer,
            &p.local,
        );
        if !auth::verify_proof(&expected, &proof) {
            return auth_failed();
        }
        Step::Done {
            peer,
            accepted: true,
        }
    }
}

/// Version and name checks common to both roles.
fn check_peer(params: &Params, version: u32, peer: &str) -> Option<Step> {
    if version != params.version {
        return Some(Step::Fail {
            reply: Some(ControlFrame::Refuse {
                reason: RefuseReason::VersionMismatch {
                    ours: params.version,
                    yours: version,
                },
            }),
            error: HandshakeError::VersionMismatch {
                local: params.version,
                remote: version,
            },
        });
    }
    if peer.is_empty() || peer.len() > MAX_NODE_NAME || peer == params.local {
        return Some(Step::Fail {
            reply: Some(ControlFrame::Refuse {
                reason: RefuseReason::BadName,
            }),
            error: HandshakeError::BadName(peer.to_owned()),
        });
    }
    None
}

fn auth_failed() -> Step {
    Step::Fail {
        reply: Some(ControlFrame::Refuse {
            reason: RefuseReason::AuthFailed,
        }),
        error: HandshakeError::AuthFailed,
    }
}

fn protocol_violation(what: &'static str) -> Step {
    Step::Fail {
        reply: Some(ControlFrame::Refuse {
            reason: RefuseReason::Protocol,
        }),
        error: HandshakeError::Unexpected(what),
    }
}

/// Maps the peer's refusal to our error (the peer's "ours" is our "remote").
fn refused_by_peer(reason: RefuseReason, params: &Params) -> Step {
    let error = match reason {
        RefuseReason::VersionMismatch { ours, yours } => HandshakeError::VersionMismatch {
            local: yours,
            remote: ours,
        },
        RefuseReason::AuthFailed => HandshakeError::AuthFailed,
        RefuseReason::BadName => HandshakeError::BadName(params.local.clone()),
        RefuseReason::Protocol => HandshakeError::Refused("protocol violation".to_owned()),
    };
    Step::Fail { reply: None, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(name: &str, secret: &str, version: u32) -> Params {
        Params {
            local: name.to_owned(),
            secret: Secret::from(secret),
            version,
        }
    }

    /// Runs both machines against each other in memory.
    fn run(d: Params, l: Params) -> (Step, Step) {
        let (mut dialer, hello) = Dialer::start(d);
        let mut listener = Listener::new(l);
        let mut to_listener = hello;
        loop {
            let step = listener.on_frame(to_listener);
            let to_dialer = match step {
                Step::Reply(f) => f,
                Step::Done { .. } => {
                    return (dialer.on_frame(ControlFrame::Welcome), step);
                }
                Step::Fail { reply, error } => {
                    let d = reply.map(|f| dialer.on_frame(f));
                    return (
                        d.unwrap_or(Step::Reply(ControlFrame::Heartbeat)),
                        Step::Fail { reply: None, error },
                    );
                }
            };
            match dialer.on_frame(to_dialer) {
                Step::Reply(f) => to_listener = f,
                other => {
                    let l = match &other {
                        Step::Fail { reply: Some(f), .. } => listener.on_frame(f.clone()),
                        _ => Step::Reply(ControlFrame::Heartbeat),
                    };
                    return (other, l);
                }
            }
        }
    }

    #[test]
    fn same_secret_authenticates_both_ways() {
        let (d, l) = run(params("a", "s", 1), params("b", "s", 1));
        assert_eq!(
            d,
            Step::Done {
                peer: "b".into(),
                accepted: true
            }
        );
        assert_eq!(
            l,
            Step::Done {
                peer: "a".into(),
                accepted: true
            }
        );
    }

    #[test]
    fn wrong_secret_is_refused_on_both_sides() {
        let (d, l) = run(params("a", "s", 1), params("b", "other", 1));
        assert!(
            matches!(
                d,
                Step::Fail {
                    error: HandshakeError::AuthFailed,
                    ..
                }
            ),
            "{d:?}"
        );
        assert!(
            matches!(
                l,
                Step::Fail {
                    error: HandshakeError::AuthFailed,
                    ..
                }
            ),
            "{l:?}"
        );
    }

    #[test]
    fn version_mismatch_states_both_versions() {
        let (d, l) = run(params("a", "s", 2), params("b", "s", 1));
        let want_d = HandshakeError::VersionMismatch {
            local: 2,
            remote: 1,
        };
        let want_l = HandshakeError::VersionMismatch {
            local: 1,
            remote: 2,
        };
        assert!(
            matches!(d, Step::Fail { ref error, .. } if *error == want_d),
            "{d:?}"
        );
        assert!(
            matches!(l, Step::Fail { ref error, .. } if *error == want_l),
            "{l:?}"
        );
        assert!(want_d.to_string().contains('2') && want_d.to_string().contains('1'));
    }

    #[test]
    fn own_name_is_refused() {
        let (d, _) = run(params("a", "s", 1), params("a", "s", 1));
        assert!(
            matches!(
                d,
                Step::Fail {
                    error: HandshakeError::BadName(_),
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn out_of_order_frame_is_a_protocol_violation() {
        let mut listener = Listener::new(params("b", "s", 1));
        let step = listener.on_frame(ControlFrame::Proof { proof: [0; 32] });
        assert!(matches!(
            step,
            Step::Fail {
                error: HandshakeError::Unexpected(_),
                ..
            }
        ));
    }
}
