//! Two nodes dialling each other at the same moment end up with exactly one
//! link, and both `connect` calls resolve with the peer's name.

mod support;

use std::time::Duration;

use cluster_transport::{Envelope, Transport};
use support::transport::{from_node, node, stop, T};
use tokio::time::timeout;

async fn one_link(t: &Transport) {
    while t.stats().links_open != 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dialling_keeps_exactly_one_link() {
    for round in 0..20 {
        let a = node("node-a", "k").await;
        let b = node("node-b", "k").await;
        let (mut rx_a, mut rx_b) = (a.take_incoming().unwrap(), b.take_incoming().unwrap());
        let (url_a, url_b) = (a.url(), b.url());
        let both = async { tokio::join!(a.connect(&url_b), b.connect(&url_a)) };
        let (ra, rb) = timeout(T, both).await.expect("both connects resolve");
        assert_eq!(ra.unwrap(), "node-b", "round {round}");
        assert_eq!(rb.unwrap(), "node-a", "round {round}");
        timeout(T, one_link(&a))
            .await
            .expect("a settles on one connection");
        timeout(T, one_link(&b))
            .await
            .expect("b settles on one connection");
        assert_eq!(a.peers(), vec!["node-b".to_owned()]);
        assert_eq!(b.peers(), vec!["node-a".to_owned()]);

        timeout(T, a.send("node-b", Envelope::new(&b"x"[..], &b"1"[..])))
            .await
            .unwrap()
            .unwrap();
        timeout(T, b.send("node-a", Envelope::new(&b"x"[..], &b"2"[..])))
            .await
            .unwrap()
            .unwrap();
        let got_b = timeout(T, rx_b.recv()).await.unwrap().unwrap();
        let got_a = timeout(T, rx_a.recv()).await.unwrap().unwrap();
        assert_eq!(&from_node(got_b).1[0].payload[..], b"1");
        assert_eq!(&from_node(got_a).1[0].payload[..], b"2");
        // A losing dial whose handshake was still in flight can replace the
        // link for a moment after both `connect`s resolved (the lower name's
        // dial always wins); what must hold is that the pair settles on
        // exactly one link.
        timeout(T, one_link(&a))
            .await
            .expect("a ends with one connection");
        timeout(T, one_link(&b))
            .await
            .expect("b ends with one connection");
        assert_eq!(
            (a.stats().links_open, b.stats().links_open),
            (1, 1),
            "round {round}"
        );
        assert_eq!(a.peers(), vec!["node-b".to_owned()], "round {round}");
        assert_eq!(b.peers(), vec!["node-a".to_owned()], "round {round}");
        stop(&[&a, &b]).await;
    }
}
