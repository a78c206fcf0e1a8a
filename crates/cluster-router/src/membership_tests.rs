//! Unit and property tests of the membership merge rules.

use super::*;
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn timing() -> MembershipTiming {
    MembershipTiming {
        detector: DetectorTiming {
            probe_interval: ms(100),
            suspect_after: ms(300),
            down_after: ms(600),
        },
        indirect_checks: 3,
        give_up_after: ms(2000),
        remove_after: ms(5000),
    }
}

/// Runs the failure detector at `now`.
fn check(t: &mut Membership, now: Instant) -> Changes {
    t.check(now, &mut rand::thread_rng())
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
                MemberEvent::LinkLost(_) => return (format!("link_lost:{}", m.node), m.status),
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
    // A member first learned as Down or Left is recorded silently, without load.
    let mut d = member("d", 1, 1, MemberStatus::Down);
    d.load.in_flight = 4;
    let ch = t.merge(vec![d], t0);
    assert!(ch.is_empty());
    assert_eq!(t.get(&node("d")).unwrap().status, MemberStatus::Down);
    assert_eq!(t.get(&node("d")).unwrap().load, Load::default());
}

#[test]
fn alone_with_a_silent_member_suspect_then_down_which_is_final() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    t.heard_from(&node("b"), t0);
    assert!(check(&mut t, t0 + ms(299)).is_empty());
    let ch = check(&mut t, t0 + ms(300));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
    assert!(ch.checks.is_empty(), "nobody to ask");
    // Nobody else to ask: this node's own evidence decides.
    let ch = check(&mut t, t0 + ms(600));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
    assert!(ch.push_all, "a Down verdict is announced at once");
    assert_eq!(t.up_members().len(), 1);
    // Late heartbeats of the same incarnation do not revive it.
    let ch = t.merge(vec![member("b", 1, 9, MemberStatus::Up)], t0 + ms(700));
    assert!(ch.events.is_empty());
    t.heard_from(&node("b"), t0 + ms(700));
    assert!(check(&mut t, t0 + ms(750)).events.is_empty());
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Down);
    // A restart (higher incarnation) does, and the link is redialled.
    let ch = t.merge(vec![member("b", 2, 0, MemberStatus::Up)], t0 + ms(800));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
    assert_eq!(ch.connect.len(), 1);
    assert!(check(&mut t, t0 + ms(1000)).events.is_empty());
}

#[test]
fn down_needs_a_witness_to_confirm_and_a_live_witness_prevents_it() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(
        vec![
            member("b", 1, 1, MemberStatus::Up),
            member("w", 1, 1, MemberStatus::Up),
        ],
        t0,
    );
    t.heard_from(&node("b"), t0);
    // The witness keeps talking; b falls silent.
    let mut now = t0;
    let mut checks = Vec::new();
    let mut down_at = None;
    while now < t0 + ms(2000) && down_at.is_none() {
        now += ms(100);
        t.heard_from(&node("w"), now);
        let ch = check(&mut t, now);
        checks.extend(ch.checks.iter().cloned());
        // The witness hears b until 1 s, then not any more.
        for (witness, target) in &ch.checks {
            assert_eq!((witness, target), (&node("w"), &node("b")));
            let silence = if now < t0 + ms(1000) {
                ms(20)
            } else {
                now - (t0 + ms(1000))
            };
            t.on_check_answer(target, true, silence, now);
        }
        if statuses(&ch).contains(&("b".into(), MemberStatus::Down)) {
            down_at = Some(now);
        }
    }
    assert!(!checks.is_empty(), "the witness was asked");
    // b was heard by the witness until 1 s: Down 600 ms after that, once
    // an answer confirmed the silence (asked every 300 ms).
    let down_at = down_at.expect("b is Down in the end") - t0;
    assert!(down_at >= ms(1600) && down_at <= ms(1900), "{down_at:?}");
    assert_eq!(t.get(&node("w")).unwrap().status, MemberStatus::Up);
}

#[test]
fn unanswered_checks_delay_down_to_twice_down_after() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(
        vec![
            member("b", 1, 1, MemberStatus::Up),
            member("w", 1, 1, MemberStatus::Up),
        ],
        t0,
    );
    t.heard_from(&node("b"), t0);
    let mut now = t0;
    while now < t0 + ms(1100) {
        now += ms(100);
        t.heard_from(&node("w"), now);
        let ch = check(&mut t, now);
        assert!(
            !statuses(&ch).contains(&("b".into(), MemberStatus::Down)),
            "{now:?}"
        );
    }
    now += ms(100);
    t.heard_from(&node("w"), now);
    let ch = check(&mut t, now);
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
}

#[test]
fn a_suspect_heard_again_is_up_but_gossip_alone_does_not_revive_it() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    let ch = t.link_down(&node("b"), t0 + ms(10));
    let lost = ("link_lost:b".to_owned(), MemberStatus::Suspect);
    assert_eq!(
        statuses(&ch),
        vec![("b".into(), MemberStatus::Suspect), lost.clone()]
    );
    // A second loss is reported, and is no new suspicion.
    assert_eq!(statuses(&t.link_down(&node("b"), t0 + ms(20))), vec![lost]);
    assert_eq!(t.link_losses(&node("b")), 2, "each reported loss counted");
    // A node that is not in the table has no link to lose.
    assert!(t.link_down(&node("nobody"), t0 + ms(20)).is_empty());
    assert_eq!(t.link_losses(&node("nobody")), 0);
    // Its heartbeat advancing in third-party gossip is not contact.
    assert!(t
        .merge(vec![member("b", 1, 2, MemberStatus::Up)], t0 + ms(30))
        .events
        .is_empty());
    assert!(check(&mut t, t0 + ms(40)).events.is_empty());
    // Contact on its own link is.
    t.heard_from(&node("b"), t0 + ms(50));
    let ch = check(&mut t, t0 + ms(60));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
}

#[test]
fn traffic_from_a_member_keeps_it_up_but_never_revives_it() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    for step in 1..=10 {
        t.heard_from(&node("b"), t0 + ms(step * 200));
        assert!(check(&mut t, t0 + ms(step * 200 + 250)).events.is_empty());
    }
    // Silence again: suspect, then down, from the last batch on.
    let ch = check(&mut t, t0 + ms(2000 + 300));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
    let ch = check(&mut t, t0 + ms(2600));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
    // Down is final for an incarnation: late batches change nothing...
    t.heard_from(&node("b"), t0 + ms(2700));
    assert!(check(&mut t, t0 + ms(2800)).events.is_empty());
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Down);
    // ...but a heartbeat from it makes this node tell it so (once a second).
    let ch = t.on_heartbeat(&node("b"), 1, t0 + ms(2900));
    assert_eq!(ch.tell.len(), 1);
    assert_eq!(ch.tell[0].status, MemberStatus::Down);
    assert!(t.on_heartbeat(&node("b"), 1, t0 + ms(3000)).tell.is_empty());
    assert_eq!(t.on_heartbeat(&node("b"), 1, t0 + ms(3900)).tell.len(), 1);
    // Not when it already runs a newer incarnation (gossip will bring it).
    assert!(t.on_heartbeat(&node("b"), 2, t0 + ms(5000)).tell.is_empty());
    // Unknown nodes and this node are ignored.
    t.heard_from(&node("zz"), t0 + ms(3100));
    t.heard_from(&node("me"), t0 + ms(3100));
    assert!(t.on_heartbeat(&node("zz"), 1, t0 + ms(3100)).is_empty());
    assert!(t.get(&node("zz")).is_none());
}

#[test]
fn a_down_rumour_is_rejected_while_the_member_is_heard() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    t.heard_from(&node("b"), t0 + ms(100));
    // Another node (cut off, or paused) gossips b as Down: not believed.
    let ch = t.merge(vec![member("b", 1, 1, MemberStatus::Down)], t0 + ms(150));
    assert!(ch.is_empty(), "{ch:?}");
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Up);
    // Also not with a higher incarnation: the incarnation is taken, Up.
    let ch = t.merge(vec![member("b", 3, 1, MemberStatus::Down)], t0 + ms(200));
    assert!(ch.events.is_empty());
    let row = t.get(&node("b")).unwrap();
    assert_eq!((row.incarnation, row.status), (3, MemberStatus::Up));
    // Once this node has not heard b for suspect_after, it agrees.
    t.heard_from(&node("b"), t0 + ms(250));
    let ch = t.merge(vec![member("b", 3, 2, MemberStatus::Down)], t0 + ms(550));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
}

#[test]
fn a_paused_node_does_not_suspect_anyone_for_its_own_pause() {
    let t0 = Instant::now();
    let w0 = std::time::SystemTime::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    t.heard_from(&node("b"), t0);
    t.tick(t0, w0);
    assert_eq!(t.tick(t0 + ms(100), w0 + ms(100)), Duration::ZERO);
    // This node stops for 10 s (SIGSTOP), then runs its check first.
    let resumed = t0 + ms(10_100);
    assert!(t.tick(resumed, w0 + ms(10_100)) > ms(9_000));
    assert!(check(&mut t, resumed).events.is_empty());
    // Its links were closed by the others meanwhile: not evidence either.
    let ch = t.link_down(&node("b"), resumed + ms(1));
    assert_eq!(
        statuses(&ch),
        vec![("link_lost:b".into(), MemberStatus::Up)]
    );
    assert_eq!(t.get(&node("b")).unwrap().status, MemberStatus::Up);
    // b answers: trust is back, and b stays Up.
    t.heard_from(&node("b"), resumed + ms(5));
    assert!(check(&mut t, resumed + ms(100)).events.is_empty());
    // If b really died meanwhile, it is found out from the resume on.
    let ch = check(&mut t, resumed + ms(305));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Suspect)]);
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
    // Nothing is reported about it after its Left, not even its link.
    assert!(t.link_down(&node("b"), t0 + ms(30)).is_empty());
    // Silence after leaving is not a failure, and Left beats stale Up rows.
    assert!(check(&mut t, t0 + ms(4000)).events.is_empty());
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
    let ch = t.link_down(&node("b"), t0 + ms(10));
    let lost = ("link_lost:b".to_owned(), MemberStatus::Leaving);
    assert_eq!(statuses(&ch), vec![lost]);
    // This node leaves: its peers close their links, nobody is suspected.
    t.set_my_status(MemberStatus::Leaving, t0 + ms(20));
    let ch = t.link_down(&node("c"), t0 + ms(30));
    assert_eq!(
        statuses(&ch),
        vec![("link_lost:c".into(), MemberStatus::Up)]
    );
    assert_eq!(t.get(&node("c")).unwrap().status, MemberStatus::Up);
}

#[test]
fn a_silent_leaving_member_becomes_left_not_down() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Leaving)], t0);
    let ch = check(&mut t, t0 + ms(600));
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
    let ch = t.merge(vec![member("me", 1, 0, MemberStatus::Down)], t0);
    assert!(ch.push_all, "the refutation is pushed to everyone at once");
    assert_eq!(t.me().incarnation, 2);
    assert_eq!(t.me().status, MemberStatus::Up);
    t.merge(vec![member("me", 7, 0, MemberStatus::Up)], t0);
    assert_eq!(t.me().incarnation, 8);
    // While leaving, nothing is refuted.
    t.set_my_status(MemberStatus::Leaving, t0);
    let ch = t.merge(vec![member("me", 9, 0, MemberStatus::Down)], t0);
    assert!(!ch.push_all);
    assert_eq!(t.me().incarnation, 8);
}

#[test]
fn down_members_are_given_up_then_removed_behind_a_tombstone() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Up)], t0);
    check(&mut t, t0 + ms(300));
    let ch = check(&mut t, t0 + ms(600));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Down)]);
    assert_eq!(ch.heal, vec![(node("b"), "ws://127.0.0.1/b".into())]);
    assert!(check(&mut t, t0 + ms(2599)).disconnect.is_empty());
    assert_eq!(check(&mut t, t0 + ms(2600)).disconnect, vec![node("b")]);
    assert!(check(&mut t, t0 + ms(5599)).disconnect.is_empty());
    // remove_after (5 s) after going Down: removed, once.
    let ch = check(&mut t, t0 + ms(5600));
    assert!(matches!(&ch.events[..], [MemberEvent::Removed(m)] if m.node == "b"));
    assert!(ch.disconnect.is_empty(), "already given up");
    assert!(t.get(&node("b")).is_none());
    assert!(t.is_tombstoned(&node("b")));
    assert_eq!(t.members().len(), 1);
    // Stale gossip of the old incarnation cannot bring it back...
    assert!(t
        .merge(vec![member("b", 1, 50, MemberStatus::Up)], t0 + ms(5700))
        .is_empty());
    assert!(t.get(&node("b")).is_none());
    // ...its heartbeats get it told it is Down...
    let told = t.on_heartbeat(&node("b"), 1, t0 + ms(5800)).tell;
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].incarnation, told[0].status),
        (1, MemberStatus::Down)
    );
    // ...and a removed Down member is still dialled now and then.
    let heal = check(&mut t, t0 + ms(10_600)).heal;
    assert_eq!(heal, vec![(node("b"), "ws://127.0.0.1/b".into())]);
    // A higher incarnation is a new member.
    let ch = t.merge(vec![member("b", 2, 0, MemberStatus::Up)], t0 + ms(10_700));
    assert_eq!(statuses(&ch), vec![("b".into(), MemberStatus::Up)]);
    assert!(!t.is_tombstoned(&node("b")));
}

#[test]
fn left_members_are_removed_too() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(vec![member("b", 1, 1, MemberStatus::Left)], t0);
    assert!(check(&mut t, t0 + ms(4999)).events.is_empty());
    let ch = check(&mut t, t0 + ms(5000));
    assert!(matches!(&ch.events[..], [MemberEvent::Removed(m)] if m.status == MemberStatus::Left));
    assert!(ch.heal.is_empty(), "a Left member is never dialled");
    assert!(t
        .merge(vec![member("b", 1, 2, MemberStatus::Up)], t0 + ms(5100))
        .is_empty());
    assert!(t.get(&node("b")).is_none());
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
    // Down: the load is no longer shown.
    t.merge(vec![member("b", 1, 3, MemberStatus::Down)], t0 + ms(400));
    assert_eq!(t.get(&node("b")).unwrap().load, Load::default());
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

#[test]
fn unlinked_members_are_dialled_every_second_down_ones_less_often() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.merge(
        vec![
            member("a", 1, 1, MemberStatus::Up),
            member("d", 1, 1, MemberStatus::Down),
        ],
        t0,
    );
    t.heard_from(&node("a"), t0);
    let mut dials = Vec::new();
    let mut now = t0;
    while now < t0 + ms(4_900) {
        t.heard_from(&node("a"), now);
        dials.extend(check(&mut t, now).heal.into_iter().map(|(n, _)| n));
        now += ms(100);
    }
    let count = |n: &str| dials.iter().filter(|d| d.as_str() == n).count();
    assert_eq!(count("a"), 5);
    assert_eq!(count("d"), 1);
}

#[test]
fn the_table_is_bounded() {
    let t0 = Instant::now();
    let mut t = table(t0);
    let rows: Vec<Member> = (0..crate::wire::MAX_MEMBERS + 5)
        .map(|i| member(&format!("n{i}"), 1, 1, MemberStatus::Down))
        .collect();
    t.merge(rows, t0);
    assert_eq!(t.members().len(), crate::wire::MAX_MEMBERS);
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
