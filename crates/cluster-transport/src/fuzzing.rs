//! Entry points for the fuzz targets in `/fuzz` (behind the `fuzzing`
//! feature); not a stable API.
//!
//! Each function takes arbitrary input, runs the real decoder(s) of this
//! crate on it exactly as a link does, and checks the round trips of what is
//! accepted. None of them panics on any input; a panic is a violated
//! invariant, i.e. a bug (what the fuzzers look for). The `*_seeds`
//! functions build seed inputs with the real encoders. The same functions
//! are run on stable by `tests/fuzz_smoke.rs` of the main workspace and by
//! `fuzz/tests/seeds.rs`.

use bytes::Bytes;

use crate::auth;
use crate::client::{check_first_frame, payloads_from_query, FirstFrame};
use crate::codec::{self, BatchEncoder, NodeFrame, Push};
use crate::config::Secret;
use crate::envelope::Envelope;
use crate::event::ClientPayloads;
use crate::handshake::{Dialer, Listener, Params, Step};
use crate::wire::{AuthRequest, ControlFrame, ErrorCode, RefuseReason, PROTOCOL_VERSION};

/// `TransportConfig::default().max_frame_size` (16 MiB).
const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;
/// The smallest limit `TransportConfig` accepts.
const MIN_LIMIT: usize = 1024;

/// Re-encodes decoded envelopes as one batch frame (no size limit in play).
fn encode_batch(envs: &[Envelope]) -> Bytes {
    let mut enc = BatchEncoder::new(usize::MAX);
    for env in envs {
        assert_eq!(
            enc.push(env),
            Push::Added,
            "decoded envelope does not re-encode"
        );
    }
    enc.finish()
}

/// Decodes `data` as a node frame (what a link does with every binary
/// WebSocket message) and checks that what decodes re-encodes to a frame
/// that decodes to the same value.
pub fn node_frame(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let small = codec::decode_node_frame(&frame, MIN_LIMIT);
    let decoded = codec::decode_node_frame(&frame, DEFAULT_LIMIT);
    if small.is_ok() {
        assert!(
            decoded.is_ok(),
            "a larger limit refused what a smaller one accepted"
        );
    }
    match decoded {
        Ok(NodeFrame::Batch(envs)) => {
            for env in &envs {
                // Every header and payload is a zero-copy slice of the frame.
                for part in [&env.header, &env.payload] {
                    if !part.is_empty() {
                        let start = part.as_ptr() as usize;
                        let base = frame.as_ptr() as usize;
                        assert!(start >= base && start + part.len() <= base + frame.len());
                    }
                }
                assert!(codec::fits_in_frame(env, DEFAULT_LIMIT));
            }
            let again = encode_batch(&envs);
            match codec::decode_node_frame(&again, usize::MAX) {
                Ok(NodeFrame::Batch(back)) => assert_eq!(back, envs),
                other => panic!("re-encoded batch decodes as {other:?}"),
            }
        }
        Ok(NodeFrame::Control(ctrl)) => {
            let again = codec::encode_control(&ctrl);
            match codec::decode_node_frame(&again, usize::MAX) {
                Ok(NodeFrame::Control(back)) => assert_eq!(back, ctrl),
                other => panic!("re-encoded control frame decodes as {other:?}"),
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
}

/// The pre-auth path: judges `data` as the first text frame of an
/// unauthenticated client, exactly as the listener does (the only decoder
/// that reads what a peer sends before it has proven anything). Only the
/// exact auth message with the right token may pass.
///
/// This is the hook for hardening the pre-auth path (frame limits, caps on
/// unauthenticated connections): whatever is decoded before authentication
/// belongs here.
pub fn client_preauth(data: &[u8]) {
    // WebSocket text frames are UTF-8 by the time the listener sees them.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secret = Secret::from("cookie");
    let verdict = check_first_frame(&secret, text);
    if verdict == FirstFrame::Accepted {
        // The token, read on its own (the auth message's own type): other
        // fields are skipped unread, so they may hold what a full JSON
        // value refuses (a lone surrogate escape such as `\udcde`, found
        // by this fuzzer) and still the frame is the auth message. What
        // must hold is that the token is the right one.
        let token = serde_json::from_str::<AuthRequest>(text)
            .expect("an accepted frame carries the token")
            .auth;
        assert_eq!(token.trim(), auth::client_token(&secret));
    }
    assert_eq!(check_first_frame(&secret, text), verdict, "deterministic");
    // The same text as the query of the upgrade URL: the `payloads`
    // parameter is read before authentication too.
    match payloads_from_query(Some(text)) {
        Ok(ClientPayloads::Raw) => assert!(text.contains("payloads=raw")),
        Ok(_) => {}
        Err(err) => assert!(err.to_string().len() < 400, "the refusal's text is bounded"),
    }
}

/// The pre-auth gate: the raw bytes an unauthenticated peer sends (HTTP
/// upgrade head, then WebSocket frames), as the listener's socket wrapper
/// cuts them into what the WebSocket layer may see. It must never panic,
/// always make progress, refuse heads above 16 KiB, and cut exactly at
/// frame ends (checked against a second, byte-by-byte run).
pub fn preauth_gate(data: &[u8]) {
    let Ok(cuts) = crate::gate::split(data) else {
        return;
    };
    assert!(cuts.windows(2).all(|w| w[0] < w[1]), "cuts advance");
    assert!(cuts.last().is_none_or(|&c| c == data.len()), "all consumed");
    // Byte by byte: every boundary found in bulk is found again.
    let mut gate = crate::gate::Gate::default();
    for (i, b) in data.iter().enumerate() {
        let n = gate
            .admit(std::slice::from_ref(b))
            .expect("same bytes, same verdict");
        assert_eq!(n, 1, "one byte at a time at offset {i}");
    }
}

/// Seeds: an upgrade request followed by masked frames of the three length
/// encodings, a head without an end, and a frame header claiming 2^63 bytes.
pub fn preauth_gate_seeds() -> Vec<Vec<u8>> {
    let head = b"GET / HTTP/1.1\r\nHost: n\r\nUpgrade: websocket\r\n\r\n".to_vec();
    let mut framed = head.clone();
    framed.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o']);
    framed.extend_from_slice(&[0x82, 0xfe, 0x00, 0x80, 9, 9, 9, 9]);
    framed.extend(std::iter::repeat_n(0u8, 128));
    let mut huge = head.clone();
    huge.extend_from_slice(&[0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    vec![head, framed, huge, b"GET / HTTP/1.1\r\nX: y".to_vec()]
}

fn params(local: &str) -> Params {
    Params {
        local: local.to_owned(),
        secret: Secret::from("cookie"),
        version: PROTOCOL_VERSION,
    }
}

/// Splits `data` into frames: each is a little-endian `u16` length then
/// that many bytes (a short tail is the last frame).
fn frames(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let (len, rest) = match data.split_first_chunk::<2>() {
            Some((len, rest)) => (u16::from_le_bytes(*len) as usize, rest),
            None => (data.len(), data),
        };
        let (frame, tail) = rest.split_at(len.min(rest.len()));
        data = tail;
        Some(frame)
    })
}

/// Feeds a sequence of frames to a handshake machine as the socket layer
/// does (undecodable or data frames become a `Heartbeat`, which the machine
/// refuses). The first byte picks the role. Without the secret's proofs over
/// fresh random nonces, no sequence may complete a handshake.
pub fn handshake(data: &[u8]) {
    let Some((&role, rest)) = data.split_first() else {
        return;
    };
    enum Machine {
        Dialer(Dialer),
        Listener(Listener),
    }
    let mut machine = if role & 1 == 0 {
        let (d, hello) = Dialer::start(params("node-a"));
        check_control_round_trip(&hello);
        Machine::Dialer(d)
    } else {
        Machine::Listener(Listener::new(params("node-b")))
    };
    let mut finished = false;
    for raw in frames(rest) {
        let frame = Bytes::copy_from_slice(raw);
        let ctrl = match codec::decode_node_frame(&frame, DEFAULT_LIMIT) {
            Ok(NodeFrame::Control(c)) => c,
            _ => ControlFrame::Heartbeat,
        };
        let step = match &mut machine {
            Machine::Dialer(d) => d.on_frame(ctrl),
            Machine::Listener(l) => l.on_frame(ctrl),
        };
        match step {
            Step::Reply(reply) => {
                assert!(!finished, "a finished machine replied");
                check_control_round_trip(&reply);
            }
            Step::Done { peer, accepted } => {
                panic!(
                    "handshake completed without the secret (peer {peer:?}, accepted {accepted})"
                )
            }
            Step::Fail { reply, error } => {
                let _ = error.to_string();
                if let Some(reply) = reply {
                    check_control_round_trip(&reply);
                }
                finished = true;
            }
        }
    }
}

fn check_control_round_trip(frame: &ControlFrame) {
    let bytes = codec::encode_control(frame);
    match codec::decode_node_frame(&bytes, MIN_LIMIT) {
        Ok(NodeFrame::Control(back)) => assert_eq!(&back, frame),
        other => panic!("control frame does not round-trip: {other:?}"),
    }
}

fn sample_envelopes() -> Vec<Envelope> {
    vec![
        Envelope::new(&b"\x11header"[..], &br#"{"id":1,"kind":"echo"}"#[..]),
        Envelope::new(Bytes::new(), vec![0u8, 1, 2, 255]),
        Envelope::new(vec![0xff; 40], Bytes::new()),
        Envelope::default(),
    ]
}

fn sample_controls() -> Vec<ControlFrame> {
    vec![
        ControlFrame::Hello {
            version: PROTOCOL_VERSION,
            node: "node-a".into(),
            nonce: [7; 32],
        },
        ControlFrame::Challenge {
            version: PROTOCOL_VERSION,
            node: "node-b".into(),
            nonce: [9; 32],
            proof: [1; 32],
        },
        ControlFrame::Proof { proof: [2; 32] },
        ControlFrame::Welcome,
        ControlFrame::Duplicate,
        ControlFrame::Refuse {
            reason: RefuseReason::VersionMismatch { ours: 1, yours: 2 },
        },
        ControlFrame::Refuse {
            reason: RefuseReason::AuthFailed,
        },
        ControlFrame::Heartbeat,
        ControlFrame::Error {
            code: ErrorCode::Malformed,
            message: "undecodable binary frame".into(),
        },
    ]
}

/// Seeds: batches of 0, 1 and several envelopes, and every control frame.
pub fn node_frame_seeds() -> Vec<Vec<u8>> {
    let envs = sample_envelopes();
    let mut out = vec![
        encode_batch(&[]).to_vec(),
        encode_batch(&envs[..1]).to_vec(),
        encode_batch(&envs).to_vec(),
    ];
    out.extend(
        sample_controls()
            .iter()
            .map(|c| codec::encode_control(c).to_vec()),
    );
    out
}

/// Seeds: the auth message (right and wrong token, padded token), an
/// envelope sent before authenticating, garbage, the right token beside a
/// lone surrogate escape, and an upgrade query with control characters in
/// a refused value.
pub fn client_preauth_seeds() -> Vec<Vec<u8>> {
    let token = auth::client_token(&Secret::from("cookie"));
    vec![
        format!(r#"{{"auth":"{token}"}}"#).into_bytes(),
        format!(r#"{{"auth":" {token}\n","extra":1}}"#).into_bytes(),
        br#"{"auth":"0000"}"#.to_vec(),
        br#"{"to":"worker@node-b","payload":"x"}"#.to_vec(),
        b"not json".to_vec(),
        // The right token beside a field a JSON value refuses.
        format!(r#"{{"auth":"{token}","x":"\udcde"}}"#).into_bytes(),
        // An upgrade query whose refused value escapes long.
        format!("a=b&payloads={}", "\u{18}".repeat(100)).into_bytes(),
    ]
}

fn framed(frames: &[ControlFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let bytes = codec::encode_control(f);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Seeds: plausible handshake sequences for both roles.
pub fn handshake_seeds() -> Vec<Vec<u8>> {
    let c = sample_controls();
    let listener = |frames: &[ControlFrame]| [vec![1u8], framed(frames)].concat();
    let dialer = |frames: &[ControlFrame]| [vec![0u8], framed(frames)].concat();
    vec![
        listener(&[c[0].clone(), c[2].clone()]),
        listener(&[c[0].clone(), c[5].clone()]),
        listener(&[c[7].clone()]),
        dialer(&[c[1].clone(), c[3].clone()]),
        dialer(&[c[6].clone()]),
        dialer(&[c[1].clone(), c[4].clone(), c[7].clone()]),
    ]
}
