//! Unit and property tests of the membership merge rules.

use super::*;
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> MembershipTiming {
    MembershipTiming {
        suspect_after: ms(300),
        down_after: ms(600),
        give_up_after: ms(2000),
    }
}

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn member(name: &str, inc: u64, hb: u64, status: MemberStatus) -> Member {
    Member {
        node: node(name),
        url: format!("ws://127.0.0.1/{name}"),
        incarnation: inc,
        status,
        heartbeat: hb,
        tags: Vec::new(),
        load: Load::default(),
    }
}

fn table(now: Instant) -> Membership {
    Membership::new(member("me", 1, 0, MemberStatus::Up), timing(), now)
}

fn statuses(ch: &Changes) -> Vec<(String, MemberStatus)> {
    ch.events
        .iter()
        .map(|e| {
            let m = e.member();
            let s = match e {
                MemberEvent::Updated(_) => return (format!("updated:{}", m.node), m.status),
                _ => m.status,
            };
            (m.node.to_string(), s)
        })
        .collect()
}

#[test]
fn a_new_member_is_up_and_dialled() {
    let t0 = Instant::now();
    let mut t = table(t0);
    let ch = t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
    assert_eq!(ch.connect, vec![(node("b"), "ws://127.0.0.1/b".into())]);
    assert_eq!(t.up_members().len(), 2, "self is included");
    // Gossiped suspicion is a local opinion: counts as Up.
    let ch = t.merge(vec![member("c", 1, 1, MemberStatus::Suspect)], t0);
    assert_eq!(statuses(&ch), vec![("c".into(), MemberStatus::Up)]);
    // A member first learned as Down or Left is recorded silently.
    let ch = t.merge(vec![member("d", 1, 1, MemberStatus::Down)], t0);
    assert!(ch.is_empty());
    assert_eq!(t.get(&node("d")).unwrap().status, MemberStatus::Down);
}

#[test]
fn silence_goes_suspect_then_down_and_down_is_final_for_an_incarnation() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    assert!(t.check(t0 + ms(299)).is_empty());
    let ch = t.check(t0 + ms(300));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
    let ch = t.check(t0 + ms(600));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
    assert_eq!(t.up_members().len(), 1);
    // Late heartbeats of the same incarnation do not revive it.
    let ch = t.merge(vec![member("b", 1, 9, MemberStatus::Up)], t0 + ms(700));
    assert!(ch.events.is_empty());
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Down);
    // A restart (higher incarnation) does, and the link is redialled.
    let ch = t.merge(vec![member("b", 2, 0, MemberStatus::Up)], t0 + ms(800));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
    assert_eq!(ch.connect.len(), 1);
    assert!(t.check(t0 + ms(1000)).is_empty());
}

#[test]
fn a_suspect_that_beats_again_is_up() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    let ch = t.link_down(&node("b"), t0 + ms(10));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
    assert!(t.link_down(&node("b"), t0 + ms(20)).is_empty());
    // Same heartbeat: no progress, still suspect.
    assert!(t
        .merge(vec![member("b", 1, 1, MemberStatus::Up)], t0 + ms(30))
        .is_empty());
    let ch = t.merge(vec![member("b", 1, 2, MemberStatus::Up)], t0 + ms(40));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
}

#[test]
fn traffic_from_a_member_keeps_it_from_going_down_but_never_revives_it() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    // Heartbeats stuck behind a flood, but batches keep arriving.
    for step in 1..=10 {
        t.heard_from(&node("b"), t0 + ms(step * 200));
        assert!(t.check(t0 + ms(step * 200 + 250)).is_empty());
    }
    // Silence again: suspect, then down, from the last batch on.
    let ch = t.check(t0 + ms(2000 + 300));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
    t.heard_from(&node("b"), t0 + ms(2400));
    assert!(t.check(t0 + ms(2900)).is_empty(), "not down while heard");
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Suspect);
    let ch = t.check(t0 + ms(3000));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
    // Down is final for an incarnation: late batches change nothing.
    t.heard_from(&node("b"), t0 + ms(3100));
    assert!(t.check(t0 + ms(3200)).is_empty());
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Down);
    // Unknown nodes and this node are ignored.
    t.heard_from(&node("zz"), t0 + ms(3100));
    t.heard_from(&node("me"), t0 + ms(3100));
    assert!(t.get(&node("zz")).is_none());
}

#[test]
fn graceful_leave_is_never_a_failure() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    let ch = t.merge(vec![member("b", 1, 2, MemberStatus::Leaving)], t0 + ms(10));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Leaving)]);
    let ch = t.merge(vec![member("b", 1, 3, MemberStatus::Left)], t0 + ms(20));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Left)]);
    assert_eq!(ch.disconnect, vec![node("b")]);
    // Silence after leaving is not a failure, and Left beats stale Up rows.
    assert!(t.check(t0 + ms(5000)).is_empty());
    assert!(t
        .merge(vec![member("b", 1, 9, MemberStatus::Up)], t0)
        .is_empty());
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Left);
}

#[test]
fn closed_links_never_make_a_leaving_member_or_a_leaving_node_suspect() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Leaving)], t0);
    t.merge(vec![member("c", 1, 1, MemberStatus::Up)], t0);
    assert!(t.link_down(&node("b"), t0 + ms(10)).is_empty());
    // This node leaves: its peers close their links, nobody is suspected.
    t.set_my_status(MemberStatus::Leaving, t0 + ms(20));
    assert!(t.link_down(&node("c"), t0 + ms(30)).is_empty());
    assert_eq!(t.get(&node("c")).unwrap().status, MemberStatus::Up);
}

#[test]
fn a_silent_leaving_member_becomes_left_not_down() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Leaving)], t0);
    let ch = t.check(t0 + ms(600));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Left)]);
}

#[test]
fn false_suspicion_of_self_is_refuted_with_a_higher_incarnation() {
    let t0 = Instant::now();
    let mut t = table(t0);
    assert!(t
        .merge(vec![member("me", 1, 0, MemberStatus::Up)], t0)
        .is_empty());
    assert_eq!(t.me().incarnation, 1);
    t.merge(vec![member("me", 1, 0, MemberStatus::Down)], t0);
    assert_eq!(t.me().incarnation, 2);
    assert_eq!(t.me().status, MemberStatus::Up);
    t.merge(vec![member("me", 7, 0, MemberStatus::Up)], t0);
    assert_eq!(t.me().incarnation, 8);
    // While leaving, nothing is refuted.
    t.set_my_status(MemberStatus::Leaving, t0);
    t.merge(vec![member("me", 9, 0, MemberStatus::Down)], t0);
    assert_eq!(t.me().incarnation, 8);
}

#[test]
fn down_members_are_given_up_once() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    t.check(t0 + ms(600));
    assert!(t.check(t0 + ms(2599)).disconnect.is_empty());
    assert_eq!(t.check(t0 + ms(2600)).disconnect, vec![node("b")]);
    assert!(t.check(t0 + ms(9000)).disconnect.is_empty());
}

#[test]
fn tags_and_load_travel_with_fresher_heartbeats() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    let mut b = member("b", 1, 2, MemberStatus::Up);
    b.tags = vec!["gpu".into()];
    b.load.in_flight = 5;
    let ch = t.merge(vec![b.clone()], t0);
    assert_eq!(statuses(&ch), vec![("updated:b".into(), MemberStatus::Up)]);
    let got = t.get(&node("b")).unwrap();
    assert!(got.has_tag("gpu"));
    assert_eq!(got.load.in_flight, 5);
    // An older row does not roll the data back.
    let ch = t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    assert!(ch.is_empty());
    assert!(t.get(&node("b")).unwrap().has_tag("gpu"));
    // Own tags: Updated, and the heartbeat advances so gossip carries them.
    let hb = t.me().heartbeat;
    let ch = t.set_tags(vec!["kind:sha256".into()]);
    assert_eq!(ch.events.len(), 1);
    assert!(t.me().heartbeat > hb);
    assert!(t.set_tags(vec!["kind:sha256".into()]).is_empty());
}

#[test]
fn gossip_targets_are_distinct_reachable_peers() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(
        vec![
            member("a", 1, 1, MemberStatus::Up),
            member("b", 1, 1, MemberStatus::Up),
            member("c", 1, 1, MemberStatus::Left),
            member("d", 1, 1, MemberStatus::Down),
        ],
        t0,
    );
    let mut rng = rand::thread_rng();
    for _ in 0..20 {
        let mut picked = t.gossip_targets(3, &mut rng);
        picked.sort();
        assert_eq!(picked, vec![node("a"), node("b")]);
    }
    assert_eq!(t.gossip_targets(1, &mut rng).len(), 1);
}

fn arb_row() -> impl Strategy<Value = Member> {
    (0u64..3, 0u64..4, 0usize..5).prop_map(|(inc, hb, s)| {
        let status = [
            MemberStatus::Up,
            MemberStatus::Suspect,
            MemberStatus::Leaving,
            MemberStatus::Down,
            MemberStatus::Left,
        ][s];
        let mut m = member("x", inc, hb, status);
        // Real nodes publish one set of data per (incarnation, heartbeat).
        m.load.in_flight = (inc * 10 + hb) as u32;
        m
    })
}

proptest! {
    #[test]
    fn merge_is_order_independent_and_idempotent(rows in prop::collection::vec(arb_row(), 1..8), seed in any::<u64>()) {
        use rand::SeedableRng;
        let t0 = Instant::now();
        let mut a = table(t0);
        a.merge(rows.clone(), t0);
        let mut shuffled = rows.clone();
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut b = table(t0);
        for row in shuffled {
            b.merge(vec![row], t0);
        }
        let (ra, rb) = (a.get(&node("x")).cloned(), b.get(&node("x")).cloned());
        prop_assert_eq!(&ra, &rb);
        a.merge(rows, t0);
        prop_assert_eq!(a.get(&node("x")).cloned(), ra);
    }
}
