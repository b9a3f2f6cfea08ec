//! Who is online in each project: the members with at least one open socket, on any
//! instance, and how many each has.
//!
//! Every second, when anything it depends on moved (a socket here, a watched membership,
//! another instance's last recorded change, the set of live instances; see
//! `Realtime::presence_sources`) and every ten seconds regardless, the node reads, for the
//! projects whose streams its sockets receive (a tenth of them at a time, over half a
//! second, so that the reads never come in one burst), each member's sockets on the other
//! instances (`socket_presence`, written by every instance
//! each second; an instance that stops marking itself alive drops out after
//! `PRESENCE_STALE`) and adds its own. [`ProjectPresence::update`] compares that with what
//! the sockets were last told and makes at most one message per project: `presence.joined`
//! (members who came online or whose device count changed) or `presence.left`; when both
//! are due, joins go first and the two kinds then take turns, so that a project whose
//! members keep coming and going still announces who left within two seconds; what did
//! not fit waits for the next second. A message waits in each socket's mailbox and goes out
//! ahead of its next frame, or alone when it has waited 0.8 s (`hub`), so presence costs
//! few wake-ups and writes of its own. Presence is state, not
//! history: it is in no stream and has no seq. Projects with more than
//! `PRESENCE_MAX_MEMBERS` members get counts only.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use uuid::Uuid;

use super::hub::Hub;
use super::protocol::ServerMessage;
use crate::domain::StreamKey;
use crate::store::{Store, StoreResult};

/// An instance not marked alive for this long is taken for dead: its sockets are gone
/// (three missed marks; instances mark themselves every two seconds).
pub const STALE: chrono::Duration = chrono::Duration::seconds(6);

/// One member's presence: how many sockets they have open (0: went offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemberPresence {
    pub user_id: Uuid,
    pub devices: usize,
}

/// A project's presence as `ready` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceState {
    /// Members with at least one socket open.
    pub online: usize,
    /// Who they are; absent above `PRESENCE_MAX_MEMBERS` members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberPresence>>,
}

/// What one project looks like now: its number of members, and the online ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectCounts {
    pub members: usize,
    pub online: HashMap<Uuid, usize>,
}

#[derive(Debug, Default)]
struct Announced {
    members: usize,
    online: HashMap<Uuid, usize>,
    /// The last message was a `presence.joined` sent while leaves were due too: they go
    /// next, even if more members joined meanwhile.
    leaves_waited: bool,
    /// What was read last is not all announced yet (joins or leaves wait their turn): the
    /// next pass must read and announce even if nothing moved.
    pending: bool,
}

/// What the sockets of this instance were told of each project they watch.
pub struct ProjectPresence {
    announced: Mutex<HashMap<Uuid, Announced>>,
    max_members: usize,
    /// This instance: its own sockets are counted from the hub, not from the table.
    instance: Uuid,
}

impl ProjectPresence {
    pub fn new(max_members: usize, instance: Uuid) -> Self {
        Self {
            announced: Mutex::new(HashMap::new()),
            max_members,
            instance,
        }
    }

    /// Each of these projects' members and who of them is online now: their sockets on
    /// the other live instances, and here.
    pub async fn read(
        &self,
        projects: &[Uuid],
        store: &dyn Store,
        hub: &Hub,
    ) -> StoreResult<HashMap<Uuid, ProjectCounts>> {
        let fresh_since = crate::domain::now() - STALE;
        let mut now: HashMap<Uuid, ProjectCounts> = projects
            .iter()
            .map(|&p| (p, ProjectCounts::default()))
            .collect();
        for chunk in projects.chunks(500) {
            let rows = store
                .project_presence(chunk, self.instance, fresh_since)
                .await?;
            for (project, user, remote) in rows {
                let counts = now.entry(project).or_default();
                counts.members += 1;
                let devices = remote.max(0) as usize + hub.devices(user);
                if devices > 0 {
                    counts.online.insert(user, devices);
                }
            }
        }
        Ok(now)
    }

    /// The projects' presence as announced to this instance's sockets, in their order;
    /// the ones new here are read now (in one query) and announced from then on.
    pub async fn snapshots(
        &self,
        projects: &[Uuid],
        store: &dyn Store,
        hub: &Hub,
    ) -> StoreResult<Vec<PresenceState>> {
        let unknown: Vec<Uuid> = projects
            .iter()
            .copied()
            .filter(|&p| self.announced_state(p).is_none())
            .collect();
        let mut read = if unknown.is_empty() {
            HashMap::new()
        } else {
            self.read(&unknown, store, hub).await?
        };
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        Ok(projects
            .iter()
            .map(|project_id| {
                let state = announced.entry(*project_id).or_insert_with(|| {
                    let counts = read.remove(project_id).unwrap_or_default();
                    Announced {
                        members: counts.members,
                        online: counts.online,
                        leaves_waited: false,
                        pending: false,
                    }
                });
                self.state_of(state)
            })
            .collect())
    }

    fn announced_state(&self, project_id: Uuid) -> Option<PresenceState> {
        let announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.get(&project_id).map(|state| self.state_of(state))
    }

    fn state_of(&self, state: &Announced) -> PresenceState {
        PresenceState {
            online: state.online.len(),
            members: (state.members <= self.max_members).then(|| sorted(&state.online)),
        }
    }

    /// Forgets what was announced of projects no socket here watches any more.
    pub fn forget_unwatched(&self, watched: &[Uuid]) {
        let watched: HashSet<Uuid> = watched.iter().copied().collect();
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.retain(|project, _| watched.contains(project));
    }

    /// Takes some projects' current presence and returns the message to send to each
    /// project's sockets, if any.
    pub fn update(&self, now: HashMap<Uuid, ProjectCounts>) -> Vec<(Uuid, ServerMessage)> {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        let mut messages = Vec::new();
        for (project_id, counts) in now {
            let state = announced.entry(project_id).or_default();
            state.members = counts.members;
            let stream = StreamKey::Project(project_id);
            if counts.members > self.max_members {
                let before = state.online.len();
                state.online = counts.online;
                let online = state.online.len();
                let message = if online > before {
                    Some(ServerMessage::PresenceJoined {
                        stream,
                        online,
                        members: None,
                    })
                } else if online < before {
                    Some(ServerMessage::PresenceLeft {
                        stream,
                        online,
                        members: None,
                    })
                } else {
                    None
                };
                messages.extend(message.map(|m| (project_id, m)));
                state.pending = false;
                continue;
            }
            let mut joined: Vec<MemberPresence> = counts
                .online
                .iter()
                .filter(|(user, devices)| state.online.get(user) != Some(devices))
                .map(|(&user_id, &devices)| MemberPresence { user_id, devices })
                .collect();
            let mut left: Vec<MemberPresence> = state
                .online
                .keys()
                .filter(|user| !counts.online.contains_key(user))
                .map(|&user_id| MemberPresence {
                    user_id,
                    devices: 0,
                })
                .collect();
            let leaves_now = !left.is_empty() && (joined.is_empty() || state.leaves_waited);
            if leaves_now {
                left.sort_by_key(|m| m.user_id);
                for member in &left {
                    state.online.remove(&member.user_id);
                }
                state.leaves_waited = false;
                messages.push((
                    project_id,
                    ServerMessage::PresenceLeft {
                        stream,
                        online: state.online.len(),
                        members: Some(left),
                    },
                ));
            } else if !joined.is_empty() {
                joined.sort_by_key(|m| m.user_id);
                for member in &joined {
                    state.online.insert(member.user_id, member.devices);
                }
                state.leaves_waited = !left.is_empty();
                messages.push((
                    project_id,
                    ServerMessage::PresenceJoined {
                        stream,
                        online: state.online.len(),
                        members: Some(joined),
                    },
                ));
            }
            state.pending = state.online != counts.online;
        }
        messages
    }

    /// Whether everything read so far has been announced (see `Announced::pending`).
    pub fn is_settled(&self) -> bool {
        let announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.values().all(|state| !state.pending)
    }
}

fn sorted(online: &HashMap<Uuid, usize>) -> Vec<MemberPresence> {
    let mut members: Vec<MemberPresence> = online
        .iter()
        .map(|(&user_id, &devices)| MemberPresence { user_id, devices })
        .collect();
    members.sort_by_key(|m| m.user_id);
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(members: usize, online: &[(u128, usize)]) -> ProjectCounts {
        ProjectCounts {
            members,
            online: online
                .iter()
                .map(|&(id, d)| (Uuid::from_u128(id), d))
                .collect(),
        }
    }

    fn kind(message: &ServerMessage) -> (&'static str, usize, Option<usize>) {
        match message {
            ServerMessage::PresenceJoined {
                online, members, ..
            } => ("joined", *online, members.as_ref().map(Vec::len)),
            ServerMessage::PresenceLeft {
                online, members, ..
            } => ("left", *online, members.as_ref().map(Vec::len)),
            _ => ("other", 0, None),
        }
    }

    fn announced(presence: &ProjectPresence, p: Uuid) -> PresenceState {
        presence.announced_state(p).unwrap_or(PresenceState {
            online: 0,
            members: None,
        })
    }

    #[test]
    fn one_message_per_project_and_update_joins_first() {
        let presence = ProjectPresence::new(100, Uuid::nil());
        let p = Uuid::from_u128(99);
        let first = presence.update(HashMap::from([(p, counts(3, &[(1, 1), (2, 2)]))]));
        assert_eq!(first.len(), 1);
        assert_eq!(kind(&first[0].1), ("joined", 2, Some(2)));
        assert_eq!(announced(&presence, p).online, 2);
        assert!(presence.is_settled());
        // 1 leaves and 3 arrives in the same second: the join goes first, the leave next
        // (and until then what was read is not all announced: the next pass must read).
        let next = presence.update(HashMap::from([(p, counts(3, &[(2, 2), (3, 1)]))]));
        assert_eq!(kind(&next[0].1), ("joined", 3, Some(1)));
        assert!(!presence.is_settled());
        let after = presence.update(HashMap::from([(p, counts(3, &[(2, 2), (3, 1)]))]));
        assert_eq!(kind(&after[0].1), ("left", 2, Some(1)));
        assert!(presence.is_settled());
        assert!(presence
            .update(HashMap::from([(p, counts(3, &[(2, 2), (3, 1)]))]))
            .is_empty());
        // A device more is news too.
        let more = presence.update(HashMap::from([(p, counts(3, &[(2, 3), (3, 1)]))]));
        assert_eq!(kind(&more[0].1), ("joined", 2, Some(1)));
    }

    #[test]
    fn leaves_are_announced_while_others_keep_joining() {
        let presence = ProjectPresence::new(100, Uuid::nil());
        let p = Uuid::from_u128(5);
        presence.update(HashMap::from([(p, counts(9, &[(1, 1), (2, 1)]))]));
        // Every second someone new comes and someone goes: joins and leaves take turns.
        let second = presence.update(HashMap::from([(p, counts(9, &[(2, 1), (3, 1)]))]));
        assert_eq!(kind(&second[0].1), ("joined", 3, Some(1)));
        let third = presence.update(HashMap::from([(p, counts(9, &[(3, 1), (4, 1)]))]));
        assert_eq!(kind(&third[0].1), ("left", 1, Some(2)), "1 and 2 left");
        let fourth = presence.update(HashMap::from([(p, counts(9, &[(4, 1), (5, 1)]))]));
        assert_eq!(kind(&fourth[0].1), ("joined", 3, Some(2)), "4 and 5 joined");
        let fifth = presence.update(HashMap::from([(p, counts(9, &[(5, 1), (6, 1)]))]));
        assert_eq!(kind(&fifth[0].1), ("left", 1, Some(2)), "3 and 4 left");
        assert_eq!(announced(&presence, p).online, 1);
    }

    #[test]
    fn large_projects_get_counts_only_and_unwatched_ones_are_forgotten() {
        let presence = ProjectPresence::new(2, Uuid::nil());
        let p = Uuid::from_u128(7);
        let up = presence.update(HashMap::from([(p, counts(3, &[(1, 1), (2, 1)]))]));
        assert_eq!(kind(&up[0].1), ("joined", 2, None));
        assert_eq!(announced(&presence, p).members, None);
        let down = presence.update(HashMap::from([(p, counts(3, &[(1, 1)]))]));
        assert_eq!(kind(&down[0].1), ("left", 1, None));
        presence.forget_unwatched(&[]);
        assert_eq!(announced(&presence, p).online, 0);
    }
}
