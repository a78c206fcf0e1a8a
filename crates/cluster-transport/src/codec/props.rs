//! Property tests of the codec: round trips and decoding arbitrary bytes.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::wire::{ErrorCode, RefuseReason};

const LIMIT: usize = 1 << 20;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (bytes(80), bytes(300)).prop_map(|(header, payload)| Envelope { header, payload })
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
    fn decoded_parts_are_slices_of_the_frame(envs in proptest::collection::vec(envelope(), 1..20)) {
        let frame = encode_batch(&envs, LIMIT).expect("fits");
        let NodeFrame::Batch(got) = decode_node_frame(&frame, LIMIT).expect("decodes") else {
            panic!("not a batch");
        };
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        for part in got.iter().flat_map(|e| [&e.header, &e.payload]) {
            if !part.is_empty() {
                prop_assert!(range.contains(&(part.as_ptr() as usize)));
            }
        }
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
fn impossible_counts_are_refused_before_allocating() {
    let frame = Bytes::from_static(&[TAG_BATCH, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert!(matches!(
        decode_node_frame(&frame, LIMIT),
        Err(CodecError::ImpossibleCount { .. })
    ));
}
