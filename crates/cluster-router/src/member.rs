//! Public membership types: [`Member`], [`MemberStatus`], [`Load`], [`MemberEvent`].

use serde::{Deserialize, Serialize};

use crate::addr::NodeId;

/// The life-cycle state of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MemberStatus {
    /// Alive: heard on its link within `suspect_after`.
    Up,
    /// Not heard on its link for `suspect_after` (or its link just dropped):
    /// unreachable from this node, perhaps alive elsewhere. Still routable;
    /// Up again as soon as it is heard.
    Suspect,
    /// Failed: silent for `down_after`, confirmed by other members (or with
    /// nobody else to ask). Final for its incarnation; the node itself, if
    /// it was only cut off or paused, comes back by refuting with a higher
    /// incarnation.
    Down,
    /// Announced a graceful leave; still serving while it drains.
    Leaving,
    /// Left gracefully; never counted as a failure.
    Left,
}

impl MemberStatus {
    /// Precedence when two views of the same incarnation disagree: the
    /// stronger status wins (`Left > Down > Leaving > Up`). Suspicion is a
    /// local opinion and ranks like Up.
    pub(crate) fn rank(self) -> u8 {
        match self {
            MemberStatus::Up | MemberStatus::Suspect => 0,
            MemberStatus::Leaving => 1,
            MemberStatus::Down => 2,
            MemberStatus::Left => 3,
        }
    }

    /// Whether messages may still be routed to a member in this state.
    pub fn is_reachable(self) -> bool {
        matches!(
            self,
            MemberStatus::Up | MemberStatus::Suspect | MemberStatus::Leaving
        )
    }
}

/// A node's self-reported load, refreshed by gossip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// CPU use in percent (0..=100 per core summed, as the node reports it).
    pub cpu_percent: f32,
    /// Jobs or requests currently being processed.
    pub in_flight: u32,
    /// Messages or jobs waiting in queues.
    pub queue_depth: u32,
}

/// One row of the membership table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The node's logical name.
    pub node: NodeId,
    /// The node's WebSocket URL (`ws://127.0.0.1:7000`).
    pub url: String,
    /// Grows each time the node restarts (or refutes a false suspicion);
    /// a higher incarnation supersedes everything known about a lower one.
    pub incarnation: u64,
    /// Up, Suspect, Down, Leaving or Left.
    pub status: MemberStatus,
    /// Incremented by the node itself every gossip interval.
    pub heartbeat: u64,
    /// Capability tags (`gpu`, `kind:sha256`).
    pub tags: Vec<String>,
    /// Last reported load.
    pub load: Load,
}

impl Member {
    /// Whether the member carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Whether the member is [`MemberStatus::Up`].
    pub fn is_up(&self) -> bool {
        self.status == MemberStatus::Up
    }
}

/// A change in the membership, delivered by [`Router::subscribe`](crate::Router::subscribe).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// A member became Up: it joined, it restarted after being Down, or it
    /// recovered from suspicion.
    Up(Member),
    /// A member is suspected (silent for `suspect_after`, or its link dropped).
    Suspect(Member),
    /// A member failed (silent for `down_after`, confirmed).
    Down(Member),
    /// A member announced a graceful leave.
    Leaving(Member),
    /// A member left gracefully (never also reported Down).
    Left(Member),
    /// A member's tags or URL changed (load changes are not announced; read
    /// them from [`Router::members`](crate::Router::members)).
    Updated(Member),
    /// A Down or Left member was removed from the table after
    /// [`RouterConfig::remove_after`](crate::RouterConfig::remove_after)
    /// (the row as it was, without load). It may come back only with a
    /// higher incarnation (a restart, or a refutation).
    Removed(Member),
    /// The link to a member that is not Down or Left was lost (it broke,
    /// or was closed); published right after the
    /// [`Suspect`](Self::Suspect) the loss may cause. Not a change of
    /// status: what was written into that link and not yet read at the
    /// other end may be lost with it (the next link starts empty), so a
    /// sender that needs an answer to something it sent there must not
    /// wait for it. A coordinator places again at once the attempts it had
    /// in flight on that node.
    LinkLost(Member),
}

impl MemberEvent {
    /// The member the event is about.
    pub fn member(&self) -> &Member {
        match self {
            MemberEvent::Up(m)
            | MemberEvent::Suspect(m)
            | MemberEvent::Down(m)
            | MemberEvent::Leaving(m)
            | MemberEvent::Left(m)
            | MemberEvent::Updated(m)
            | MemberEvent::Removed(m)
            | MemberEvent::LinkLost(m) => m,
        }
    }

    /// The event a transition into `status` produces.
    pub(crate) fn for_status(member: Member) -> MemberEvent {
        match member.status {
            MemberStatus::Up => MemberEvent::Up(member),
            MemberStatus::Suspect => MemberEvent::Suspect(member),
            MemberStatus::Down => MemberEvent::Down(member),
            MemberStatus::Leaving => MemberEvent::Leaving(member),
            MemberStatus::Left => MemberEvent::Left(member),
        }
    }
}
