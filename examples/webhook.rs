//! Sign or verify a Standard Webhooks message, to debug an integration.
//!
//! ```text
//! printf '%s' '{"test": 2432232314}' | cargo run --example webhook -- sign \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --id msg_p5jXN8AQM9LWM0D4loKWxJek --timestamp 1614265330
//!
//! printf '%s' '{"test": 2432232314}' | cargo run --example webhook -- verify \
//!     --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw --id msg_p5jXN8AQM9LWM0D4loKWxJek --timestamp 1614265330 \
//!     --signature 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' --now 1614265330
//! ```
//!
//! The payload is read from standard input as raw bytes: `echo` adds a newline, which changes
//! the signature; use `printf '%s'` or a file.

use std::io::{Read, Write};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use magic_link::webhooks::{
    WebhookHeaders, WebhookSecret, WebhookVerifier, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
};

const USAGE: &str = "usage:
  webhook sign   --secret <whsec_...> --id <id> --timestamp <unix>   < payload
  webhook verify --secret <whsec_...> --id <id> --timestamp <unix> --signature '<header value>' [--now <unix>]   < payload";

struct Args {
    command: String,
    secret: Option<String>,
    id: Option<String>,
    timestamp: Option<String>,
    signature: Option<String>,
    now: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = argv.next().ok_or("missing command")?;
    let mut args = Args {
        command,
        secret: None,
        id: None,
        timestamp: None,
        signature: None,
        now: None,
    };
    while let Some(flag) = argv.next() {
        let slot = match flag.as_str() {
            "--secret" => &mut args.secret,
            "--id" => &mut args.id,
            "--timestamp" => &mut args.timestamp,
            "--signature" => &mut args.signature,
            "--now" => &mut args.now,
            other => return Err(format!("unknown argument {other}")),
        };
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        if slot.replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    Ok(args)
}

fn required(value: Option<String>, flag: &str) -> Result<String, String> {
    value.ok_or_else(|| format!("missing {flag}"))
}

/// Runs a command on `payload`, writing its lines to `out`. `Ok(true)` for success, `Ok(false)`
/// for a failed verification or a malformed secret (the reason is written), `Err` for a usage
/// error.
fn run(args: Args, payload: &[u8], out: &mut impl Write) -> Result<bool, String> {
    let secret = required(args.secret, "--secret")?;
    let id = required(args.id, "--id")?;
    let timestamp = required(args.timestamp, "--timestamp")?;
    let write_err = |e: std::io::Error| format!("cannot write: {e}");
    let secret: WebhookSecret = match secret.parse() {
        Ok(secret) => secret,
        Err(reason) => {
            writeln!(out, "{reason}").map_err(write_err)?;
            return Ok(false);
        }
    };
    match args.command.as_str() {
        "sign" => {
            if args.signature.is_some() || args.now.is_some() {
                return Err("sign takes no --signature or --now".into());
            }
            let unix: i64 = timestamp
                .parse()
                .map_err(|_| "--timestamp must be Unix seconds".to_owned())?;
            let signature = secret.sign(&id, unix, payload);
            writeln!(out, "{WEBHOOK_ID_HEADER}: {id}").map_err(write_err)?;
            writeln!(out, "{WEBHOOK_TIMESTAMP_HEADER}: {unix}").map_err(write_err)?;
            writeln!(out, "{WEBHOOK_SIGNATURE_HEADER}: {signature}").map_err(write_err)?;
            Ok(true)
        }
        "verify" => {
            let signature = required(args.signature, "--signature")?;
            let now = match args.now {
                Some(now) => now
                    .parse::<i64>()
                    .ok()
                    .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
                    .ok_or("--now must be Unix seconds")?,
                None => Utc::now(),
            };
            let headers = WebhookHeaders::new(&id, &timestamp, &signature);
            match WebhookVerifier::new(secret).verify_at(headers, payload, now) {
                Ok(()) => {
                    writeln!(out, "ok").map_err(write_err)?;
                    Ok(true)
                }
                Err(reason) => {
                    writeln!(out, "{reason}").map_err(write_err)?;
                    Ok(false)
                }
            }
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let mut payload = Vec::new();
    let result = parse(std::env::args().skip(1)).and_then(|args| {
        std::io::stdin()
            .read_to_end(&mut payload)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        run(args, &payload, &mut std::io::stdout())
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            println!("{message}");
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn cli(args: &[&str], payload: &[u8]) -> (Result<bool, String>, String) {
        let mut out = Vec::new();
        let result =
            parse(args.iter().map(|a| a.to_string())).and_then(|a| run(a, payload, &mut out));
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn sign_prints_the_three_headers() {
        let (result, out) = cli(
            &[
                "sign",
                "--secret",
                SECRET,
                "--id",
                ID,
                "--timestamp",
                "1614265330",
            ],
            PAYLOAD,
        );
        assert_eq!(result, Ok(true));
        assert_eq!(
            out,
            format!(
                "webhook-id: {ID}\nwebhook-timestamp: 1614265330\nwebhook-signature: {SIGNATURE}\n"
            )
        );
    }

    #[test]
    fn verify_prints_ok_or_the_reason() {
        let verify = |payload: &[u8], now: &str| {
            cli(
                &[
                    "verify",
                    "--secret",
                    SECRET,
                    "--id",
                    ID,
                    "--timestamp",
                    "1614265330",
                    "--signature",
                    SIGNATURE,
                    "--now",
                    now,
                ],
                payload,
            )
        };
        assert_eq!(verify(PAYLOAD, "1614265330"), (Ok(true), "ok\n".into()));
        assert_eq!(
            verify(b"{}", "1614265330"),
            (Ok(false), "no matching signature\n".into())
        );
        assert_eq!(
            verify(PAYLOAD, "1614265631"),
            (Ok(false), "the webhook timestamp is too old\n".into())
        );
        let (result, out) = cli(
            &[
                "verify",
                "--secret",
                "whsec_!",
                "--id",
                ID,
                "--timestamp",
                "1",
                "--signature",
                "x",
            ],
            PAYLOAD,
        );
        assert_eq!(result, Ok(false));
        assert!(out.starts_with("malformed webhook secret"));
    }

    #[test]
    fn usage_errors_are_reported() {
        for args in [
            &["frob"][..],
            &["sign", "--secret"],
            &["sign", "--id", ID],
            &["verify", "--secret", SECRET, "--id", ID, "--timestamp", "1"],
            &[
                "sign",
                "--secret",
                SECRET,
                "--id",
                ID,
                "--timestamp",
                "soon",
            ],
            &["sign", "--secret", SECRET, "--secret", SECRET],
        ] {
            assert!(cli(args, PAYLOAD).0.is_err(), "{args:?}");
        }
    }
}
