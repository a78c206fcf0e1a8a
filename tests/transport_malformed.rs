//! Garbage and truncated frames are answered with errors while valid traffic
//! continues on the same link (node links and client connections). The bad
//! node frames come from a raw node of tests/support on an authenticated
//! link.

mod support;

use bytes::Bytes;
use cluster_transport::Incoming;
use support::transport::raw::{self, Control};
use support::transport::{node, stop, T};
use support::ws::{auth_ok, connect, next_json, send, send_auth};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn garbage_and_truncated_node_frames_do_not_disturb_the_link() {
    let b = node("node-b", "k").await;
    let mut rx_b = b.take_incoming().unwrap();
    let mut a = raw::link(&b.url(), "node-a", "k").await;

    let valid = raw::batch(&[(b"h", b"payload")]);
    let bad_frames: Vec<Vec<u8>> = vec![
        b"\xde\xad\xbe\xef garbage".to_vec(),
        Vec::new(),
        valid[..valid.len() - 2].to_vec(),
        vec![0, 0xff, 0xff, 0xff, 0x7f],
        vec![1, 0xee],
        // A batch claiming more envelopes than its bytes can hold.
        vec![0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
    ];
    let n_bad = bad_frames.len();
    for (i, frame) in bad_frames.into_iter().enumerate() {
        raw::send(&mut a, frame).await;
        let header = format!("{i}");
        raw::send(&mut a, raw::batch(&[(header.as_bytes(), b"x")])).await;
    }
    let mut got = Vec::new();
    while got.len() < n_bad {
        match timeout(T, rx_b.recv()).await.unwrap().unwrap() {
            Incoming::Node { peer, envelopes } => {
                assert_eq!(peer, "node-a");
                got.extend(envelopes.into_iter().map(|e| e.header));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<Bytes> = (0..n_bad).map(|i| Bytes::from(i.to_string())).collect();
    assert_eq!(got, expected, "valid traffic all delivered in order");
    // Every bad frame is answered with an error frame, the link staying up.
    for _ in 0..n_bad {
        let answer = raw::next_control(&mut a).await.expect("link still up");
        assert!(matches!(answer, Control::Error { .. }), "{answer:?}");
    }
    assert_eq!(b.stats().malformed_frames, n_bad as u64);
    assert_eq!(b.peers(), vec!["node-a".to_owned()], "link still up");
    drop(a);
    stop(&[&b]).await;
}

#[tokio::test]
async fn binary_client_frames_are_answered_and_text_passes_through() {
    let b = node("node-b", "k").await;
    let mut rx = b.take_incoming().unwrap();
    let mut ws = connect(T, b.url()).await;
    send_auth(T, &mut ws, "k").await;
    auth_ok(T, &mut ws).await;

    send(
        T,
        &mut ws,
        Message::binary(Bytes::from_static(b"\x00\x01\x02")),
    )
    .await;
    let v = next_json(T, &mut ws).await;
    assert!(v["error"].is_string(), "error frame: {v}");
    assert_eq!(b.stats().malformed_frames, 1);
    // Text is opaque to the transport (the router judges it): even text
    // that is no envelope is handed on as it came, in order.
    for text in [
        "not json at all",
        r#"{"to":"worker@node-b","payload":"hello"}"#,
    ] {
        send(T, &mut ws, Message::text(text)).await;
        match timeout(T, rx.recv()).await.unwrap().unwrap() {
            Incoming::Client { text: got, .. } => assert_eq!(&got[..], text.as_bytes()),
            other => panic!("unexpected {other:?}"),
        }
    }
    stop(&[&b]).await;
}
