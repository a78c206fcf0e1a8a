//! Garbage and truncated frames are answered with errors while valid traffic
//! continues on the same link (node links and client connections).

mod support;

use bytes::Bytes;
use cluster_transport::{Envelope, Source};
use support::transport::{node, pair, stop, until, T};
use support::ws::{auth_ok, connect, next_json, send, send_auth};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn garbage_and_truncated_node_frames_do_not_disturb_the_link() {
    let (a, b) = pair().await;
    let mut rx_b = b.take_incoming().unwrap();

    // A valid batch frame of one envelope, to truncate.
    let mut valid = vec![0u8, 1, 0, 0, 0];
    valid.extend_from_slice(&[1, b'x', 1, b'y', 0, 0, 0, 0, 3, 1, 2, 3]);
    let bad_frames: Vec<Bytes> = vec![
        Bytes::from_static(b"\xde\xad\xbe\xef garbage"),
        Bytes::new(),
        Bytes::copy_from_slice(&valid[..valid.len() - 2]),
        Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0x7f]),
        Bytes::from_static(&[1, 0xee]),
    ];
    let n_bad = bad_frames.len() as u64;
    for (i, frame) in bad_frames.into_iter().enumerate() {
        a.send_raw_frame("node-b", frame);
        let mut env = Envelope::json("sink", "node-a", format!("{i}"));
        env.id = i as u64;
        timeout(T, a.send("node-b", env)).await.unwrap().unwrap();
    }
    let mut got = Vec::new();
    while got.len() < n_bad as usize {
        let inc = timeout(T, rx_b.recv()).await.unwrap().unwrap();
        assert_eq!(inc.source, Source::Node("node-a".into()));
        got.extend(inc.envelopes.into_iter().map(|e| e.id));
    }
    assert_eq!(
        got,
        (0..n_bad).collect::<Vec<_>>(),
        "valid traffic all delivered in order"
    );
    assert_eq!(b.stats().malformed_frames, n_bad);
    timeout(T, until(|| a.stats().error_frames_in >= n_bad))
        .await
        .expect("every bad frame answered with an error frame");
    assert_eq!(a.peers(), vec!["node-b".to_owned()], "link still up");
    assert_eq!(b.peers(), vec!["node-a".to_owned()]);
    stop(&[&a, &b]).await;
}

#[tokio::test]
async fn malformed_client_frames_are_answered_and_the_client_goes_on() {
    let b = node("node-b", "k").await;
    let mut rx = b.take_incoming().unwrap();
    let mut ws = connect(T, b.url()).await;
    send_auth(T, &mut ws, "k").await;
    auth_ok(T, &mut ws).await;

    let bad = [
        Message::text("not json at all"),
        Message::text(r#"{"to":"worker@node-b","pay"#),
        Message::text(r#"{"from":"no destination","payload":"x"}"#),
        Message::binary(Bytes::from_static(b"\x00\x01\x02")),
    ];
    for msg in bad {
        send(T, &mut ws, msg).await;
        let v = next_json(T, &mut ws).await;
        assert!(v["error"].is_string(), "error frame: {v}");
    }
    let good = r#"{"to":"worker@node-b","from":"me","payload":"hello"}"#;
    send(T, &mut ws, Message::text(good)).await;
    let inc = timeout(T, rx.recv()).await.unwrap().unwrap();
    assert!(matches!(inc.source, Source::Client(_)));
    assert_eq!(&inc.envelopes[0].payload[..], b"hello");
    assert_eq!(b.stats().malformed_frames, 4);
    stop(&[&b]).await;
}
