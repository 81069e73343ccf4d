//! Reading Asterisk channel names: technology, endpoint, and for Local channels the
//! extension, context and half (`;1`/`;2`).

/// Which half of a Local channel pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalHalf {
    /// `;1`: the side that was dialled (it sits in the caller's bridge).
    One,
    /// `;2`: the side that runs the dialplan at `exten@context`.
    Two,
}

/// The parts of a channel name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelName<'a> {
    /// `PJSIP`, `SIP`, `Local`, `DAHDI`, ...
    pub tech: &'a str,
    /// The endpoint (`101` in `PJSIP/101-0000002a`); for Local channels `exten@context`.
    pub endpoint: &'a str,
    /// For Local channels: the extension, the context and the half.
    pub local: Option<(&'a str, &'a str, LocalHalf)>,
}

impl<'a> ChannelName<'a> {
    /// Splits a channel name. Never fails: odd names give odd parts, not a panic.
    pub fn parse(name: &'a str) -> Self {
        let (tech, rest) = name.split_once('/').unwrap_or(("", name));
        let (rest, half) = match rest.rsplit_once(';') {
            Some((r, "1")) => (r, Some(LocalHalf::One)),
            Some((r, "2")) => (r, Some(LocalHalf::Two)),
            _ => (rest, None),
        };
        let endpoint = strip_sequence(rest);
        let local = if tech.eq_ignore_ascii_case("Local") {
            let (exten, context) = endpoint.split_once('@').unwrap_or((endpoint, ""));
            half.map(|h| (exten, context, h))
        } else {
            None
        };
        Self {
            tech,
            endpoint,
            local,
        }
    }

    /// Whether this is a Local channel.
    pub fn is_local(&self) -> bool {
        self.tech.eq_ignore_ascii_case("Local")
    }
}

/// Removes Asterisk's `-<hex sequence>` suffix: `101-0000002a` → `101`.
fn strip_sequence(text: &str) -> &str {
    match text.rsplit_once('-') {
        Some((head, seq))
            if !head.is_empty()
                && !seq.is_empty()
                && seq.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            head
        }
        _ => text,
    }
}

/// The extension behind a queue member interface or dial target: `PJSIP/101` → `101`,
/// `Local/101@agents/nm` → `101`, `SIP/101` → `101`.
pub(crate) fn interface_endpoint(interface: &str) -> &str {
    let rest = interface.split_once('/').map_or(interface, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    rest.split('@').next().unwrap_or(rest)
}

/// The number in a dial string to an outside party: `+15550001111@pstn/n`,
/// `provider/+15550001111`, `provider/sip:+15550001111@host`, `+15550001111@provider`.
pub(crate) fn dialed_number(dial_string: &str) -> &str {
    let mut text = dial_string;
    if let Some((head, tail)) = text.split_once('/') {
        // `number@ctx/options` (Local) keeps the head; `endpoint/number` keeps the tail.
        text = if head.contains('@') { head } else { tail };
    }
    let text = text.strip_prefix("sip:").unwrap_or(text);
    let text = text.strip_prefix("tel:").unwrap_or(text);
    text.split('@').next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_channel_names() {
        let c = ChannelName::parse("PJSIP/101-0000002a");
        assert_eq!((c.tech, c.endpoint, c.local), ("PJSIP", "101", None));
        let c = ChannelName::parse("SIP/trunk-provider-00000abc");
        assert_eq!(c.endpoint, "trunk-provider");
        let c = ChannelName::parse("Local/101@agents-00000001;1");
        assert_eq!(c.local, Some(("101", "agents", LocalHalf::One)));
        let c = ChannelName::parse("Local/+18005550100@incoming-00000000;2");
        assert_eq!(c.local, Some(("+18005550100", "incoming", LocalHalf::Two)));
        let c = ChannelName::parse("garbage");
        assert_eq!((c.tech, c.endpoint), ("", "garbage"));
        assert_eq!(ChannelName::parse("Local/x@y-zz;3").local, None);
    }

    #[test]
    fn reads_interfaces_and_dial_strings() {
        assert_eq!(interface_endpoint("Local/101@agents/nm"), "101");
        assert_eq!(interface_endpoint("PJSIP/101"), "101");
        assert_eq!(dialed_number("+15550001111@pstn/n"), "+15550001111");
        assert_eq!(dialed_number("provider/+15550001111"), "+15550001111");
        assert_eq!(
            dialed_number("provider/sip:+15550001111@10.0.0.1"),
            "+15550001111"
        );
        assert_eq!(dialed_number("+15550001111@provider"), "+15550001111");
    }
}
