//! Property tests of the codec: round trips and decoding arbitrary bytes.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::envelope::{EnvelopeKind, PayloadFormat};
use crate::wire::{ErrorCode, RefuseReason};

const LIMIT: usize = 1 << 20;

fn kind() -> impl Strategy<Value = EnvelopeKind> {
    prop_oneof![
        Just(EnvelopeKind::Message),
        Just(EnvelopeKind::Undeliverable),
        Just(EnvelopeKind::Error)
    ]
}

fn format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Json), Just(PayloadFormat::Binary)]
}

fn envelope_with(payload: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Envelope> {
    (
        ".{0,40}",
        ".{0,40}",
        any::<u64>(),
        any::<u64>(),
        kind(),
        format(),
        payload,
    )
        .prop_map(
            |(to, from, id, correlation_id, kind, format, payload)| Envelope {
                to,
                from,
                id,
                correlation_id,
                kind,
                format,
                payload: Bytes::from(payload),
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    envelope_with(proptest::collection::vec(any::<u8>(), 0..300))
}

fn utf8_envelope() -> impl Strategy<Value = Envelope> {
    envelope_with(".{0,100}".prop_map(String::into_bytes))
}

fn control() -> impl Strategy<Value = ControlFrame> {
    let name = ".{0,20}";
    prop_oneof![
        (any::<u32>(), name, any::<[u8; 32]>()).prop_map(|(version, node, nonce)| {
            ControlFrame::Hello {
                version,
                node,
                nonce,
            }
        }),
        (any::<u32>(), name, any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(
            |(version, node, nonce, proof)| ControlFrame::Challenge {
                version,
                node,
                nonce,
                proof
            }
        ),
        any::<[u8; 32]>().prop_map(|proof| ControlFrame::Proof { proof }),
        Just(ControlFrame::Welcome),
        Just(ControlFrame::Duplicate),
        (any::<u32>(), any::<u32>()).prop_map(|(ours, yours)| ControlFrame::Refuse {
            reason: RefuseReason::VersionMismatch { ours, yours }
        }),
        Just(ControlFrame::Refuse {
            reason: RefuseReason::AuthFailed
        }),
        Just(ControlFrame::Heartbeat),
        name.prop_map(|m| ControlFrame::Error {
            code: ErrorCode::Malformed,
            message: m
        }),
    ]
}

proptest! {
    #[test]
    fn batch_round_trips(envs in proptest::collection::vec(envelope(), 0..40)) {
        let frame = encode_batch(&envs, LIMIT).expect("fits");
        let decoded = decode_node_frame(&frame, LIMIT).expect("decodes");
        prop_assert_eq!(decoded, NodeFrame::Batch(envs));
    }

    #[test]
    fn control_round_trips(frame in control()) {
        let bytes = encode_control(&frame);
        prop_assert_eq!(decode_node_frame(&bytes, LIMIT).expect("decodes"), NodeFrame::Control(frame));
    }

    #[test]
    fn json_round_trips(env in utf8_envelope()) {
        let text = encode_client_text(&env).expect("utf-8 payload");
        prop_assert_eq!(decode_client_text(&text).expect("decodes"), env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_node_frame(&Bytes::from(bytes), LIMIT);
    }

    #[test]
    fn arbitrary_batch_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut frame = vec![crate::wire::TAG_BATCH];
        frame.extend_from_slice(&body);
        let _ = decode_node_frame(&Bytes::from(frame), 64);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = decode_client_text(&text);
    }

    #[test]
    fn truncated_batches_are_errors(envs in proptest::collection::vec(envelope(), 1..10), cut in 1usize..64) {
        let frame = encode_batch(&envs, LIMIT).expect("fits");
        let cut = cut.min(frame.len() - 1);
        let truncated = frame.slice(..frame.len() - cut);
        prop_assert!(decode_node_frame(&truncated, LIMIT).is_err());
    }

    #[test]
    fn batches_never_exceed_the_frame_limit(envs in proptest::collection::vec(envelope(), 0..60)) {
        let max = 2048;
        let mut enc = BatchEncoder::new(max);
        let mut frames = Vec::new();
        let mut sent = Vec::new();
        for env in &envs {
            match enc.push(env) {
                Push::Added => sent.push(env.clone()),
                Push::Full => {
                    frames.push(enc.finish());
                    prop_assert_eq!(enc.push(env), Push::Added);
                    sent.push(env.clone());
                }
                Push::TooLarge => prop_assert!(!fits_in_frame(env, max)),
            }
        }
        frames.push(enc.finish());
        let mut got = Vec::new();
        for f in &frames {
            prop_assert!(f.len() <= max);
            match decode_node_frame(f, max).expect("decodes") {
                NodeFrame::Batch(b) => got.extend(b),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(got, sent);
    }
}

#[test]
fn json_accepts_non_string_payloads() {
    let env = decode_client_text(r#"{"to":"a@b","payload":{"x":[1,2]}}"#).expect("decodes");
    assert_eq!(&env.payload[..], br#"{"x":[1,2]}"#);
    assert_eq!(env.from, "");
    let env = decode_client_text(r#"{"to":"a@b","from":"c","payload":42,"id":7}"#).expect("ok");
    assert_eq!((&env.payload[..], env.id), (&b"42"[..], 7));
}

#[test]
fn json_refuses_non_utf8_payload() {
    let env = Envelope::binary("a", "b", vec![0xff, 0xfe]);
    assert!(matches!(encode_client_text(&env), Err(CodecError::NotUtf8)));
}

#[test]
fn impossible_counts_are_refused_before_allocating() {
    let frame = Bytes::from_static(&[TAG_BATCH, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert!(matches!(
        decode_node_frame(&frame, LIMIT),
        Err(CodecError::ImpossibleCount { .. })
    ));
}
