//! Which PBX channel is whose in each call, so a panel command can name it: a blind or
//! attended transfer acts on the agent's leg, a redirect or hold on the customer's channel,
//! a hang-up on the agent's leg.
//!
//! It reads the same normalized events as the call tracker and keys calls by Linkedid (the
//! tracker's call id is the first Linkedid of the family; [`ChannelBook::merge`] follows its
//! merges). It is not a second call tracker: it keeps channel names and nothing else.

use std::collections::HashMap;

use crate::event::{ChanRef, PbxEvent};
use crate::ids::{Extension, LinkedId, Uniqueid};

/// The channels of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallChannels {
    /// The customer's channel (the trunk leg of an inbound call, the dialled party of an
    /// outbound call).
    pub customer: Option<String>,
    /// Each agent's leg, latest first seen last.
    pub agents: Vec<(Extension, String, Uniqueid)>,
}

impl CallChannels {
    /// The channel of `extension`'s leg.
    pub fn agent_leg(&self, extension: &str) -> Option<&str> {
        self.agents
            .iter()
            .rev()
            .find(|(e, _, _)| e.as_str() == extension)
            .map(|(_, name, _)| name.as_str())
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ChannelBook {
    calls: HashMap<LinkedId, CallChannels>,
    /// Calls absorbed by a merge, pointing at the survivor.
    aliases: HashMap<LinkedId, LinkedId>,
    /// Uniqueid → (Linkedid, name), to follow renames and hangups.
    channels: HashMap<Uniqueid, (LinkedId, String)>,
    /// Extensions that belong to agents; other extensions are outside numbers.
    agent_extensions: std::collections::HashSet<String>,
}

impl ChannelBook {
    /// An empty book knowing which extensions are agents' phones.
    pub fn new(agent_extensions: impl IntoIterator<Item = String>) -> Self {
        Self {
            agent_extensions: agent_extensions.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Adds an agent extension.
    pub fn add_agent_extension(&mut self, extension: &str) {
        self.agent_extensions.insert(extension.to_owned());
    }

    /// True for the events this book reads (so a caller can skip cloning the others).
    pub fn wants(event: &PbxEvent) -> bool {
        matches!(
            event,
            PbxEvent::ChannelCreated { .. }
                | PbxEvent::ChannelRenamed { .. }
                | PbxEvent::DialBegin { .. }
                | PbxEvent::QueueCallerJoin { .. }
                | PbxEvent::AgentCalled { .. }
                | PbxEvent::AgentConnect { .. }
                | PbxEvent::Hangup { .. }
                | PbxEvent::Resynced { .. }
        )
    }

    /// The channels of a call (by the tracker's call id).
    pub fn call(&self, call_id: &str) -> Option<&CallChannels> {
        let key = self.aliases.get(call_id).map_or(call_id, LinkedId::as_str);
        self.calls.get(key)
    }

    /// Number of calls with known channels.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when no call is known.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Folds `absorbed` into `survivor` (the tracker's `CallsMerged`).
    pub fn merge(&mut self, survivor: &str, absorbed: &str) {
        if let Some(old) = self.calls.remove(absorbed) {
            let target = self.calls.entry(LinkedId::new(survivor)).or_default();
            if target.customer.is_none() {
                target.customer = old.customer;
            }
            target.agents.extend(old.agents);
        }
        self.aliases
            .insert(LinkedId::new(absorbed), LinkedId::new(survivor));
    }

    /// Forgets a call (the tracker ended it).
    pub fn end(&mut self, call_id: &str) {
        self.calls.remove(call_id);
        self.aliases
            .retain(|_, survivor| survivor.as_str() != call_id);
    }

    /// Reads one event.
    pub fn observe(&mut self, event: &PbxEvent) {
        match event {
            PbxEvent::ChannelCreated { chan, .. } => self.remember(chan),
            PbxEvent::ChannelRenamed { uniqueid, new_name } => {
                if let Some((linkedid, name)) = self.channels.get_mut(uniqueid) {
                    let old = std::mem::replace(name, new_name.clone());
                    if let Some(call) = self.calls.get_mut(linkedid.as_str()) {
                        if call.customer.as_deref() == Some(old.as_str()) {
                            call.customer = Some(new_name.clone());
                        }
                        for (_, leg, _) in &mut call.agents {
                            if *leg == old {
                                leg.clone_from(new_name);
                            }
                        }
                    }
                }
            }
            PbxEvent::QueueCallerJoin { chan, .. } => self.set_customer(chan),
            PbxEvent::AgentCalled { caller, dest, .. }
            | PbxEvent::AgentConnect { caller, dest, .. } => {
                self.set_customer(caller);
                if let Some(extension) = extension_of_channel(&dest.name) {
                    self.set_agent(dest, extension);
                }
            }
            PbxEvent::DialBegin { caller, dest, .. } => {
                let dest_agent =
                    extension_of_channel(&dest.name).filter(|e| self.agent_extensions.contains(*e));
                let caller_agent = caller.as_ref().and_then(|c| {
                    extension_of_channel(&c.name).filter(|e| self.agent_extensions.contains(*e))
                });
                match (caller, dest_agent, caller_agent) {
                    (_, Some(extension), _) => {
                        self.set_agent(dest, extension);
                        if let (Some(caller), None) = (caller, caller_agent) {
                            self.set_customer_if_unknown(caller);
                        }
                    }
                    // An agent dials out: the dialled party is the customer.
                    (Some(caller), None, Some(extension)) => {
                        self.set_agent(caller, extension);
                        self.set_customer_if_unknown(dest);
                    }
                    _ => {}
                }
            }
            PbxEvent::Hangup { chan, .. } => {
                self.channels.remove(&chan.uniqueid);
                if let Some(call) = self.calls.get_mut(chan.linkedid.as_str()) {
                    if call.customer.as_deref() == Some(chan.name.as_str()) {
                        call.customer = None;
                    }
                    call.agents.retain(|(_, _, uid)| *uid != chan.uniqueid);
                }
            }
            PbxEvent::Resynced { channels } => {
                let live: std::collections::HashSet<&Uniqueid> =
                    channels.iter().map(|c| &c.chan.uniqueid).collect();
                self.channels.retain(|uid, _| live.contains(uid));
                let names: std::collections::HashSet<&str> =
                    self.channels.values().map(|(_, n)| n.as_str()).collect();
                for call in self.calls.values_mut() {
                    call.agents.retain(|(_, _, uid)| live.contains(uid));
                    if call.customer.as_deref().is_some_and(|c| !names.contains(c)) {
                        call.customer = None;
                    }
                }
                for channel in channels {
                    self.remember(&channel.chan);
                }
            }
            _ => {}
        }
    }

    fn remember(&mut self, chan: &ChanRef) {
        self.channels.insert(
            chan.uniqueid.clone(),
            (chan.linkedid.clone(), chan.name.clone()),
        );
    }

    fn entry(&mut self, chan: &ChanRef) -> &mut CallChannels {
        let key = self
            .aliases
            .get(chan.linkedid.as_str())
            .cloned()
            .unwrap_or_else(|| chan.linkedid.clone());
        self.calls.entry(key).or_default()
    }

    fn set_customer(&mut self, chan: &ChanRef) {
        self.remember(chan);
        self.entry(chan).customer = Some(chan.name.clone());
    }

    fn set_customer_if_unknown(&mut self, chan: &ChanRef) {
        self.remember(chan);
        let call = self.entry(chan);
        if call.customer.is_none() {
            call.customer = Some(chan.name.clone());
        }
    }

    fn set_agent(&mut self, chan: &ChanRef, extension: &str) {
        self.remember(chan);
        let call = self.entry(chan);
        if !call.agents.iter().any(|(_, _, uid)| *uid == chan.uniqueid) {
            call.agents.push((
                Extension::new(extension),
                chan.name.clone(),
                chan.uniqueid.clone(),
            ));
        }
    }
}

/// The extension in a phone channel's name: `PJSIP/101-0000001a` → `101`,
/// `Local/101@agents-00000012;1` → `101`, `SIP/alice-00000001` → `alice`. `None` when the
/// name has no technology prefix.
pub fn extension_of_channel(name: &str) -> Option<&str> {
    let (_, rest) = name.split_once('/')?;
    let end = if name.starts_with("Local/") {
        rest.find('@')
    } else {
        rest.rfind('-')
    };
    let extension = &rest[..end.unwrap_or(rest.len())];
    (!extension.is_empty()).then_some(extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chan(uid: &str, linkedid: &str, name: &str) -> ChanRef {
        ChanRef {
            uniqueid: Uniqueid::new(uid),
            linkedid: LinkedId::new(linkedid),
            name: name.to_owned(),
        }
    }

    #[test]
    fn extensions_from_channel_names() {
        for (name, want) in [
            ("PJSIP/101-0000001a", Some("101")),
            ("Local/101@agents-00000012;1", Some("101")),
            ("SIP/alice-00000001", Some("alice")),
            ("Local/+15550001111@pstn-0000002c;1", Some("+15550001111")),
            ("nonsense", None),
            ("PJSIP/", None),
        ] {
            assert_eq!(extension_of_channel(name), want, "{name}");
        }
    }

    #[test]
    fn queue_call_then_blind_transfer() {
        let mut book = ChannelBook::new(["101".to_owned(), "102".to_owned()]);
        let customer = chan("1.1", "1.0", "Local/+18005550100@incoming-00000001;2");
        let leg101 = chan("1.5", "1.0", "Local/101@agents-00000003;1");
        let leg102 = chan("1.9", "1.0", "Local/102@agents-00000005;1");
        book.observe(&PbxEvent::QueueCallerJoin {
            chan: customer.clone(),
            queue: "sales".into(),
        });
        book.observe(&PbxEvent::AgentConnect {
            caller: customer.clone(),
            dest: leg101.clone(),
            queue: "sales".into(),
            member: crate::event::QueueMember {
                interface: "Local/101@agents/nm".into(),
                name: "Agent 101".into(),
            },
            hold_time_s: 1,
        });
        let call = book.call("1.0").unwrap();
        assert_eq!(call.customer.as_deref(), Some(customer.name.as_str()));
        assert_eq!(call.agent_leg("101"), Some(leg101.name.as_str()));
        book.observe(&PbxEvent::Hangup {
            chan: leg101,
            cause: 16,
        });
        book.observe(&PbxEvent::DialBegin {
            caller: Some(customer.clone()),
            caller_num: None,
            dest: leg102.clone(),
            dial_string: "102@agents/nm".into(),
        });
        let call = book.call("1.0").unwrap();
        assert_eq!(call.agent_leg("101"), None);
        assert_eq!(call.agent_leg("102"), Some(leg102.name.as_str()));
        book.merge("1.0", "2.0");
        assert!(book.call("2.0").is_some());
        book.end("1.0");
        assert!(book.call("1.0").is_none() && book.call("2.0").is_none());
    }

    #[test]
    fn click_to_call_customer_is_the_dialled_party() {
        let mut book = ChannelBook::new(["101".to_owned()]);
        let agent = chan("3.1", "3.1", "Local/101@agents-00000010;1");
        let outside = chan("3.3", "3.1", "Local/+15550001111@pstn-00000011;1");
        book.observe(&PbxEvent::DialBegin {
            caller: Some(agent.clone()),
            caller_num: Some("+18005550100".into()),
            dest: outside.clone(),
            dial_string: "+15550001111@pstn".into(),
        });
        let call = book.call("3.1").unwrap();
        assert_eq!(call.customer.as_deref(), Some(outside.name.as_str()));
        assert_eq!(call.agent_leg("101"), Some(agent.name.as_str()));
        book.observe(&PbxEvent::ChannelRenamed {
            uniqueid: Uniqueid::new("3.3"),
            new_name: "PJSIP/trunk-1".into(),
        });
        assert_eq!(
            book.call("3.1").unwrap().customer.as_deref(),
            Some("PJSIP/trunk-1")
        );
    }
}
