//! The event types an endpoint can choose to receive.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{EventKind, InvalidInput};

/// An event type, by the name webhooks send it under (`type` in the payload).
///
/// An [`Endpoint`](super::Endpoint) receives the types it chose: by default every type in
/// [`EventType::ALL`] *of the crate version that set it*, stored explicitly, so that a type
/// added by a later version is not sent to a live receiver until its owner opts in.
///
/// # Examples
///
/// ```
/// use magic_link::webhooks::EventType;
///
/// let t: EventType = "session.reviewed".parse()?;
/// assert_eq!(t, EventType::SessionReviewed);
/// assert_eq!(t.name(), "session.reviewed");
/// assert!("session.teleported".parse::<EventType>().is_err());
/// # Ok::<(), magic_link::InvalidInput>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
#[non_exhaustive]
pub enum EventType {
    /// `link.created`
    LinkCreated,
    /// `link.redeemed`
    LinkRedeemed,
    /// `link.exhausted`
    LinkExhausted,
    /// `link.expired`
    LinkExpired,
    /// `link.deactivated`
    LinkDeactivated,
    /// `session.completed`
    SessionCompleted,
    /// `session.reviewed`: the owner's final decision after a `needs_review` outcome.
    SessionReviewed,
    /// `session.handed_off`: a session moved to another device.
    SessionHandedOff,
    /// `session.abandoned`
    SessionAbandoned,
    /// `link.redacted`: a link's reference and metadata were erased.
    LinkRedacted,
    /// `session.redacted`: a session's reference was erased.
    SessionRedacted,
    /// `credits.added`
    CreditsAdded,
}

impl EventType {
    /// Every event type this version of the crate writes, in a fixed order: what an endpoint
    /// set without an explicit choice receives.
    pub const ALL: &'static [EventType] = &[
        Self::LinkCreated,
        Self::LinkRedeemed,
        Self::LinkExhausted,
        Self::LinkExpired,
        Self::LinkDeactivated,
        Self::SessionCompleted,
        Self::SessionReviewed,
        Self::SessionHandedOff,
        Self::SessionAbandoned,
        Self::LinkRedacted,
        Self::SessionRedacted,
        Self::CreditsAdded,
    ];

    /// The type's name, as webhooks send it (`link.redeemed`, `session.completed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::LinkCreated => "link.created",
            Self::LinkRedeemed => "link.redeemed",
            Self::LinkExhausted => "link.exhausted",
            Self::LinkExpired => "link.expired",
            Self::LinkDeactivated => "link.deactivated",
            Self::SessionCompleted => "session.completed",
            Self::SessionReviewed => "session.reviewed",
            Self::SessionHandedOff => "session.handed_off",
            Self::SessionAbandoned => "session.abandoned",
            Self::LinkRedacted => "link.redacted",
            Self::SessionRedacted => "session.redacted",
            Self::CreditsAdded => "credits.added",
        }
    }

    /// The type of an event.
    pub fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::LinkCreated { .. } => Self::LinkCreated,
            EventKind::LinkRedeemed { .. } => Self::LinkRedeemed,
            EventKind::SessionCompleted { .. } => Self::SessionCompleted,
            EventKind::SessionReviewed { .. } => Self::SessionReviewed,
            EventKind::SessionHandedOff { .. } => Self::SessionHandedOff,
            EventKind::SessionAbandoned { .. } => Self::SessionAbandoned,
            EventKind::LinkDeactivated { .. } => Self::LinkDeactivated,
            EventKind::LinkExhausted { .. } => Self::LinkExhausted,
            EventKind::LinkExpired { .. } => Self::LinkExpired,
            EventKind::LinkRedacted { .. } => Self::LinkRedacted,
            EventKind::SessionRedacted { .. } => Self::SessionRedacted,
            EventKind::CreditsAdded { .. } => Self::CreditsAdded,
        }
    }

    /// Reads a list of type names (from a form or an API request): the set of types, in the
    /// order of [`ALL`](Self::ALL), without repeats.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::UnknownEventType`] for a name this version does not know,
    /// [`InvalidInput::NoEventTypes`] for an empty list.
    pub fn parse_set<I>(names: I) -> Result<Vec<EventType>, InvalidInput>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let types = names
            .into_iter()
            .map(|name| name.as_ref().parse())
            .collect::<Result<Vec<EventType>, _>>()?;
        normalize(types)
    }
}

/// The types, sorted and without repeats; refuses an empty set.
pub(crate) fn normalize(
    types: impl IntoIterator<Item = EventType>,
) -> Result<Vec<EventType>, InvalidInput> {
    let mut types: Vec<EventType> = types.into_iter().collect();
    types.sort_unstable();
    types.dedup();
    if types.is_empty() {
        Err(InvalidInput::NoEventTypes)
    } else {
        Ok(types)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

impl FromStr for EventType {
    type Err = InvalidInput;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == name)
            .ok_or(InvalidInput::UnknownEventType)
    }
}

impl TryFrom<String> for EventType {
    type Error = InvalidInput;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<EventType> for &'static str {
    fn from(t: EventType) -> Self {
        t.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_events() {
        for &t in EventType::ALL {
            assert_eq!(t.name().parse::<EventType>(), Ok(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.name()));
            assert_eq!(serde_json::from_str::<EventType>(&json).unwrap(), t);
        }
        let mut sorted = EventType::ALL.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, EventType::ALL, "ALL is in the order of Ord");
        for bad in [
            "",
            "link",
            "LINK.CREATED",
            "link.created ",
            "session.handed-off",
        ] {
            assert_eq!(
                bad.parse::<EventType>(),
                Err(InvalidInput::UnknownEventType),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<EventType>("\"nope\"").is_err());
    }

    #[test]
    fn sets_are_sorted_deduplicated_and_not_empty() {
        assert_eq!(
            EventType::parse_set(["session.reviewed", "link.created", "session.reviewed"]),
            Ok(vec![EventType::LinkCreated, EventType::SessionReviewed])
        );
        assert_eq!(
            EventType::parse_set(Vec::<String>::new()),
            Err(InvalidInput::NoEventTypes)
        );
        assert_eq!(
            EventType::parse_set(["link.created", "x"]),
            Err(InvalidInput::UnknownEventType)
        );
    }
}
