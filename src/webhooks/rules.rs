//! The delivery rules, as pure functions over values: what an attempt's result means, how
//! `Retry-After` is read, what queueing, claiming and recording do with a delivery.
//!
//! Nothing here reads a clock or does I/O: `now` is an argument. The
//! [`Dispatcher`](super::Dispatcher) decides with [`next_step`]; every
//! [`WebhookStore`](crate::store::WebhookStore) applies the rest ([`queued_status`],
//! [`lease_until`], [`fails_at_claim`], [`step_to_apply`], [`accepts_attempt`],
//! [`status_after`]) atomically. `MemoryStore` calls these functions, `PostgresStore`'s SQL
//! mirrors them (each statement names the function it mirrors), and the delivery model test
//! (`magic_link::conformance::compare_delivery_with_model`, feature `test-util`) compares both
//! stores with a simple model built on them.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use chrono::{DateTime, TimeDelta};
//! use magic_link::webhooks::rules::next_step;
//! use magic_link::webhooks::{Attempt, AttemptOutcome, NextStep, RetrySchedule};
//!
//! let now = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
//! let schedule = RetrySchedule::default(); // 5 s, 5 min, ...
//! let busy = Attempt { number: 1, at: now, outcome: AttemptOutcome::Status { code: 503 } };
//! let max = Duration::from_secs(3600);
//! let version = 1; // of the endpoint the attempt went to
//! // The receiver asks for two minutes: longer than the schedule's 5 s, so it wins.
//! assert_eq!(
//!     next_step(&busy, Some("120"), version, &schedule, max),
//!     NextStep::RetryAt(now + TimeDelta::seconds(120)),
//! );
//! // The eighth attempt was the schedule's last.
//! let last = Attempt { number: 8, ..busy };
//! assert_eq!(next_step(&last, Some("120"), version, &schedule, max), NextStep::GiveUp);
//! ```

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::webhooks::{
    Attempt, AttemptOutcome, DeliveryStatus, Endpoint, EventType, FailReason, NextStep,
    RetrySchedule,
};

/// The longest `Retry-After` value [`parse_retry_after`] reads, in bytes. An HTTP date takes
/// 29; longer values are refused unread.
pub const MAX_RETRY_AFTER_LEN: usize = 64;

/// The shortest lease a claim takes (see [`lease_until`]).
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// The longest lease a claim takes (see [`lease_until`]): 365 days.
pub const MAX_LEASE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a `Retry-After` value was not understood. The dispatcher then retries on its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RetryAfterError {
    /// Longer than [`MAX_RETRY_AFTER_LEN`].
    #[error("the Retry-After value is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Neither delay-seconds nor an HTTP date.
    #[error("the Retry-After value is neither delay-seconds nor an HTTP date")]
    Malformed,
}

/// Reads a `Retry-After` value (RFC 9110, section 10.2.3) as a delay from `now`: either
/// delay-seconds (digits only; absurdly large values saturate) or an HTTP date (the preferred
/// `Sun, 06 Nov 1994 08:49:37 GMT`, or the obsolete RFC 850 and asctime forms). A date in the
/// past means no delay. Surrounding whitespace is ignored.
///
/// The value comes from the receiver: anything is accepted as input and nothing panics.
///
/// # Errors
///
/// [`RetryAfterError::TooLong`] past [`MAX_RETRY_AFTER_LEN`] bytes,
/// [`RetryAfterError::Malformed`] for anything else that is not one of the forms above.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Result<Duration, RetryAfterError> {
    if value.len() > MAX_RETRY_AFTER_LEN {
        return Err(RetryAfterError::TooLong {
            max: MAX_RETRY_AFTER_LEN,
        });
    }
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        let seconds = value.bytes().fold(0u64, |n, digit| {
            n.saturating_mul(10).saturating_add(u64::from(digit - b'0'))
        });
        return Ok(Duration::from_secs(seconds));
    }
    let date = http_date(value).ok_or(RetryAfterError::Malformed)?;
    Ok((date - now).to_std().unwrap_or(Duration::ZERO))
}

/// An HTTP date in any of its three forms.
fn http_date(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = DateTime::parse_from_rfc2822(value) {
        return Some(date.with_timezone(&Utc));
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|date| date.and_utc())
}

/// Whether a response with this status has its `Retry-After` honoured: `429`, `502`, `503`
/// and `504`.
pub fn honours_retry_after(code: u16) -> bool {
    matches!(code, 429 | 502 | 503 | 504)
}

/// The delay before the next attempt after attempt `attempt` (1-based) failed: the schedule's
/// delay, or what the receiver `asked` for if that is longer, cut to `max_retry_after` (never
/// shorter than the schedule). `None` when `attempt` was the schedule's last: give up.
pub fn retry_delay(
    schedule: &RetrySchedule,
    attempt: u32,
    asked: Option<Duration>,
    max_retry_after: Duration,
) -> Option<Duration> {
    let delay = schedule.delay_after(attempt)?;
    Some(asked.map_or(delay, |asked| delay.max(asked.min(max_retry_after))))
}

/// What happens after `attempt`, at `attempt.at` (the decision's `now`):
///
/// - a `2xx` is [`NextStep::Delivered`];
/// - `410 Gone` is [`NextStep::DisableEndpoint`] for the endpoint the attempt went to
///   (`endpoint_version`), at any attempt;
/// - anything else (other codes, `3xx` included, timeouts, transport failures) is retried
///   after the [`retry_delay`], with the `retry_after` header value honoured on the codes of
///   [`honours_retry_after`] (an unreadable one is ignored), or is [`NextStep::GiveUp`] when
///   the schedule is used up.
pub fn next_step(
    attempt: &Attempt,
    retry_after: Option<&str>,
    endpoint_version: u64,
    schedule: &RetrySchedule,
    max_retry_after: Duration,
) -> NextStep {
    let now = attempt.at;
    let asked = match attempt.outcome {
        AttemptOutcome::Status { code: 200..=299 } => return NextStep::Delivered,
        AttemptOutcome::Status { code: 410 } => {
            return NextStep::DisableEndpoint { endpoint_version }
        }
        AttemptOutcome::Status { code } if honours_retry_after(code) => {
            retry_after.and_then(|value| parse_retry_after(value, now).ok())
        }
        AttemptOutcome::Status { .. }
        | AttemptOutcome::Timeout
        | AttemptOutcome::Transport { .. } => None,
    };
    match retry_delay(schedule, attempt.number, asked, max_retry_after) {
        Some(delay) => NextStep::RetryAt(later(now, delay)),
        None => NextStep::GiveUp,
    }
}

/// What queueing does with an outbox event of type `event_type`, given its account's endpoint
/// at `now`: no endpoint, or one that does not [receive](Endpoint::receives) the type, not
/// queued (`None`); a disabled one, queued as failed ([`FailReason::EndpointDisabled`], so that
/// it can be re-queued); an enabled one, pending and due at once.
pub fn queued_status(
    endpoint: Option<&Endpoint>,
    event_type: EventType,
    now: DateTime<Utc>,
) -> Option<DeliveryStatus> {
    let endpoint = endpoint.filter(|e| e.receives(event_type))?;
    Some(if endpoint.is_enabled() {
        DeliveryStatus::Pending {
            next_attempt_at: now,
        }
    } else {
        DeliveryStatus::Failed {
            at: now,
            reason: FailReason::EndpointDisabled,
        }
    })
}

/// When a lease taken at `now` for `lease` runs out: `lease` is kept within [`MIN_LEASE`] and
/// [`MAX_LEASE`], and the time saturates at the latest representable one.
pub fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    later(now, lease.clamp(MIN_LEASE, MAX_LEASE))
}

/// What claiming does with a due delivery, given its account's endpoint at `now`: `None`, it is
/// claimed (the endpoint is enabled); otherwise it is not claimed and takes the status returned
/// (failed, [`FailReason::EndpointDisabled`]).
pub fn fails_at_claim(endpoint: Option<&Endpoint>, now: DateTime<Utc>) -> Option<DeliveryStatus> {
    match endpoint {
        Some(endpoint) if endpoint.is_enabled() => None,
        _ => Some(DeliveryStatus::Failed {
            at: now,
            reason: FailReason::EndpointDisabled,
        }),
    }
}

/// The version of an endpoint set over `previous` (the account's endpoint until now, if any):
/// 1 for the first, one more than the previous otherwise, so a version never repeats for an
/// account, even for two changes in the same microsecond.
pub fn endpoint_version(previous: Option<&Endpoint>) -> u64 {
    previous.map_or(1, |e| e.version.saturating_add(1))
}

/// The step a store applies when it records an attempt that ended at `at` with `next`, given
/// the account's `current` endpoint: [`NextStep::DisableEndpoint`] for an endpoint its owner
/// has replaced since (another [`version`](Endpoint::version)) becomes a retry at `at`,
/// for the new endpoint, since the old URL's `410` says nothing about the new one. Every other
/// step is applied as it is.
pub fn step_to_apply(next: NextStep, current: Option<&Endpoint>, at: DateTime<Utc>) -> NextStep {
    match next {
        NextStep::DisableEndpoint { endpoint_version }
            if current.is_some_and(|e| e.version != endpoint_version) =>
        {
            NextStep::RetryAt(at)
        }
        other => other,
    }
}

/// Whether a store records an attempt (after [`step_to_apply`]) on a delivery in `status`:
/// only under the delivery's current lease (`lease_is_current`) while it is pending, except
/// that [`NextStep::Delivered`] is recorded whatever the lease unless the delivery is already
/// delivered, because a receiver that answered `2xx` has the event.
pub fn accepts_attempt(status: &DeliveryStatus, lease_is_current: bool, next: NextStep) -> bool {
    match next {
        NextStep::Delivered => !matches!(status, DeliveryStatus::Delivered { .. }),
        NextStep::RetryAt(_) | NextStep::GiveUp | NextStep::DisableEndpoint { .. } => {
            lease_is_current && matches!(status, DeliveryStatus::Pending { .. })
        }
    }
}

/// The status a delivery takes when a store records an attempt that ended at `at` with `next`
/// (after [`step_to_apply`]). For [`NextStep::DisableEndpoint`] the store also disables the
/// account's endpoint at `at` and fails its other pending deliveries.
pub fn status_after(next: NextStep, at: DateTime<Utc>) -> DeliveryStatus {
    match next {
        NextStep::Delivered => DeliveryStatus::Delivered { at },
        NextStep::RetryAt(next_attempt_at) => DeliveryStatus::Pending { next_attempt_at },
        NextStep::GiveUp => DeliveryStatus::Failed {
            at,
            reason: FailReason::Exhausted,
        },
        NextStep::DisableEndpoint { .. } => DeliveryStatus::Failed {
            at,
            reason: FailReason::EndpointDisabled,
        },
    }
}

/// `now + delay`, saturating.
fn later(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = at(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        let secs = |s| Ok(Duration::from_secs(s));
        assert_eq!(parse_retry_after("120", now), secs(120));
        assert_eq!(parse_retry_after(" 120\t", now), secs(120));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            secs(120)
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:30:00 GMT", now),
            secs(120)
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:30:00 2015", now),
            secs(120)
        );
        assert_eq!(parse_retry_after("Thu Oct  1 07:28:00 2015", now), secs(0));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            secs(0)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Ok(Duration::from_secs(u64::MAX))
        );
        for junk in [
            "",
            " ",
            "-5",
            "+5",
            "soon",
            "1.5",
            "1e3",
            "Wed, 99 Oct 2015",
            "٣",
        ] {
            assert_eq!(
                parse_retry_after(junk, now),
                Err(RetryAfterError::Malformed),
                "{junk:?}"
            );
        }
        assert_eq!(
            parse_retry_after(&"1".repeat(MAX_RETRY_AFTER_LEN + 1), now),
            Err(RetryAfterError::TooLong {
                max: MAX_RETRY_AFTER_LEN
            })
        );
    }

    #[test]
    fn next_step_by_outcome() {
        let now = at(1_750_000_000);
        let schedule = RetrySchedule::new(vec![Duration::from_secs(10), Duration::from_secs(60)]);
        let max = Duration::from_secs(3600);
        let endpoint = 3;
        let step = |number, outcome, retry_after| {
            let attempt = Attempt {
                number,
                at: now,
                outcome,
            };
            next_step(&attempt, retry_after, endpoint, &schedule, max)
        };
        let status = |code| AttemptOutcome::Status { code };
        let retry_at = |s| NextStep::RetryAt(now + TimeDelta::seconds(s));
        assert_eq!(step(1, status(204), None), NextStep::Delivered);
        assert_eq!(step(3, status(200), None), NextStep::Delivered);
        assert_eq!(
            step(3, status(410), None),
            NextStep::DisableEndpoint {
                endpoint_version: endpoint
            }
        );
        assert_eq!(step(1, status(500), Some("120")), retry_at(10));
        assert_eq!(step(1, status(301), None), retry_at(10));
        assert_eq!(step(2, AttemptOutcome::Timeout, None), retry_at(60));
        assert_eq!(step(1, status(503), Some("120")), retry_at(120));
        assert_eq!(step(1, status(429), Some("1")), retry_at(10));
        assert_eq!(step(1, status(502), Some("99999")), retry_at(3600));
        assert_eq!(step(1, status(504), Some("soon")), retry_at(10));
        assert_eq!(step(3, status(503), Some("5")), NextStep::GiveUp);
        let refused = AttemptOutcome::Transport {
            failure: crate::webhooks::TransportFailure::Refused,
        };
        assert_eq!(step(3, refused, None), NextStep::GiveUp);
    }

    #[test]
    fn a_gone_from_a_replaced_endpoint_is_retried_at_once() {
        let t = at(1_750_000_000);
        let mut current = Endpoint::new(
            crate::AccountId::new(),
            "https://example.com/hook",
            vec![crate::webhooks::WebhookSecret::from_bytes(&[7; 24]).unwrap()],
            t,
        )
        .unwrap();
        current.version = 1;
        let gone = NextStep::DisableEndpoint {
            endpoint_version: 1,
        };
        let done = t + TimeDelta::seconds(3);
        assert_eq!(step_to_apply(gone, Some(&current), done), gone);
        assert_eq!(step_to_apply(gone, None, done), gone);
        assert_eq!(
            step_to_apply(NextStep::GiveUp, None, done),
            NextStep::GiveUp
        );
        // Replaced in the same microsecond: the version still tells the two apart.
        current.version = 2;
        assert_eq!(
            step_to_apply(gone, Some(&current), done),
            NextStep::RetryAt(done)
        );
        assert_eq!(fails_at_claim(Some(&current), done), None);
        assert_eq!(
            queued_status(Some(&current), EventType::LinkCreated, done),
            Some(DeliveryStatus::Pending {
                next_attempt_at: done
            })
        );
        let picky = current
            .clone()
            .with_event_types([EventType::SessionReviewed])
            .unwrap();
        assert_eq!(
            queued_status(Some(&picky), EventType::LinkCreated, done),
            None
        );
        current.disabled_at = Some(done);
        let failed = Some(DeliveryStatus::Failed {
            at: done,
            reason: FailReason::EndpointDisabled,
        });
        assert_eq!(fails_at_claim(Some(&current), done), failed);
        assert_eq!(fails_at_claim(None, done), failed);
        let created = EventType::LinkCreated;
        assert_eq!(queued_status(Some(&current), created, done), failed);
        assert_eq!(queued_status(None, created, done), None);
        let mut picky = picky;
        picky.disabled_at = Some(done);
        assert_eq!(queued_status(Some(&picky), created, done), None);
    }

    #[test]
    fn leases_are_bounded() {
        let t = at(1_750_000_000);
        assert_eq!(lease_until(t, Duration::ZERO), t + TimeDelta::seconds(1));
        assert_eq!(
            lease_until(t, Duration::from_secs(60)),
            t + TimeDelta::seconds(60)
        );
        assert_eq!(lease_until(t, Duration::MAX), t + TimeDelta::days(365));
        assert_eq!(
            lease_until(DateTime::<Utc>::MAX_UTC, Duration::from_secs(60)),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
