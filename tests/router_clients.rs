//! External WebSocket clients (a generic tokio-tungstenite client, not the
//! project's transport): authentication, the welcome address, requests to
//! actors on other nodes and their replies on the same socket.

mod support;

use futures_util::SinkExt;
use serde_json::{json, Value};
use support::router::*;
use support::ws::{
    bearer_request, close_code, connect, connect_bearer, next_json, send_json, token, welcome,
};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_talks_to_an_actor_on_another_node() {
    let nodes = cluster(&["c-a", "c-b"]).await;
    client_echo(&nodes[1], "echo");
    let mut ws = connect_bearer(STEP, &nodes[0].url(), SECRET).await;
    let me = welcome(STEP, &mut ws, "c-a").await;

    // The client lies about `from`; the router uses its assigned address.
    // Its `id` is its own tag: it comes back as the answer's correlation.
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "echo@c-b", "from": "forged@c-b", "id": 77, "payload": {"hello": "world"}}),
    )
    .await;
    let reply = next_json(STEP, &mut ws).await;
    assert_eq!(reply["to"], me.as_str());
    assert_eq!(reply["from"], "echo@c-b");
    assert_eq!(reply["correlation_id"], 77);
    assert!(
        reply.get("id").is_none(),
        "internal ids stay inside: {reply}"
    );
    let payload: Value = serde_json::from_str(reply["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({"hello": "world"}));

    // Cluster commands work for clients too.
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "system@c-b", "id": 78, "payload": {"cmd": "members"}}),
    )
    .await;
    let members = next_json(STEP, &mut ws).await;
    assert_eq!(members["correlation_id"], 78);
    let rows: Value = serde_json::from_str(members["payload"].as_str().unwrap()).unwrap();
    assert_eq!(rows["members"].as_array().unwrap().len(), 2);

    // A missing actor comes back Undeliverable; a missing node as an Error.
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "ghost@c-b", "id": 79, "payload": 1}),
    )
    .await;
    let undeliverable = next_json(STEP, &mut ws).await;
    assert_eq!(undeliverable["kind"], "undeliverable");
    assert_eq!(undeliverable["correlation_id"], 79);
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "w@nowhere", "id": 80, "payload": 1}),
    )
    .await;
    let error = next_json(STEP, &mut ws).await;
    assert_eq!(error["kind"], "error");
    assert_eq!(error["correlation_id"], 80);
    assert!(
        error["payload"]
            .as_str()
            .unwrap()
            .contains("unknown node nowhere"),
        "{error}"
    );
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "not an address", "id": 81, "payload": 1}),
    )
    .await;
    let error = next_json(STEP, &mut ws).await;
    assert_eq!(error["kind"], "error");
    assert!(
        error["payload"]
            .as_str()
            .unwrap()
            .contains("bad 'to' address"),
        "{error}"
    );
    assert!(nodes[0].stats().from_clients >= 5);
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_can_authenticate_with_its_first_frame() {
    let nodes = cluster(&["f-a", "f-b"]).await;
    client_echo(&nodes[0], "echo");
    let mut ws = connect(STEP, nodes[1].url()).await;
    send_json(STEP, &mut ws, &json!({"auth": token(SECRET)})).await;
    let me = welcome(STEP, &mut ws, "f-b").await;
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "echo@f-a", "id": 5, "payload": "plain text"}),
    )
    .await;
    let reply = next_json(STEP, &mut ws).await;
    assert_eq!(reply["to"], me.as_str());
    assert_eq!(reply["payload"], "plain text");
    stop_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_client_cannot_send() {
    let nodes = cluster(&["z-a", "z-b"]).await;
    let (_sink, mut inbox) = client_collector(&nodes[1], "sink");

    // No credentials: the first frame is an envelope, refused and closed.
    let mut ws = connect(STEP, nodes[0].url()).await;
    send_json(
        STEP,
        &mut ws,
        &json!({"to": "sink@z-b", "payload": "sneaky"}),
    )
    .await;
    let refusal = next_json(STEP, &mut ws).await;
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("not authenticated"),
        "{refusal}"
    );
    let closed = within(STEP, "close", close_code(STEP, &mut ws)).await;
    assert_eq!(closed.map(u16::from), Some(1008));

    // A wrong bearer token is refused at the upgrade.
    let request = bearer_request(&nodes[0].url(), "00ff");
    let refused = within(STEP, "connect", tokio_tungstenite::connect_async(request)).await;
    assert!(refused.is_err(), "wrong token accepted");

    // A wrong first-frame token is refused too.
    let mut ws = connect(STEP, nodes[0].url()).await;
    send_json(STEP, &mut ws, &json!({"auth": "wrong"})).await;
    let refusal = next_json(STEP, &mut ws).await;
    assert!(refusal["error"].is_string());
    // Whether or not the socket is already closed, this must not get through.
    let sneaky = Message::Text(
        json!({"to": "sink@z-b", "payload": "sneaky"})
            .to_string()
            .into(),
    );
    let _ = within(STEP, "sneaky send", ws.send(sneaky)).await;

    // Nothing reached the cluster: a later authenticated envelope is the first.
    let mut good = connect_bearer(STEP, &nodes[0].url(), SECRET).await;
    welcome(STEP, &mut good, "z-a").await;
    send_json(
        STEP,
        &mut good,
        &json!({"to": "sink@z-b", "payload": "legit"}),
    )
    .await;
    let first = within(STEP, "sink", inbox.recv()).await.unwrap();
    assert_eq!(first.payload_str(), Some("legit"));
    assert_eq!(nodes[0].stats().from_clients, 1);
    assert!(nodes[0].transport_stats().auth_failures >= 2);
    stop_all(&nodes).await;
}
