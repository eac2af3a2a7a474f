//! Rows to domain values and back. Enums are stored as the names they have in JSON.

use std::num::NonZeroU32;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};
use uuid::Uuid;

use crate::returns::{ReturnOrigin, ReturnUrl};
use crate::{
    AbandonReason, Account, AccountId, AccountProfile, Error, Event, EventId, EventKind, Flow,
    IdempotencyKey, InvalidInput, Labels, Language, LedgerEntry, LedgerKind, Link, LinkId,
    Metadata, Outcome, Reference, Rejection, Session, SessionId, SessionStatus, UsageLimit,
};

/// A value in the database that this crate would never have written.
#[derive(Debug, thiserror::Error)]
pub(super) enum Corrupt {
    #[error("unexpected value {value:?} in column {column}")]
    Value { column: &'static str, value: String },
    #[error("unknown status code {0} from a store function")]
    Status(i32),
    #[error("{what} does not fit in a database integer")]
    OutOfRange { what: &'static str },
}

pub(super) fn corrupt(column: &'static str, value: impl ToString) -> Error {
    Error::backend(Corrupt::Value {
        column,
        value: value.to_string(),
    })
}

/// Column `i` of `row`.
pub(super) fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<T, Error>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(i).map_err(Error::backend)
}

/// A status code of the store functions, as in the header of the migration.
pub(super) fn status(code: i32) -> Result<(), Error> {
    let rejection = match code {
        0 => return Ok(()),
        1 => Rejection::NotFound,
        2 => Rejection::Deactivated,
        3 => Rejection::Expired,
        4 => Rejection::Exhausted,
        5 => Rejection::NoCredits,
        6 => return Err(Error::AlreadyExists),
        7 => Rejection::OutcomeConflict,
        8 => Rejection::SessionAbandoned,
        9 => Rejection::SessionExpired,
        10 => Rejection::IdempotencyConflict,
        11 => return Err(InvalidInput::ZeroAmount.into()),
        12 => return Err(InvalidInput::Overflow.into()),
        13 => Rejection::SessionCompleted,
        14 => Rejection::NotUnderReview,
        15 => Rejection::ReviewConflict,
        16 => Rejection::HandoffUsed,
        17 => return Err(crate::tokens::TokenError::Expired.into()),
        other => return Err(Error::backend(Corrupt::Status(other))),
    };
    Err(rejection.into())
}

/// A `u64` for a `bigint` parameter.
pub(super) fn to_i64(value: u64, what: &'static str) -> Result<i64, Error> {
    i64::try_from(value).map_err(|_| Error::backend(Corrupt::OutOfRange { what }))
}

/// A `bigint` column that holds a count.
fn count(row: &PgRow, i: usize, column: &'static str) -> Result<u64, Error> {
    let n: i64 = get(row, i)?;
    u64::try_from(n).map_err(|_| corrupt(column, n))
}

/// A `numeric(20, 0)` column, selected as text.
fn numeric(text: &str, column: &'static str) -> Result<u64, Error> {
    text.parse().map_err(|_| corrupt(column, text))
}

pub(super) fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Document => "document",
        Flow::Selfie => "selfie",
        Flow::DocumentAndSelfie => "document_and_selfie",
    }
}

pub(super) fn flow(name: &str) -> Result<Flow, Error> {
    match name {
        "document" => Ok(Flow::Document),
        "selfie" => Ok(Flow::Selfie),
        "document_and_selfie" => Ok(Flow::DocumentAndSelfie),
        other => Err(corrupt("flow", other)),
    }
}

fn outcome(name: &str) -> Result<Outcome, Error> {
    Outcome::ALL
        .into_iter()
        .find(|o| o.as_str() == name)
        .ok_or_else(|| corrupt("outcome", name))
}

fn reason(name: &str) -> Result<AbandonReason, Error> {
    match name {
        "explicit" => Ok(AbandonReason::Explicit),
        "expired" => Ok(AbandonReason::Expired),
        other => Err(corrupt("reason", other)),
    }
}

pub(super) fn language(tag: &str) -> Result<Language, Error> {
    Language::parse(tag).map_err(|_| corrupt("language", tag))
}

/// The `usage_limit` and `max_uses` columns of a limit.
pub(super) fn limit_columns(limit: UsageLimit) -> (&'static str, Option<i64>) {
    match limit {
        UsageLimit::Single => ("single", Some(1)),
        UsageLimit::Multi(n) => ("multi", Some(i64::from(n.get()))),
        UsageLimit::Unlimited => ("unlimited", None),
    }
}

fn limit(kind: &str, max_uses: Option<i64>) -> Result<UsageLimit, Error> {
    match (kind, max_uses) {
        ("single", Some(1)) => Ok(UsageLimit::Single),
        ("multi", Some(n)) => u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .map(UsageLimit::Multi)
            .ok_or_else(|| corrupt("max_uses", n)),
        ("unlimited", None) => Ok(UsageLimit::Unlimited),
        (other, _) => Err(corrupt("usage_limit", other)),
    }
}

/// A return URL column.
fn return_url(text: Option<&str>, column: &'static str) -> Result<Option<ReturnUrl>, Error> {
    text.map(|t| ReturnUrl::parse(t).map_err(|_| corrupt(column, t)))
        .transpose()
}

/// A reference column.
pub(super) fn reference(text: Option<&str>) -> Result<Option<Reference>, Error> {
    text.map(|t| Reference::new(t).map_err(|_| corrupt("reference", t)))
        .transpose()
}

/// A metadata column (`jsonb` read as text; NULL for none).
fn metadata(text: Option<&str>) -> Result<Metadata, Error> {
    match text {
        None => Ok(Metadata::new()),
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("metadata", "invalid")),
    }
}

/// Metadata as the `jsonb` text a column takes: NULL when empty.
pub(super) fn metadata_json(metadata: &Metadata) -> Option<String> {
    (!metadata.is_empty()).then(|| serde_json::to_string(metadata).unwrap_or_default())
}

/// The columns [`link`] reads, in order, from a table aliased `l`.
pub(super) const LINK_COLUMNS: &str = "l.id, l.account_id, l.name, l.flow, l.usage_limit, \
     l.max_uses, l.uses, l.expires_at, l.language, l.created_at, l.deactivated_at, \
     l.reference, l.metadata::text, l.redacted_at, l.return_url, l.dead_link_url";

/// How many columns [`LINK_COLUMNS`] names.
pub(super) const LINK_COLUMN_COUNT: usize = 16;

/// A link from [`LINK_COLUMNS`] starting at column `at`.
pub(super) fn link(row: &PgRow, at: usize) -> Result<Link, Error> {
    Ok(Link {
        id: LinkId::from_uuid(get(row, at)?),
        account: AccountId::from_uuid(get(row, at + 1)?),
        name: get(row, at + 2)?,
        flow: flow(get(row, at + 3)?)?,
        limit: limit(get(row, at + 4)?, get(row, at + 5)?)?,
        uses: count(row, at + 6, "uses")?,
        expires_at: get(row, at + 7)?,
        language: language(get(row, at + 8)?)?,
        created_at: get(row, at + 9)?,
        deactivated_at: get(row, at + 10)?,
        reference: reference(get(row, at + 11)?)?,
        metadata: metadata(get(row, at + 12)?)?,
        redacted_at: get(row, at + 13)?,
        return_url: return_url(get(row, at + 14)?, "return_url")?,
        dead_link_url: return_url(get(row, at + 15)?, "dead_link_url")?,
    })
}

/// The columns [`session`] reads, in order, from a table aliased `s`.
pub(super) const SESSION_COLUMNS: &str = "s.id, s.account_id, s.link_id, s.number, s.flow, \
     s.language, s.status, s.outcome, s.reason, s.ended_at, s.started_at, s.expires_at, \
     s.decision, s.reviewed_at, s.reference, s.redacted_at";

/// A session from [`SESSION_COLUMNS`] starting at column `at`.
pub(super) fn session(row: &PgRow, at: usize) -> Result<Session, Error> {
    let status: &str = get(row, at + 6)?;
    let outcome_name: Option<&str> = get(row, at + 7)?;
    let reason_name: Option<&str> = get(row, at + 8)?;
    let ended_at: Option<DateTime<Utc>> = get(row, at + 9)?;
    let status = match (status, outcome_name, reason_name, ended_at) {
        ("started", None, None, None) => SessionStatus::Started,
        ("completed", Some(o), None, Some(at)) => SessionStatus::Completed {
            outcome: outcome(o)?,
            at,
        },
        ("abandoned", None, Some(r), Some(at)) => SessionStatus::Abandoned {
            reason: reason(r)?,
            at,
        },
        (other, ..) => return Err(corrupt("status", other)),
    };
    let decision_name: Option<&str> = get(row, at + 12)?;
    let reviewed_at: Option<DateTime<Utc>> = get(row, at + 13)?;
    let decision = match (decision_name, reviewed_at) {
        (None, None) => None,
        (Some(name), Some(_)) => Some(outcome(name)?),
        (name, _) => return Err(corrupt("decision", name.unwrap_or("NULL"))),
    };
    Ok(Session {
        id: SessionId::from_uuid(get(row, at)?),
        account: AccountId::from_uuid(get(row, at + 1)?),
        link: LinkId::from_uuid(get(row, at + 2)?),
        number: count(row, at + 3, "number")?,
        flow: flow(get(row, at + 4)?)?,
        language: language(get(row, at + 5)?)?,
        status,
        started_at: get(row, at + 10)?,
        expires_at: get(row, at + 11)?,
        decision,
        reviewed_at,
        reference: reference(get(row, at + 14)?)?,
        redacted_at: get(row, at + 15)?,
    })
}

/// The columns [`account_at`] reads, in order, from a table aliased `a`.
pub(super) const ACCOUNT_COLUMNS: &str = "a.id, a.balance::text, a.held::text, a.created_at, \
     a.display_name, a.support_url, a.return_origins, a.return_outcome";

/// An account from [`ACCOUNT_COLUMNS`] starting at column `at`.
pub(super) fn account_at(row: &PgRow, at: usize) -> Result<Account, Error> {
    let support_url: Option<&str> = get(row, at + 5)?;
    let origins: Option<Vec<String>> = get(row, at + 6)?;
    let return_outcome: Option<bool> = get(row, at + 7)?;
    Ok(Account {
        id: AccountId::from_uuid(get(row, at)?),
        balance: numeric(get(row, at + 1)?, "balance")?,
        held: numeric(get(row, at + 2)?, "held")?,
        created_at: get(row, at + 3)?,
        profile: AccountProfile {
            display_name: get(row, at + 4)?,
            support_url: support_url
                .map(|u| ReturnUrl::parse(u).map_err(|_| corrupt("support_url", u)))
                .transpose()?,
            return_origins: origins
                .unwrap_or_default()
                .iter()
                .map(|o| ReturnOrigin::parse(o).map_err(|_| corrupt("return_origins", o)))
                .collect::<Result<_, _>>()?,
            return_outcome: return_outcome.unwrap_or(false),
        },
    })
}

/// A ledger entry of `account` from `kind, top_up_key, session_id, amount::text, at`.
pub(super) fn ledger_entry(row: &PgRow, account: AccountId) -> Result<LedgerEntry, Error> {
    let kind_name: &str = get(row, 0)?;
    let session = || -> Result<SessionId, Error> {
        let id: Option<Uuid> = get(row, 2)?;
        id.map(SessionId::from_uuid)
            .ok_or_else(|| corrupt("session_id", "NULL"))
    };
    let kind = match kind_name {
        "top_up" => {
            let key: Option<String> = get(row, 1)?;
            let key = key.unwrap_or_default();
            LedgerKind::TopUp {
                key: IdempotencyKey::new(key.clone()).map_err(|_| corrupt("top_up_key", key))?,
            }
        }
        "hold" => LedgerKind::Hold {
            session: session()?,
        },
        "capture" => LedgerKind::Capture {
            session: session()?,
        },
        "release" => LedgerKind::Release {
            session: session()?,
        },
        other => return Err(corrupt("kind", other)),
    };
    Ok(LedgerEntry {
        account,
        kind,
        amount: numeric(get(row, 3)?, "amount")?,
        at: get(row, 4)?,
    })
}

/// An event from the columns of `outbox_after` starting at column `at`, `amount` and
/// `balance` as text.
pub(super) fn event(row: &PgRow, at: usize) -> Result<Event, Error> {
    let seq: i64 = get(row, at)?;
    let kind_name: &str = get(row, at + 4)?;
    let link_id: Option<Uuid> = get(row, at + 5)?;
    let session_id: Option<Uuid> = get(row, at + 6)?;
    let link = || {
        link_id
            .map(LinkId::from_uuid)
            .ok_or_else(|| corrupt("link_id", "NULL"))
    };
    let session = || {
        session_id
            .map(SessionId::from_uuid)
            .ok_or_else(|| corrupt("session_id", "NULL"))
    };
    let text = |i: usize, column: &'static str| -> Result<String, Error> {
        let value: Option<String> = get(row, i)?;
        value.ok_or_else(|| corrupt(column, "NULL"))
    };
    let kind = match kind_name {
        "link_created" => EventKind::LinkCreated { link: link()? },
        "link_redeemed" => EventKind::LinkRedeemed {
            link: link()?,
            session: session()?,
        },
        "session_completed" => EventKind::SessionCompleted {
            link: link()?,
            session: session()?,
            outcome: outcome(&text(at + 7, "outcome")?)?,
        },
        "session_reviewed" => EventKind::SessionReviewed {
            link: link()?,
            session: session()?,
            decision: outcome(&text(at + 7, "outcome")?)?,
        },
        "session_abandoned" => EventKind::SessionAbandoned {
            link: link()?,
            session: session()?,
            reason: reason(&text(at + 8, "reason")?)?,
        },
        "session_handed_off" => EventKind::SessionHandedOff {
            link: link()?,
            session: session()?,
        },
        "link_deactivated" => EventKind::LinkDeactivated { link: link()? },
        "link_exhausted" => EventKind::LinkExhausted { link: link()? },
        "link_expired" => EventKind::LinkExpired { link: link()? },
        "link_redacted" => EventKind::LinkRedacted { link: link()? },
        "session_redacted" => EventKind::SessionRedacted {
            link: link()?,
            session: session()?,
        },
        "credits_added" => EventKind::CreditsAdded {
            amount: numeric(&text(at + 9, "amount")?, "amount")?,
            balance: numeric(&text(at + 10, "balance")?, "balance")?,
        },
        other => return Err(corrupt("kind", other)),
    };
    Ok(Event {
        seq: u64::try_from(seq).map_err(|_| corrupt("seq", seq))?,
        id: EventId::from_uuid(get(row, at + 1)?),
        account: AccountId::from_uuid(get(row, at + 2)?),
        at: get(row, at + 3)?,
        kind,
        labels: Labels {
            reference: reference(get(row, at + 11)?)?,
            session_reference: reference(get(row, at + 12)?)?,
            metadata: metadata(get(row, at + 13)?)?,
        },
    })
}
