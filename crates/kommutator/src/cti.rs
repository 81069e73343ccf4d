//! Glue between one Asterisk pipeline and the CTI hub: what the hub needs from each AMI batch
//! (tracker effects, the PBX events the channel book reads, queue pause facts), and panel
//! commands executed as AMI actions.

use std::sync::Arc;

use cti_core::agents::{ChannelBook, MemberPauseState, PresenceInput};
use cti_core::{CallTracker, Effect, QueueName, Timestamp};
use pbx_ami::client::{Action, ActionError, AmiClient};
use pbx_ami::codec::Frame;
use pbx_ami::translate;
use server::cti::{CommandError, CommandFuture, HubItem, PbxCommand, PbxControl};

/// Applies a batch of frames to the tracker. Returns the effects (for storage) and, in
/// order, what the hub needs (effects, channel facts, pause events).
pub fn apply_frames(
    tracker: &mut CallTracker,
    frames: &[Frame],
    clock: &mut Timestamp,
) -> (Vec<(Timestamp, Effect)>, Vec<HubItem>) {
    let mut effects = Vec::new();
    let mut items = Vec::new();
    for frame in frames {
        let frame = frame.as_ref();
        if frame.event() == Some(b"QueueMemberPause") {
            if let Some(state) = pause_state(&frame, "Interface") {
                items.push(HubItem::Presence(PresenceInput::MemberPaused(state)));
            }
            continue;
        }
        if frame.event() == Some(b"UserEvent") {
            if let Some(item) = route_reason(&frame) {
                items.push(item);
            }
        }
        let Some((event, at)) = translate::translate_timed(&frame) else {
            continue;
        };
        if let Some(ts) = at {
            *clock = ts;
        }
        if ChannelBook::wants(&event) {
            items.push(HubItem::Event(event.clone()));
        }
        for effect in tracker.apply(event, *clock) {
            items.push(HubItem::Effect(*clock, effect.clone()));
            effects.push((*clock, effect));
        }
    }
    (effects, items)
}

/// The hub's share of a resync: the live channels (for the channel book) and every queue
/// member's pause state (presence reconciliation).
pub fn resync_items(channels: &[Frame], queue_status: &[Frame]) -> Vec<HubItem> {
    let mut items = vec![HubItem::Event(translate::resync_event(channels))];
    let members: Vec<MemberPauseState> = queue_status
        .iter()
        .filter(|f| f.event() == Some(b"QueueMember"))
        .filter_map(|f| pause_state(&f.as_ref(), "Location"))
        .collect();
    items.push(HubItem::Presence(PresenceInput::QueueSnapshot(members)));
    items
}

/// `QueueMemberPause` names the member `Interface`; `QueueStatus` items call it `Location`.
fn pause_state(
    frame: &pbx_ami::codec::FrameRef<'_>,
    interface_header: &str,
) -> Option<MemberPauseState> {
    let interface = frame.get_str(interface_header)?.into_owned();
    Some(MemberPauseState {
        interface,
        queue: frame
            .get_str("Queue")
            .map(|q| QueueName::new(q.into_owned())),
        paused: frame.get("Paused") == Some(b"1"),
        reason: frame
            .get_str("PausedReason")
            .map(|r| r.into_owned())
            .unwrap_or_default(),
    })
}

/// The dialplan's `UserEvent: CtiRoute` (headers `Route` and, when the router gave one,
/// `Reason`) becomes the call's route reason.
fn route_reason(frame: &pbx_ami::codec::FrameRef<'_>) -> Option<HubItem> {
    if frame.get("UserEvent") != Some(b"CtiRoute") {
        return None;
    }
    let call_id = frame.get_str("Linkedid")?.into_owned();
    let route = frame.get_str("Route").map(|r| r.into_owned());
    let reason = frame.get_str("Reason").map(|r| r.into_owned());
    let text = match (reason, route) {
        (Some(reason), _) if !reason.is_empty() => reason,
        (_, Some(route)) if !route.is_empty() => {
            match frame.get_str("Queue").filter(|q| !q.is_empty()) {
                Some(queue) => format!("{route}: {queue}"),
                None => route,
            }
        }
        _ => return None,
    };
    Some(HubItem::RouteReason {
        call_id,
        reason: text,
    })
}

/// Panel commands as AMI actions on one Asterisk.
pub struct AmiControl {
    client: AmiClient,
}

impl AmiControl {
    pub fn new(client: AmiClient) -> Arc<Self> {
        Arc::new(Self { client })
    }
}

impl PbxControl for AmiControl {
    fn execute(&self, command: PbxCommand) -> CommandFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let res = match command {
                PbxCommand::Originate {
                    agent_channel,
                    number,
                    context,
                    caller_id,
                    timeout_ms,
                    channel_id,
                } => {
                    let mut action = Action::new("Originate")
                        .header("Channel", agent_channel)
                        .header("Context", context)
                        .header("Exten", number)
                        .header("Priority", "1")
                        .header("CallerID", caller_id)
                        .header("Timeout", timeout_ms.to_string());
                    if let Some(id) = channel_id {
                        action = action.header("ChannelId", id);
                    }
                    return match client.originate(action).await {
                        Ok(frame) if frame.get("Response") == Some(b"Success") => Ok(()),
                        Ok(frame) => Err(CommandError::Rejected(originate_reason(
                            frame.get_str("Reason").as_deref().unwrap_or(""),
                        ))),
                        Err(err) => Err(command_error(err)),
                    };
                }
                PbxCommand::Hangup { channel } => {
                    client
                        .send_action(Action::new("Hangup").header("Channel", channel))
                        .await
                }
                PbxCommand::BlindTransfer {
                    channel,
                    exten,
                    context,
                } => {
                    client
                        .send_action(
                            Action::new("BlindTransfer")
                                .header("Channel", channel)
                                .header("Exten", exten)
                                .header("Context", context),
                        )
                        .await
                }
                PbxCommand::AttendedTransfer {
                    channel,
                    exten,
                    context,
                } => {
                    client
                        .send_action(
                            Action::new("Atxfer")
                                .header("Channel", channel)
                                .header("Exten", exten)
                                .header("Context", context),
                        )
                        .await
                }
                PbxCommand::Redirect {
                    channel,
                    exten,
                    context,
                } => {
                    client
                        .send_action(
                            Action::new("Redirect")
                                .header("Channel", channel)
                                .header("Exten", exten)
                                .header("Context", context)
                                .header("Priority", "1"),
                        )
                        .await
                }
                PbxCommand::QueuePause {
                    interface,
                    paused,
                    reason,
                } => {
                    let mut action = Action::new("QueuePause")
                        .header("Interface", interface)
                        .header("Paused", if paused { "true" } else { "false" });
                    if let Some(reason) = reason {
                        action = action.header("Reason", reason);
                    }
                    client.send_action(action).await
                }
            };
            res.map(|_| ()).map_err(command_error)
        })
    }
}

fn command_error(err: ActionError) -> CommandError {
    match err {
        ActionError::NotConnected | ActionError::ClientStopped => CommandError::NotConnected,
        ActionError::Rejected { message, .. } => CommandError::Rejected(message),
        ActionError::InvalidAction(err) => CommandError::Rejected(err.to_string()),
        other => CommandError::Unknown(other.to_string()),
    }
}

/// Asterisk's `OriginateResponse` `Reason` codes in words.
fn originate_reason(code: &str) -> String {
    match code {
        "0" => "the phone could not be reached".to_owned(),
        "1" => "the phone hung up".to_owned(),
        "3" => "the phone did not answer".to_owned(),
        "5" => "the phone is busy".to_owned(),
        "8" => "the line is congested".to_owned(),
        other => format!("the call did not go through (reason {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_events_and_queue_status_become_presence_inputs() {
        let pause = Frame::parse(
            b"Event: QueueMemberPause\r\nQueue: sales\r\nInterface: Local/101@agents/nm\r\nPaused: 1\r\nPausedReason: lunch\r\n\r\n",
        )
        .unwrap();
        let mut tracker = CallTracker::new(cti_core::TrackerConfig::default());
        let mut clock = Timestamp::from_secs(0);
        let (effects, items) = apply_frames(&mut tracker, &[pause], &mut clock);
        assert!(effects.is_empty());
        match &items[..] {
            [HubItem::Presence(PresenceInput::MemberPaused(state))] => {
                assert_eq!(state.interface, "Local/101@agents/nm");
                assert!(state.paused);
                assert_eq!(state.reason, "lunch");
            }
            other => panic!("unexpected {other:?}"),
        }
        let member = Frame::parse(
            b"Event: QueueMember\r\nQueue: hotline\r\nName: Agent 104\r\nLocation: Local/104@agents/nm\r\nPaused: 1\r\nPausedReason: \r\n\r\n",
        )
        .unwrap();
        let items = resync_items(&[], &[member]);
        assert!(
            matches!(&items[1], HubItem::Presence(PresenceInput::QueueSnapshot(m)) if m.len() == 1 && m[0].interface == "Local/104@agents/nm")
        );
    }

    #[test]
    fn originate_failures_are_explained() {
        assert_eq!(originate_reason("3"), "the phone did not answer");
        assert!(originate_reason("42").contains("42"));
    }
}
